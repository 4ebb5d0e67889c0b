"""deliver_edition end to end: a real SQLite ledger, real SMTP servers on loopback.

Each test asserts the final ledger state and what the servers received: every valid
subscriber exactly once, except the bounded repeats of ambiguous (in-DATA) failures.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from smtp_servers import FaultHandler, smtp_server

from digest.config import DeliverySettings, RelaySettings
from digest.deliver import deliver_edition, send_test
from digest.errors import AuthenticationError, DeliveryError, RelayUnavailableError
from digest.mail import MessageTemplate, Recipient
from digest.models import Edition, Story
from digest.store import Store, open_store

FAST = DeliverySettings(retry_window=timedelta(seconds=1.5), first_retry=timedelta(seconds=0.05),
                        max_retry_delay=timedelta(seconds=0.2), message_timeout=1.0,
                        claim_batch=10, max_auth_failures=3)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(f"sqlite:///{tmp_path / 'digest.db'}") as s:
        yield s  # type: ignore[misc]


def publish(store: Store, emails: list[str], day: int = 2) -> int:
    for addr in emails:
        store.add_subscriber("daily", addr, name=f"Reader {addr.split('@')[0]}")
    lead = Story(id=f"lead-{day}", section="Politics", headline="Vote tonight", is_lead=True)
    record = store.record_edition(Edition(list_name="daily", date=date(2026, 3, day),
                                          subject="Vote tonight", preheader="", lead=lead,
                                          sections=()))
    store.publish_edition(record.id, message_id_domain="news.example.org",
                          now=datetime.now(UTC))
    return record.id


class Builder:
    """Builds each claim's message with the real template; remembers delivery ids."""

    def __init__(self, on_build: Callable[[Any], None] | None = None) -> None:
        self.template = MessageTemplate.build(
            html_segments=("<p>Hello ", "</p><a href=\"", "\">unsubscribe</a>"),
            html_slots=("name", "unsub"), text_segments=("Hello ", "\nUnsubscribe: ", "\n"),
            text_slots=("name", "unsub"), subject="Vote tonight",
            from_header="The Morning Ledger <briefing@news.example.org>",
            list_id="Morning Briefing <daily.news.example.org>")
        self.ids: dict[str, int] = {}
        self.builds: list[str] = []
        self.on_build = on_build

    def __call__(self, claim: Any) -> tuple[str, str, bytes]:
        self.ids[claim.email] = claim.delivery_id
        self.builds.append(claim.email)
        if self.on_build:
            self.on_build(claim)
        url = f"https://news.example.org/u/{claim.subscriber_id}"
        data = self.template.render(Recipient(
            email=claim.email, name=claim.name, message_id=claim.message_id,
            unsubscribe_url=url, unsubscribe_mailto="mailto:unsub@news.example.org",
            slot_values_html={"name": claim.name or "", "unsub": url},
            slot_values_text={"name": claim.name or "", "unsub": url}))
        local = claim.email.split("@")[0]
        sender = f"{local}@news.example.org" if local.startswith("mail") else \
            "bounces@news.example.org"
        return sender, claim.email, data


def status_of(store: Store, builder: Builder) -> dict[str, str]:
    return {addr: store.get_delivery(i)["status"] for addr, i in builder.ids.items()}


@pytest.mark.parametrize("max_ambiguous", [0, 1])
async def test_faults_end_in_the_right_terminal_states(store: Store, max_ambiguous: int) -> None:
    """With max_ambiguous = 1 (the default) a drop after the final dot or a reply slower
    than the deadline is retried once (the reader may get two copies: the relay may or may
    not have stored the first); with 0 it ends the row "sent_unconfirmed" after one copy.
    A drop before the payload was written is no ambiguity."""
    normal = [f"reader{i}@example.org" for i in range(30)]
    ambiguous = "sent_unconfirmed" if max_ambiguous == 0 else "sent"
    faults = {
        "rcpt550": "failed", "rcpt551": "failed", "rcpt553": "failed", "rcpt550p": "failed",
        "data554": "failed", "data552": "failed",
        "greylist": "sent", "mail451": "sent", "dropbefore": "sent", "datadrop": ambiguous,
        "dataslow": ambiguous,
        "data451": "expired", "rcpt450": "expired", "rcpt552": "expired", "rcpt421": "expired",
    }
    fault_addrs = [f"{f}@example.org" for f in faults]
    edition = publish(store, normal + fault_addrs)
    builder = Builder()
    async with smtp_server(FaultHandler(slow=3.0)) as srv:
        report = await deliver_edition(edition, store=store, build=builder, relay=None,
                                       smtp_addr=srv.addr, worker_id="w1", pool_size=4,
                                       delivery=replace(FAST, max_ambiguous=max_ambiguous))
    got = srv.handler.by_rcpt()
    statuses = status_of(store, builder)
    for addr in normal:
        assert statuses[addr] == "sent" and got[addr] == 1, addr
    for fault, want in faults.items():
        addr = f"{fault}@example.org"
        assert statuses[addr] == want, addr
    # Exactly one copy where the server never had it twice; two where the outcome was
    # unknown (drop after the dot, reply slower than the deadline): bounded repeats.
    for fault in ("greylist", "mail451", "dropbefore"):
        assert got[f"{fault}@example.org"] == 1, fault
    for fault in ("datadrop", "dataslow"):
        assert got[f"{fault}@example.org"] == 1 + max_ambiguous, fault  # the server kept each
    for fault in ("rcpt550", "rcpt551", "rcpt553", "rcpt550p", "data554", "data552",
                  "data451", "rcpt450", "rcpt552", "rcpt421"):
        assert got[f"{fault}@example.org"] == 0, fault
    for fault in ("rcpt550", "rcpt551", "rcpt553"):
        assert store.is_suppressed(f"{fault}@example.org")
    for fault in ("rcpt550p", "data554", "data552", "rcpt450"):
        assert not store.is_suppressed(f"{fault}@example.org")
    # Retries keep the Message-ID.
    copies = [r.data for r in srv.handler.received if r.rcpt_tos == ("datadrop@example.org",)]
    ids = {email.message_from_bytes(c, policy=email.policy.default)["Message-ID"]
           for c in copies}
    assert len(ids) == 1
    # Each message: one recipient, To == envelope recipient.
    for r in srv.handler.received:
        msg = email.message_from_bytes(r.data, policy=email.policy.default)
        assert len(r.rcpt_tos) == 1 and msg["To"].addresses[0].addr_spec == r.rcpt_tos[0]
    assert not [x for x in srv.replies if x.startswith("503")]
    unconfirmed = 2 if max_ambiguous == 0 else 0
    assert report.sent == 35 - unconfirmed and report.unconfirmed == unconfirmed
    assert report.failed == 6 and report.expired == 4
    assert report.suppressed == 3 and report.ambiguous == 2  # each fault happens once
    assert report.retried >= 9 - unconfirmed
    assert report.deferred == 0 and report.done
    assert store.delivery_summary(edition) == {
        "sent": 35 - unconfirmed, "failed": 6, "expired": 4,
        **({"sent_unconfirmed": unconfirmed} if unconfirmed else {})}
    if unconfirmed:
        row = store.get_delivery(builder.ids["datadrop@example.org"])
        assert (row["reason"], row["ambiguous"]) == ("outcome unknown", 1)
        assert "outcome unknown" in row["last_error"]
    assert any("550 at RCPT" in r for r in report.reasons["failed"])
    assert any("450 at RCPT" in r for r in report.reasons["retried"])


async def test_ambiguous_until_the_window_ends_is_unconfirmed_not_expired(store: Store) -> None:
    """A relay that keeps every message and never answers in time: with a cap too high to
    reach, the retry window ends the row, as "sent_unconfirmed" (the reader may have every
    copy), never "expired"; a 4xx refusal in the same run expires."""
    edition = publish(store, ["slowalways@example.org", "rcpt450@example.org"])
    builder = Builder()
    async with smtp_server(FaultHandler(slow=1.5)) as srv:
        report = await deliver_edition(edition, store=store, build=builder, relay=None,
                                       smtp_addr=srv.addr, worker_id="w1", pool_size=2,
                                       delivery=replace(FAST, max_ambiguous=100))
    assert status_of(store, builder) == {"slowalways@example.org": "sent_unconfirmed",
                                         "rcpt450@example.org": "expired"}
    row = store.get_delivery(builder.ids["slowalways@example.org"])
    assert row["ambiguous"] >= 1 and row["reason"] == "outcome unknown"
    assert report.unconfirmed == 1 and report.expired == 1 and report.deferred == 0


async def test_auth_failure_stops_the_run_and_leaves_rows_queued(store: Store) -> None:
    edition = publish(store, [f"r{i}@example.org" for i in range(40)])
    async with smtp_server(password="right-pw") as srv:
        settings = RelaySettings(name="main", host="127.0.0.1", port=srv.port,
                                 security="none", username="user", password="Wr0ng-secret",
                                 pool_size=5, timeout=2.0)
        with pytest.raises(AuthenticationError) as info:
            await deliver_edition(edition, store=store, build=Builder(), relay=settings,
                                  delivery=FAST, worker_id="w1")
    assert "Wr0ng-secret" not in str(info.value)
    assert store.delivery_summary(edition) == {"queued": 40}
    assert srv.handler.commands == []  # not one MAIL
    assert len(srv.auth_attempts) <= 2 * 5  # one try per connection (PLAIN, then LOGIN)


async def test_530_at_mail_stops_the_run(store: Store) -> None:
    edition = publish(store, [f"mail530-{i}@example.org" for i in range(1)] +
                      [f"r{i}@example.org" for i in range(20)])

    class AllAs530(Builder):
        def __call__(self, claim: Any) -> tuple[str, str, bytes]:
            _, rcpt, data = super().__call__(claim)
            return "mail530@news.example.org", rcpt, data

    async with smtp_server() as srv:
        with pytest.raises(AuthenticationError):
            await deliver_edition(edition, store=store, build=AllAs530(), relay=None,
                                  smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                  pool_size=2)
    assert store.delivery_summary(edition) == {"queued": 21}
    assert srv.handler.received == []


async def test_sender_refused_stops_instead_of_failing_everyone(store: Store) -> None:
    edition = publish(store, [f"r{i}@example.org" for i in range(10)])

    class Refused(Builder):
        def __call__(self, claim: Any) -> tuple[str, str, bytes]:
            _, rcpt, data = super().__call__(claim)
            return "mail550@news.example.org", rcpt, data

    async with smtp_server() as srv:
        with pytest.raises(DeliveryError, match="envelope sender"):
            await deliver_edition(edition, store=store, build=Refused(), relay=None,
                                  smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                  pool_size=1)
    assert store.delivery_summary(edition) == {"queued": 10}


async def test_relay_refusing_connections_for_a_while_charges_no_row(store: Store) -> None:
    edition = publish(store, [f"r{i}@example.org" for i in range(8)])
    builder = Builder()
    async with smtp_server(refuse_first=3) as srv:
        report = await deliver_edition(edition, store=store, build=builder, relay=None,
                                       smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                       pool_size=2)
    assert report.sent == 8 and report.retried == 0
    assert all(store.get_delivery(i)["attempts"] == 1 for i in builder.ids.values())
    assert sum(srv.handler.by_rcpt().values()) == 8


async def test_unreachable_relay_raises_and_keeps_rows(store: Store) -> None:
    edition = publish(store, [f"r{i}@example.org" for i in range(3)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RelayUnavailableError, match="could not be used"):
        await deliver_edition(edition, store=store, build=Builder(), relay=None,
                              smtp_addr=("127.0.0.1", port), delivery=FAST, worker_id="w1",
                              pool_size=2, relay_patience=0.5)
    assert store.delivery_summary(edition) == {"queued": 3}


async def test_unsubscribe_committed_during_the_send_stops_later_claims(store: Store) -> None:
    emails = [f"r{i:02d}@example.org" for i in range(20)]
    edition = publish(store, emails)
    target = store.get_membership("daily", "r15@example.org")
    assert target is not None

    def on_build(claim: Any) -> None:
        if claim.email == "r05@example.org":
            store.unsubscribe(target.subscriber_id, "daily")

    builder = Builder(on_build)
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=store, build=builder, relay=None,
                                       smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                       pool_size=1)
    assert srv.handler.by_rcpt()["r15@example.org"] == 0
    assert "r15@example.org" not in builder.builds
    assert report.sent == 19 and report.skipped == 1
    assert report.reasons["skipped"] == {"unsubscribed": 1}
    assert store.delivery_summary(edition) == {"sent": 19, "skipped": 1}


async def test_long_backoff_returns_deferred_and_a_later_send_expires_it(
        store: Store) -> None:
    edition = publish(store, ["rcpt450@example.org", "ok@example.org"])
    slow = DeliverySettings(retry_window=timedelta(minutes=10),
                            first_retry=timedelta(minutes=5),
                            max_retry_delay=timedelta(minutes=30), message_timeout=1.0)
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=slow, worker_id="w1",
                                       max_wait=1.0)
        assert report.sent == 1 and report.retried == 1 and report.deferred == 1
        assert report.next_retry_at is not None
        assert report.next_retry_at > datetime.now(UTC) + timedelta(seconds=60)
        assert not report.done
        later = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                      smtp_addr=srv.addr, delivery=slow, worker_id="w1",
                                      clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    assert later.expired == 1 and later.deferred == 0
    assert store.delivery_summary(edition) == {"sent": 1, "expired": 1}
    assert srv.handler.by_rcpt()["rcpt450@example.org"] == 0


async def test_two_workers_and_two_relays_share_without_duplicates(store: Store) -> None:
    emails = [f"r{i:03d}@example.org" for i in range(60)]
    edition = publish(store, emails)
    async with smtp_server() as a, smtp_server() as b:
        relays = [RelaySettings(name=n, host="127.0.0.1", port=s.port, security="none",
                                pool_size=2, timeout=2.0) for n, s in (("a", a), ("b", b))]
        reports = await asyncio.gather(*(
            deliver_edition(edition, store=store, build=Builder(), relay=relays,
                            delivery=FAST, worker_id=w) for w in ("w1", "w2")))
    total = a.handler.by_rcpt() + b.handler.by_rcpt()
    assert total == dict.fromkeys(emails, 1)
    assert len(a.handler.received) > 0 and len(b.handler.received) > 0
    assert sum(r.sent for r in reports) == 60
    assert store.delivery_summary(edition) == {"sent": 60}


async def test_cancelling_a_run_releases_its_claims(store: Store) -> None:
    edition = publish(store, [f"r{i:02d}@example.org" for i in range(30)])
    async with smtp_server(FaultHandler(delay=0.05)) as srv:
        task = asyncio.create_task(deliver_edition(
            edition, store=store, build=Builder(), relay=None, smtp_addr=srv.addr,
            delivery=FAST, worker_id="w1", pool_size=3))
        while len(srv.handler.received) < 6:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    summary = store.delivery_summary(edition)
    assert "sending" not in summary
    assert summary["sent"] + summary["queued"] == 30
    assert summary["sent"] <= len(srv.handler.received) <= summary["sent"] + 3


async def test_send_test_needs_no_ledger_and_reports(tmp_path: Path) -> None:
    builder = Builder()

    class FakeClaim:
        def __init__(self, addr: str, i: int) -> None:
            self.email, self.name, self.subscriber_id, self.delivery_id = addr, None, i, i
            self.message_id = f"<test.{i}@news.example.org>"

    messages = [builder(FakeClaim(a, i)) for i, a in
                enumerate(["editor@example.net", "rcpt550@example.net"])]
    async with smtp_server() as srv:
        report = await send_test(messages, relay=None, smtp_addr=srv.addr, delivery=FAST)
    assert srv.handler.by_rcpt() == {"editor@example.net": 1}
    assert report.sent == 1 and report.failed == 1


async def test_report_renders_counts_and_grouped_reasons(store: Store) -> None:
    edition = publish(store, ["rcpt553@example.org", "a@example.org", "b@example.org"])
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                       progress=True)
    console = Console(record=True, width=120)
    report.render(console)
    text = console.export_text()
    assert "sent" in text and "553 at RCPT" in text and "1 addresses suppressed" in text
    assert report.to_json()["failed"] == 1


async def test_stores_without_group_commit_are_marked_row_by_row(store: Store) -> None:
    class OneByOne:
        """The ledger protocol without mark_sent_many."""

        def __init__(self, inner: Store) -> None:
            self.inner = inner
            self.sent_calls = 0

        def mark_sent(self, delivery_id: int, *, response: str, now: datetime) -> None:
            self.sent_calls += 1
            self.inner.mark_sent(delivery_id, response=response, now=now)

        def __getattr__(self, name: str) -> Any:
            if name == "mark_sent_many":
                raise AttributeError(name)
            return getattr(self.inner, name)

    edition = publish(store, [f"r{i}@example.org" for i in range(7)])
    wrapped = OneByOne(store)
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=wrapped, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                       pool_size=3)
    assert report.sent == 7 and wrapped.sent_calls == 7
    assert store.delivery_summary(edition) == {"sent": 7}


@pytest.mark.parametrize("pool", [1, 3])
async def test_sending_overlaps_commits_but_never_runs_ahead_of_them(store: Store,
                                                                      pool: int) -> None:
    class SlowCommits:
        """The real store, with "sent" commits that take a while."""

        def __init__(self, inner: Store) -> None:
            self.inner = inner
            self.committed = 0
            self.batches: list[int] = []

        def mark_sent_many(self, results: list[tuple[int, str]], *, now: datetime) -> int:
            time.sleep(0.03)
            ended = self.inner.mark_sent_many(results, now=now)
            self.batches.append(len(results))
            self.committed += len(results)
            return ended

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    edition = publish(store, [f"r{i:02d}@example.org" for i in range(30)])
    wrapped = SlowCommits(store)
    ahead: list[int] = []

    def on_build(claim: Any) -> None:
        # Messages the relay has whose "sent" is not committed: what a crash now could
        # repeat. At most one per connection on the wire and one waiting for its commit.
        ahead.append(len(srv.handler.received) - wrapped.committed)

    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=wrapped, build=Builder(on_build),
                                       relay=None, smtp_addr=srv.addr, delivery=FAST,
                                       worker_id="w1", pool_size=pool)
    assert report.sent == 30 and store.delivery_summary(edition) == {"sent": 30}
    assert sum(srv.handler.by_rcpt().values()) == 30 and sum(wrapped.batches) == 30
    assert max(ahead) <= 2 * pool
    # The next message is built (and sent) before the previous "sent" is committed.
    assert max(ahead) >= 1
    if pool > 1:
        assert max(wrapped.batches) > 1  # group commit


async def test_claims_grow_with_the_rate_measured_and_stay_small_when_slow(
        store: Store) -> None:
    """A claim asks for about Worker.CLAIM_SPAN seconds of sending at the rate measured:
    two rows per connection at first, up to claim_batch on a fast relay; a relay limited
    to a few messages a second keeps claims at the floor (claimed rows stay few)."""

    class Limits:
        def __init__(self, inner: Store) -> None:
            self.inner = inner
            self.limits: list[int] = []

        def claim_deliveries(self, *args: Any, limit: int, **kwargs: Any) -> list[Any]:
            self.limits.append(limit)
            return self.inner.claim_deliveries(*args, limit=limit, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    settings = replace(FAST, claim_batch=50)
    slow_edition = publish(store, [f"s{i:02d}@example.org" for i in range(12)])
    slow = Limits(store)
    async with smtp_server() as srv:
        relay = RelaySettings(name="limited", host="127.0.0.1", port=srv.port,
                              security="none", pool_size=2, rate_per_second=8.0)
        report = await deliver_edition(slow_edition, store=slow, build=Builder(), relay=relay,
                                       delivery=settings, worker_id="w1")
    assert report.sent == 12
    assert max(slow.limits) <= 4  # 8 a second: a quarter of a second is under the floor

    edition = publish(store, [f"r{i:03d}@example.org" for i in range(600)], day=3)
    fast = Limits(store)
    async with smtp_server() as srv:
        report = await deliver_edition(edition, store=fast, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=settings,
                                       worker_id="w2", pool_size=2)
    assert report.sent == 612 and sum(srv.handler.by_rcpt().values()) == 612
    assert fast.limits[0] == 4  # two per connection before any rate is known
    assert max(fast.limits) == 50  # aiosmtpd on loopback: hundreds a second
    assert all(n <= 50 for n in fast.limits)


async def test_dkim_signatures_made_by_the_signing_process_verify_and_a_bad_row_fails_alone(
        store: Store) -> None:
    """With a signer (what send uses with DKIM: a child process), the builder hands over
    messages without their signatures, the signer makes every one, and every message the
    relay gets verifies in dkimpy; a row whose build raises fails alone."""
    import dkim
    from cryptography.hazmat.primitives.asymmetric import rsa

    from digest.config import DkimKey, DkimSettings
    from digest.mail import DkimSigner
    from digest.mail.sign_process import SigningProcess

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing = DkimSettings("news.example.org", (DkimKey("rsa-sha256", "s1", key),))
    records = {b"s1._domainkey.news.example.org.": signing.keys[0].dns_record()}
    template = MessageTemplate.build(
        html_segments=("<p>Hello ", "</p>"), html_slots=("name",),
        text_segments=("Hello ", "\n"), text_slots=("name",), subject="Vote tonight",
        from_header="The Morning Ledger <briefing@news.example.org>",
        list_id="Morning Briefing <daily.news.example.org>", dkim=DkimSigner(signing))

    def build(claim: Any) -> tuple[str, str, Any]:
        if claim.email == "poison@example.org":
            raise ValueError("no template for this reader")
        url = f"https://news.example.org/u/{claim.subscriber_id}"
        return "bounces@news.example.org", claim.email, template.render_unsigned(
            claim.email, claim.name, claim.message_id, url, "mailto:u@news.example.org",
            {"name": claim.name or ""}, {"name": claim.name or ""})

    class Counting:
        def __init__(self, inner: SigningProcess) -> None:
            self.inner = inner
            self.asked = 0

        async def signatures(self, message: Any) -> list[bytes]:
            self.asked += 1
            return await self.inner.signatures(message)

    emails = [f"r{i:03d}@example.org" for i in range(60)] + ["poison@example.org"]
    edition = publish(store, emails)
    async with smtp_server() as srv, SigningProcess([key]) as process:
        signer = Counting(process)
        report = await deliver_edition(edition, store=store, build=build, relay=None,
                                       smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                       pool_size=3, signer=signer)
        assert process.broken is None
    assert report.sent == 60 and report.failed == 1
    assert srv.handler.by_rcpt() == dict.fromkeys(emails[:-1], 1)
    assert signer.asked == 60
    assert all(dkim.verify(r.data, dnsfunc=lambda name, timeout=5: records[name])
               for r in srv.handler.received)


async def test_a_failed_commit_releases_the_transactions_waiting_at_the_data_gate(
        store: Store) -> None:
    """While a group commit runs, transactions wait for room (2 x connections messages in
    DATA or waiting for their commit). When that commit fails, the waiting ones stop at
    once (nothing more goes out), not when their message deadline runs out, and none of
    them is charged an attempt."""
    from digest.errors import StoreError

    class SlowThenFailing:
        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def mark_sent_many(self, results: Any, *, now: datetime) -> int:
            time.sleep(0.3)  # the gate fills up meanwhile
            raise StoreError("the database is locked")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    edition = publish(store, [f"r{i:03d}@example.org" for i in range(80)])
    slow = replace(FAST, message_timeout=20.0)
    started = time.monotonic()
    async with smtp_server() as srv:
        with pytest.raises(StoreError):
            await deliver_edition(edition, store=SlowThenFailing(store), build=Builder(),
                                  relay=None, smtp_addr=srv.addr, delivery=slow,
                                  worker_id="w1", pool_size=3)
        accepted = len(srv.handler.received)
    assert time.monotonic() - started < 8  # not the 20 s message deadline
    assert 1 <= accepted <= 2 * 3  # the gate: at most 2 x connections past it
    rows = [store.get_delivery(i) for i in range(1, 81)]
    assert not any(r["attempts"] and r["status"] == "queued" for r in rows)


async def test_a_failed_group_commit_is_saved_before_claims_are_released(store: Store) -> None:
    """The database refuses the "sent" marks for a moment: the run stops with the store's
    error, but the rows the relay accepted end "sent" (saved once more before the claims are
    handed back), so the next send does not repeat them."""
    from digest.errors import StoreError

    class Flaky:
        def __init__(self, inner: Store, failures: int) -> None:
            self.inner = inner
            self.failures = failures

        def mark_sent_many(self, results: Any, *, now: datetime) -> int:
            if self.failures > 0:
                self.failures -= 1
                raise StoreError("the database is locked")
            return self.inner.mark_sent_many(results, now=now)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    edition = publish(store, [f"r{i}@example.org" for i in range(10)])
    flaky = Flaky(store, failures=3)  # the worker's own retries of one batch all fail
    async with smtp_server() as srv:
        with pytest.raises(StoreError):
            await deliver_edition(edition, store=flaky, build=Builder(), relay=None,
                                  smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                  pool_size=3)
        accepted = len(srv.handler.received)
        summary = store.delivery_summary(edition)
        assert accepted >= 1
        assert summary.get("sent", 0) == accepted
        assert "sending" not in summary
        report = await deliver_edition(edition, store=store, build=Builder(), relay=None,
                                       smtp_addr=srv.addr, delivery=FAST, worker_id="w1",
                                       pool_size=3)
    assert report.sent == 10 - accepted
    assert len(srv.handler.received) == 10  # nobody twice
    assert store.delivery_summary(edition) == {"sent": 10}
