"""The stop path in one process: a requested stop ends a run with messages in DATA recorded,
nothing left "sending", and the next run sends exactly the rest."""

from __future__ import annotations

import asyncio
import threading
import time

from smtp_servers import FaultHandler, smtp_server
from test_deliver import FAST, Builder, publish, store  # noqa: F401 - store is a fixture

from digest.config import RelaySettings
from digest.deliver import StopRequest, deliver_edition, worker_id
from digest.store import Store


async def test_a_requested_stop_finishes_what_is_in_data_and_releases_the_rest(
        store: Store) -> None:  # noqa: F811
    emails = [f"r{i:03d}@example.org" for i in range(200)]
    edition = publish(store, emails)
    stop = StopRequest()
    # Every message is held 0.3 s after the server stored it: at the stop, up to pool_size
    # messages are in DATA; all of them must end "sent", not "queued" or "sending".
    async with smtp_server(FaultHandler(hold=0.3)) as srv:
        relay = RelaySettings(name="r", host=srv.host, port=srv.port, security="none",
                              pool_size=4, rate_per_second=40, timeout=2.0)
        run = asyncio.create_task(deliver_edition(
            edition, store=store, build=Builder(), relay=relay, delivery=FAST,
            worker_id=worker_id(), stop=stop))
        while len(srv.handler.received) < 12:
            await asyncio.sleep(0.01)
        # Requested from another thread, as a signal handler in another loop would.
        asked = time.monotonic()
        threading.Thread(target=stop.request, args=("SIGTERM",)).start()
        report = await asyncio.wait_for(run, 5)
        took = time.monotonic() - asked
        at_stop = srv.handler.by_rcpt()
    summary = store.delivery_summary(edition)
    assert "sending" not in summary
    assert summary["sent"] == sum(at_stop.values()) == report.sent
    assert summary["queued"] == 200 - report.sent > 100
    assert report.interrupted == "SIGTERM" and not report.done and report.deferred > 100
    assert took < 1.5  # the in-flight messages (0.3 s each), not the rest of the list
    assert not stop.request("again")  # the first reason stays

    async with smtp_server() as again:
        rest = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                     smtp_addr=again.addr, delivery=FAST,
                                     worker_id=worker_id())
    assert rest.sent == 200 - report.sent and rest.done
    assert at_stop + again.handler.by_rcpt() == dict.fromkeys(emails, 1)


async def test_a_stop_requested_before_the_run_claims_nothing(store: Store) -> None:  # noqa: F811
    edition = publish(store, ["a@example.org", "b@example.org"])
    stop = StopRequest()
    assert stop.request("SIGINT")
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=FAST,
                                       worker_id=worker_id(), stop=stop)
    assert srv.handler.received == [] and srv.connections == 0
    assert report.interrupted == "SIGINT" and report.deferred == 2
    assert store.delivery_summary(edition) == {"queued": 2}


def test_worker_ids_are_unique_per_process_and_stable_within_one() -> None:
    import multiprocessing

    me = worker_id()
    assert me == worker_id()
    host, pid, rand = me.split(":")
    assert host and int(pid) > 0 and len(rand) == 6
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(worker_id)
    assert child != me and child.split(":")[1] != pid


async def test_a_run_leaves_claims_of_another_live_process_alone(store: Store) -> None:  # noqa: F811
    from datetime import UTC, datetime, timedelta

    emails = [f"r{i:02d}@example.org" for i in range(10)]
    edition = publish(store, emails)
    # Another process (another send on this host, say) holds three rows on a live lease.
    held = store.claim_deliveries(edition, worker_id="mail1:4242:abcdef", limit=3,
                                  now=datetime.now(UTC), lease=timedelta(minutes=5))
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=FAST,
                                       worker_id=worker_id(), max_wait=0.5)
    assert report.sent == 7 and report.deferred == 3
    assert not {c.email for c in held} & set(srv.handler.by_rcpt())
    assert store.delivery_summary(edition) == {"sent": 7, "sending": 3}
    assert {store.get_delivery(c.delivery_id)["claimed_by"] for c in held} == {
        "mail1:4242:abcdef"}


def test_a_linked_request_stops_one_run_and_follows_the_process() -> None:
    process = StopRequest()
    one, two = process.linked(), process.linked()
    assert one.request("lost the send:daily lock")
    assert one.reason == "lost the send:daily lock" and not two.requested
    assert not process.requested  # a lost lock does not stop the process
    assert process.request("SIGTERM")
    assert two.reason == "SIGTERM" and one.reason == "lost the send:daily lock"
    assert process.linked().reason == "SIGTERM"  # linked after the stop: stopped at once
