"""Fencing with a real `worker` process on PostgreSQL: stopped with SIGSTOP past its claim
lease while a second worker finishes the edition, then continued. The stopped worker sends
none of the rows it had claimed but not yet sent (buffered claims included) and records
nothing for rows it lost; its late replies are kept as events. Every reader gets one copy,
plus at most one for each message that was in DATA when the worker stopped."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from service_env import ListSpec, recording_server, start, wait_for, write_project
from smtp_servers import FaultHandler

from digest import pipeline
from digest.config import load_settings
from digest.store import open_store

pytest_plugins = ["store_backends"]

#: A short claim lease through the config: a claim is sendable while more than one message
#: timeout (1 s) of its 3 s lease is left.
FAST_LEASE = """
[delivery]
message_timeout = "1s"
claim_lease = "3s"
first_retry = "1s"
max_retry_delay = "2s"
"""


@dataclass
class TimedHandler(FaultHandler):
    """Records, per recipient, when the server got the DATA command and when it answered
    the final dot (the message is "in DATA" between the two)."""

    began: list[tuple[float, str]] = field(default_factory=list)
    answered: list[tuple[float, str]] = field(default_factory=list)

    def data_command(self, rcpts: tuple[str, ...]) -> None:
        self.began.append((time.monotonic(), rcpts[0]))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.answered.append((time.monotonic(), envelope.rcpt_tos[0]))

    def in_data(self, at: float, slack: float) -> set[str]:
        """Recipients whose DATA command came by ``at`` + ``slack`` (bytes the stopped
        client wrote before the stop still arrive) and whose reply was not sent before
        ``at`` - ``slack`` (a reply in transit, or a 250 still waiting for its commit)."""
        began: dict[str, list[float]] = {}
        for t, rcpt in self.began:
            began.setdefault(rcpt, []).append(t)
        ended: dict[str, list[float]] = {}
        for t, rcpt in self.answered:
            ended.setdefault(rcpt, []).append(t)
        out = set()
        for rcpt, starts in began.items():
            for k, t0 in enumerate(starts):
                ends = ended.get(rcpt, [])
                t1 = ends[k] if k < len(ends) else float("inf")
                if t0 <= at + slack and t1 >= at - slack:
                    out.add(rcpt)
        return out


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_worker_stopped_past_its_lease_sends_and_records_nothing_it_lost(
        tmp_path: Path, store_url: str) -> None:
    # A worker stopped inside a transaction holds its row locks until the server ends
    # the session (digest sets 15 s unless the URL says otherwise): 2 s here.
    store_url = store_url.replace("options=-csearch_path", "options=-cidle_in_transaction_"
                                  "session_timeout%3D2000+-csearch_path")
    n = 300
    handler = TimedHandler(hold=0.04)  # each message waits 40 ms for its 250: some in DATA
    with recording_server(handler) as srv:
        config = write_project(tmp_path, lists={"daily": ListSpec(readers=n)}, relay=srv,
                               extra="")
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace('[delivery]\nmessage_timeout = "5s"\nfirst_retry = '
                                       '"1s"\nmax_retry_delay = "2s"\n', FAST_LEASE.lstrip()),
                          encoding="utf-8")
        settings = load_settings(config, env={"DIGEST_DATABASE_URL": store_url,
                                              "DIGEST_SECRET_KEY": "k" * 32})
        assert settings.delivery.claim_lease is not None
        assert settings.delivery.claim_lease.total_seconds() == 3
        with open_store(store_url) as store:
            lst = settings.get_list("daily")
            pipeline.sync_subscriber_files(settings, lst, store)
            built = asyncio.run(pipeline.build_edition(settings, lst, store=store))
            record = store.record_edition(built.edition)
            assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                         now=datetime.now(UTC)) == n

        first = start(config, "worker", "--poll", "0.2", db_url=store_url)
        try:
            wait_for(lambda: len(handler.received) >= 60, 60, "60 messages", first)
            first.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            with open_store(store_url, migrate=False) as store:
                held = [r for r in _rows(store, record.id) if r["status"] == "sending"]
            assert held, "the stopped worker held no claim"
            time.sleep(3 + 1.5)  # past the lease (and the claim's look for lost rows)
            in_data = handler.in_data(stopped_at, slack=0.1)
            before = len(handler.received)

            second = start(config, "worker", "--once", db_url=store_url)
            out, err = second.communicate(timeout=60)
            assert second.returncode == 0, err
            with open_store(store_url, migrate=False) as store:
                assert store.delivery_summary(record.id) == {"sent": n}
            taken_over = len(handler.received) - before

            first.send_signal(signal.SIGCONT)
            time.sleep(2.0)  # it wakes, finds its claims lapsed, finishes what was in DATA
        finally:
            first.send_signal(signal.SIGCONT)
            first.send_signal(signal.SIGTERM)
            _, err1 = first.communicate(timeout=30)
        assert first.returncode == 0, err1
        assert "Traceback" not in err1
        got = handler.by_rcpt()

    everyone = {f"daily{i:04d}@example.org" for i in range(n)}
    assert set(got) == everyone  # nobody lost
    repeats = {rcpt: k for rcpt, k in got.items() if k > 1}
    assert all(k == 2 for k in repeats.values()), repeats
    assert set(repeats) <= in_data, (sorted(repeats), sorted(in_data))
    # The contract's bound: per connection (pool of 4), the message on the wire and one
    # 250 awaiting its group commit.
    assert len(repeats) <= 2 * 4, repeats

    # The second worker sent the stopped one's claims (buffered ones included).
    assert taken_over >= n - before
    held_ids = {r["id"] for r in held}
    with open_store(store_url, migrate=False) as store:
        rows = {r["id"]: r for r in _rows(store, record.id)}
        assert Counter(r["status"] for r in rows.values()) == {"sent": n}
        # Every row the stopped worker held was taken over: sent under a later claim.
        assert all(rows[i]["claim_token"] >= 2 for i in held_ids)
        late = store.late_replies(record.id)
    # Its late replies are events, from the stopped worker only, for rows it held.
    assert {e["delivery_id"] for e in late} <= held_ids
    assert len({e["worker"] for e in late}) <= 1
    assert all(e["kind"] in ("late-sent", "late-unconfirmed", "late-deferred") for e in late)
    print(f"in DATA at the stop: {len(in_data)}; repeated: {len(repeats)}; "
          f"late replies: {len(late)}; held: {len(held)}")


def _rows(store: Any, edition_id: int) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from digest.store.schema import deliveries

    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(deliveries).where(deliveries.c.edition_id == edition_id)).mappings()]
