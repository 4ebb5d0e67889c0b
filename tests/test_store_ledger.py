"""The delivery ledger on SQLite and PostgreSQL: publish once, claim atomically, end once."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.errors import StoreError
from digest.models import Edition, EditionSection, Story
from digest.store import Claim, Store, open_store
from digest.store.ledger import LOST_CHECK

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)

pytest_plugins = ["store_backends"]


def _edition(list_name: str = "daily", day: date = date(2026, 3, 2)) -> Edition:
    lead = Story(id="lead-1", section="Politics", headline="Vote tonight", is_lead=True)
    teaser = Story(id="t-1", section="World", headline="Summit opens", url="https://x.test/1")
    return Edition(list_name=list_name, date=day, subject="Vote tonight", preheader="",
                   lead=lead, sections=(EditionSection("World", (teaser,)),))


def _publish(store: Store, members: int, *, list_name: str = "daily") -> int:
    for i in range(members):
        store.add_subscriber(list_name, f"reader{i:04d}@example.org", name=f"Reader {i}")
    record = store.record_edition(_edition(list_name))
    store.publish_edition(record.id, message_id_domain="news.example.org", now=NOW)
    return record.id


def test_publish_creates_one_row_per_eligible_member_once(store: Store) -> None:
    store.add_subscriber("daily", "active@example.org", name="Ann", sections=["World"],
                         attributes={"city": "Lyon"})
    store.add_subscriber("daily", "pending@example.org", status="pending")
    store.add_subscriber("daily", "gone@example.org", status="unsubscribed")
    store.add_subscriber("daily", "blocked@example.org")
    store.suppress("blocked@example.org", "complained", now=NOW)
    store.add_subscriber("weekly", "other-list@example.org")
    record = store.record_edition(_edition())
    assert record.status == "draft"

    created = store.publish_edition(record.id, message_id_domain="news.example.org", now=NOW)

    assert created == 1
    assert store.delivery_summary(record.id) == {"queued": 1}
    assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                 now=NOW + timedelta(hours=1)) == 0
    store.add_subscriber("daily", "late@example.org")
    assert store.publish_edition(record.id, message_id_domain="news.example.org", now=NOW) == 0
    assert store.delivery_summary(record.id) == {"queued": 1}
    assert store.get_edition(record.id).status == "sending"


def test_claim_returns_recipient_and_stable_message_id(store: Store) -> None:
    store.add_subscriber("daily", "ann@Example.ORG", name="Ann Émile", sections=["World"],
                         attributes={"city": "Lyon"})
    edition_id = _publish(store, 0)

    [claim] = store.claim_deliveries(edition_id, worker_id="w1", limit=10, now=NOW, lease=LEASE)

    assert isinstance(claim, Claim)
    assert claim.edition_id == edition_id
    assert claim.email == "ann@example.org"
    assert claim.name == "Ann Émile"
    assert claim.sections == frozenset({"World"})
    assert claim.attributes == {"city": "Lyon"}
    assert claim.attempts == 0
    assert claim.first_attempt_at == NOW
    assert re.fullmatch(rf"<e{edition_id}\.s{claim.subscriber_id}\.[0-9a-f]{{12}}"
                        r"@news\.example\.org>", claim.message_id)
    assert store.claim_deliveries(edition_id, worker_id="w2", limit=10, now=NOW,
                                  lease=LEASE) == []
    store.mark_deferred(claim, error="421 busy", retry_at=NOW + timedelta(minutes=2),
                        now=NOW)
    assert store.claim_deliveries(edition_id, worker_id="w1", limit=10,
                                  now=NOW + timedelta(minutes=1), lease=LEASE) == []
    [again] = store.claim_deliveries(edition_id, worker_id="w1", limit=10,
                                     now=NOW + timedelta(minutes=2), lease=LEASE)
    assert again.delivery_id == claim.delivery_id
    assert again.message_id == claim.message_id
    assert again.attempts == 1
    assert again.first_attempt_at == NOW


def test_message_ids_are_unique(store: Store) -> None:
    edition_id = _publish(store, 30)
    claims = store.claim_deliveries(edition_id, worker_id="w", limit=100, now=NOW, lease=LEASE)
    assert len(claims) == 30
    assert len({c.message_id for c in claims}) == 30
    assert len({c.message_id.split(".")[2] for c in claims}) > 1


def test_unsubscribe_between_claims_skips_the_row(store: Store) -> None:
    edition_id = _publish(store, 6)
    first = store.claim_deliveries(edition_id, worker_id="w", limit=2, now=NOW, lease=LEASE)
    assert [c.email for c in first] == ["reader0000@example.org", "reader0001@example.org"]
    store.set_status("daily", "reader0002@example.org", "unsubscribed", now=NOW)
    store.set_status("daily", "reader0003@example.org", "bounced", now=NOW)
    store.suppress("READER0004@example.org", "complained", now=NOW)
    member = store.get_membership("daily", "reader0005@example.org")
    assert member is not None
    store.unsubscribe(member.subscriber_id, "daily", now=NOW)

    later = store.claim_deliveries(edition_id, worker_id="w", limit=10, now=NOW, lease=LEASE)

    assert later == []
    assert store.delivery_reasons(edition_id) == {
        "sending": {"": 2},
        "skipped": {"unsubscribed": 2, "bounced": 1, "complained": 1},
    }


def test_suppression_alone_skips_with_reason_suppressed(store: Store) -> None:
    edition_id = _publish(store, 1)
    store.add_subscriber("weekly", "reader0000@example.org")
    # A suppression row whose memberships were not touched (e.g. added by hand).
    from digest.store.ledger import suppress_address

    with store.write() as conn:
        suppress_address(conn, "reader0000@example.org", "bounced", None, NOW)
    assert store.claim_deliveries(edition_id, worker_id="w", limit=5, now=NOW,
                                  lease=LEASE) == []
    assert store.delivery_reasons(edition_id) == {"skipped": {"suppressed": 1}}


def test_claim_fills_the_limit_past_skipped_rows(store: Store) -> None:
    edition_id = _publish(store, 8)
    for i in range(5):
        store.set_status("daily", f"reader{i:04d}@example.org", "unsubscribed", now=NOW)
    claims = store.claim_deliveries(edition_id, worker_id="w", limit=3, now=NOW, lease=LEASE)
    assert [c.email for c in claims] == [f"reader{i:04d}@example.org" for i in (5, 6, 7)]
    assert store.delivery_summary(edition_id) == {"skipped": 5, "sending": 3}


def test_marks_apply_only_to_sending_rows(store: Store) -> None:
    edition_id = _publish(store, 3)
    a, b, c = store.claim_deliveries(edition_id, worker_id="w", limit=3, now=NOW, lease=LEASE)
    store.mark_sent(a, response="250 2.0.0 queued as X1", now=NOW)
    store.mark_failed(a, code=550, error="late result", suppress=True, now=NOW)
    store.mark_expired(a, error="late", now=NOW)
    store.mark_deferred(a, error="late", retry_at=NOW, now=NOW)
    row = store.get_delivery(a.delivery_id)
    assert (row["status"], row["response"], row["attempts"]) == ("sent", "250 2.0.0 queued as X1",
                                                                 1)
    assert not store.is_suppressed(a.email)

    store.mark_failed(b, code=550, error="5.1.1 no such user", suppress=True,
                      now=NOW)
    store.mark_expired(c, error="4xx for 24h", now=NOW)

    assert store.delivery_reasons(edition_id) == {
        "sent": {"": 1}, "failed": {"smtp 550": 1}, "expired": {"retries exhausted": 1}}
    assert store.is_suppressed(b.email)
    member = store.get_membership("daily", b.email)
    assert member is not None and member.status == "bounced"
    assert store.next_wakeup(edition_id) is None
    assert store.get_edition(edition_id).status == "sent"


def test_failed_without_suppress_keeps_the_address(store: Store) -> None:
    edition_id = _publish(store, 1)
    [claim] = store.claim_deliveries(edition_id, worker_id="w", limit=1, now=NOW, lease=LEASE)
    store.mark_failed(claim, code=None, error="refused by policy", suppress=False,
                      now=NOW)
    assert store.delivery_reasons(edition_id) == {"failed": {"refused": 1}}
    assert not store.is_suppressed(claim.email)
    member = store.get_membership("daily", claim.email)
    assert member is not None and member.status == "active"


def test_suppressed_bounce_is_left_out_of_the_next_edition(store: Store) -> None:
    edition_id = _publish(store, 2)
    store.add_subscriber("weekly", "reader0000@example.org")
    first, _ = store.claim_deliveries(edition_id, worker_id="w", limit=2, now=NOW, lease=LEASE)
    store.mark_failed(first, code=550, error="gone", suppress=True, now=NOW)
    weekly = store.get_membership("weekly", "reader0000@example.org")
    assert weekly is not None and weekly.status == "bounced"
    nxt = store.record_edition(_edition(day=date(2026, 3, 3)))
    assert store.publish_edition(nxt.id, message_id_domain="d.test", now=NOW) == 1
    assert [m.email for m in store.iter_eligible("daily")] == ["reader0001@example.org"]


def test_expired_lease_is_reclaimed_and_counts_an_attempt(store: Store) -> None:
    edition_id = _publish(store, 1)
    [first] = store.claim_deliveries(edition_id, worker_id="crashed", limit=1, now=NOW,
                                     lease=LEASE)
    assert store.next_wakeup(edition_id) == NOW + LEASE
    assert store.claim_deliveries(edition_id, worker_id="w2", limit=1,
                                  now=NOW + timedelta(minutes=4), lease=LEASE) == []
    [second] = store.claim_deliveries(edition_id, worker_id="w2", limit=1,
                                      now=NOW + LEASE, lease=LEASE)
    assert second.delivery_id == first.delivery_id
    assert second.message_id == first.message_id
    assert second.attempts == 1
    assert store.release_claims("crashed") == 0
    assert store.release_claims("w2") == 1
    assert store.delivery_summary(edition_id) == {"queued": 1}
    assert store.next_wakeup(edition_id) == NOW


def test_release_claims_returns_rows_to_queue(store: Store) -> None:
    edition_id = _publish(store, 4)
    store.claim_deliveries(edition_id, worker_id="a", limit=3, now=NOW, lease=LEASE)
    store.claim_deliveries(edition_id, worker_id="b", limit=3, now=NOW, lease=LEASE)
    assert store.release_claims("a") == 3
    assert store.delivery_summary(edition_id) == {"queued": 3, "sending": 1}
    again = store.claim_deliveries(edition_id, worker_id="c", limit=10, now=NOW, lease=LEASE)
    assert len(again) == 3
    assert all(c.attempts == 0 for c in again)


def test_publish_of_unknown_edition_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no edition 999"):
        store.publish_edition(999, message_id_domain="d.test", now=NOW)


def test_concurrent_workers_never_claim_the_same_row(store: Store, store_url: str) -> None:
    total = 240
    for i in range(total):
        store.add_subscriber("daily", f"c{i:04d}@example.org")
    record = store.record_edition(_edition())
    store.publish_edition(record.id, message_id_domain="d.test", now=NOW)
    seen: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        own = open_store(store_url, migrate=False)
        mine: list[int] = []
        try:
            barrier.wait()
            while batch := own.claim_deliveries(record.id, worker_id=name, limit=7, now=NOW,
                                                lease=LEASE):
                for claim in batch:
                    mine.append(claim.delivery_id)
                    own.mark_sent(claim, response="250 ok", now=NOW)
                time.sleep(0.005)  # "sending": lets the other workers in between claims
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            seen[name] = mine
            own.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    claimed = [d for ids in seen.values() for d in ids]
    assert len(claimed) == total
    assert len(set(claimed)) == total
    assert sum(1 for ids in seen.values() if ids) >= 2
    assert store.delivery_summary(record.id) == {"sent": total}


def test_mark_sent_many_ends_only_sending_rows(store: Store) -> None:
    edition_id = _publish(store, 4)
    a, b, c = store.claim_deliveries(edition_id, worker_id="w", limit=3, now=NOW, lease=LEASE)
    store.mark_failed(c, code=550, error="gone", suppress=False, now=NOW)
    ended = store.mark_sent_many([(a, "250 a"), (b, "250 b"),
                                  (c, "250 late")], now=NOW)
    assert ended == 2
    assert store.mark_sent_many([], now=NOW) == 0
    assert store.delivery_summary(edition_id) == {"sent": 2, "failed": 1, "queued": 1}
    assert store.get_delivery(b.delivery_id)["response"] == "250 b"
    assert store.get_delivery(b.delivery_id)["finished_at"] == NOW


def test_lost_rows_come_first_when_checked_for_and_when_the_queue_runs_short(
        store: Store) -> None:
    edition_id = _publish(store, 5)
    short = timedelta(seconds=30)
    [a] = store.claim_deliveries(edition_id, worker_id="dead", limit=1, now=NOW, lease=short)
    # The lease ran out and LOST_CHECK has passed since the last look: lost rows first.
    later = NOW + short + LOST_CHECK
    [again] = store.claim_deliveries(edition_id, worker_id="w2", limit=1, now=later,
                                     lease=LEASE)
    assert again.delivery_id == a.delivery_id and again.attempts == 1
    [b] = store.claim_deliveries(edition_id, worker_id="dead", limit=1, now=later,
                                 lease=timedelta(milliseconds=100))
    # b's lease has run out, but the store looked for lost rows less than LOST_CHECK ago:
    # queued rows come first while they fill the claim, then lost ones.
    soon = later + LOST_CHECK / 2
    [c] = store.claim_deliveries(edition_id, worker_id="w2", limit=1, now=soon, lease=LEASE)
    assert c.delivery_id != b.delivery_id and c.attempts == 0
    rest = store.claim_deliveries(edition_id, worker_id="w2", limit=10, now=soon, lease=LEASE)
    assert len(rest) == 3 and b.delivery_id in {r.delivery_id for r in rest}
    assert store.delivery_summary(edition_id) == {"sending": 5}
    assert store.release_claims("dead") == 0


def test_claims_and_marks_larger_than_one_statement(store: Store) -> None:
    edition_id = _publish(store, 310)
    claims = store.claim_deliveries(edition_id, worker_id="w", limit=310, now=NOW,
                                    lease=LEASE)
    ids = [c.delivery_id for c in claims]
    assert len(set(ids)) == 310 and ids == sorted(ids)  # oldest first
    assert claims[0].sections is None and claims[0].attributes == {}
    assert claims[0].first_attempt_at == NOW and claims[0].name == "Reader 0"
    assert store.delivery_summary(edition_id) == {"sending": 310}
    ended = store.mark_sent_many([(c, f"250 queued as Q{c.delivery_id}")
                                  for c in claims], now=NOW)
    assert ended == 310
    assert store.delivery_summary(edition_id) == {"sent": 310}
    last = store.get_delivery(ids[-1])
    assert last["response"] == f"250 queued as Q{ids[-1]}" and last["attempts"] == 1
    assert last["claimed_by"] is None and last["lease_until"] is None


def test_sqlite_fast_path_errors_are_store_errors_and_roll_back(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'ro.db'}") as store:
        edition_id = _publish(store, 2)
        [claim] = store.claim_deliveries(edition_id, worker_id="w", limit=1, now=NOW,
                                         lease=LEASE)
        with store.engine.connect() as conn:  # the pool hands this connection out next
            conn.exec_driver_sql("PRAGMA query_only=ON")
        with pytest.raises(StoreError, match="is read-only"):
            store.mark_sent_many([(claim, "250 ok")], now=NOW)
        with pytest.raises(StoreError, match="is read-only"):
            store.claim_deliveries(edition_id, worker_id="w", limit=1, now=NOW, lease=LEASE)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only=OFF")
        assert store.delivery_summary(edition_id) == {"queued": 1, "sending": 1}


def test_a_late_sent_mark_is_an_event_never_a_second_outcome(store: Store) -> None:
    """Worker A's 250 waits in its commit queue past the lease; B reclaims the row and
    defers it. A's claim is no longer the row's: its late 250 is kept as an event and the
    row stays as B left it (fencing: a worker that lost its lease records nothing)."""
    edition_id = _publish(store, 1)
    [first] = store.claim_deliveries(edition_id, worker_id="A", limit=1, now=NOW, lease=LEASE)
    assert (first.worker_id, first.token, first.lease_until) == ("A", 1, NOW + LEASE)
    later = NOW + LEASE + LOST_CHECK + timedelta(seconds=1)
    [again] = store.claim_deliveries(edition_id, worker_id="B", limit=1, now=later, lease=LEASE)
    assert again.delivery_id == first.delivery_id and again.token == 2
    assert store.mark_deferred(again, error="451 try later",
                               retry_at=later + timedelta(minutes=5), now=later)
    assert store.delivery_summary(edition_id) == {"queued": 1}

    assert store.mark_sent_many([(first, "250 ok")], now=later) == 0
    assert store.delivery_summary(edition_id) == {"queued": 1}
    [event] = store.late_replies(edition_id)
    assert (event["delivery_id"], event["kind"], event["worker"], event["claim_token"],
            event["detail"]) == (first.delivery_id, "late-sent", "A", 1, "250 ok")

    # B's next claim sends it; a second late 250 from A is one more event, not a "sent".
    [third] = store.claim_deliveries(edition_id, worker_id="B", limit=1,
                                     now=later + timedelta(minutes=5), lease=LEASE)
    assert store.mark_sent(third, response="250 B", now=later + timedelta(minutes=5))
    assert not store.mark_sent(first, response="250 again", now=later + timedelta(minutes=6))
    row = store.get_delivery(first.delivery_id)
    assert (row["status"], row["response"], row["claim_token"]) == ("sent", "250 B", 3)
    assert [e["kind"] for e in store.late_replies(edition_id)] == ["late-sent", "late-sent"]
    # The same claim marked twice (a commit retried after an unknown outcome) is not late.
    assert store.mark_sent_many([(third, "250 B")], now=later) == 0
    assert len(store.late_replies(edition_id)) == 2


def test_every_mark_is_fenced_by_worker_and_token(store: Store) -> None:
    """A claim whose lease ran out and which its own worker took back (a new token), or a
    claim naming another worker, moves nothing: no outcome, no suppression, no attempt."""
    edition_id = _publish(store, 1)
    [old] = store.claim_deliveries(edition_id, worker_id="A", limit=1, now=NOW, lease=LEASE)
    later = NOW + LEASE + LOST_CHECK
    [new] = store.claim_deliveries(edition_id, worker_id="A", limit=1, now=later, lease=LEASE)
    assert new.token == old.token + 1 and new.attempts == 1
    forged = dataclasses.replace(new, worker_id="B")
    for claim in (old, forged):
        assert not store.mark_sent(claim, response="250 ok", now=later)
        assert not store.mark_failed(claim, code=550, error="5.1.1 gone", suppress=True,
                                     now=later)
        assert not store.mark_expired(claim, error="window", now=later)
        assert not store.mark_deferred(claim, error="451", retry_at=later, now=later)
        assert not store.mark_unconfirmed(claim, error="dropped after DATA", now=later)
    row = store.get_delivery(new.delivery_id)
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("sending", "A", 1)
    assert not store.is_suppressed(new.email)
    kinds = [e["kind"] for e in store.late_replies(edition_id)]
    assert kinds == ["late-sent", "late-failed", "late-expired", "late-deferred",
                     "late-unconfirmed"] * 2
    assert store.mark_failed(new, code=550, error="5.1.1 gone", suppress=True, now=later)
    assert store.is_suppressed(new.email)
