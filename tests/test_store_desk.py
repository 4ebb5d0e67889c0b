"""What the desk keeps and reads in the store, on SQLite and PostgreSQL: editors, rate-limit
buckets, and the report queries (timeline, failures, retries, suppressions, rates, growth)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from render_editions import seed_edition

from digest.store import InvalidEditorError, Store

pytest_plugins = ["store_backends"]

T0 = datetime(2026, 3, 2, 6, 58, 30, tzinfo=UTC)


# --------------------------------------------------------------------------- editors


def test_editors_are_added_listed_rekeyed_and_removed(store: Store) -> None:
    ana = store.add_editor("Ana", "$argon2id$v=19$hash-one", now=T0)
    assert (ana.name, ana.password_hash, ana.created_at) == ("Ana", "$argon2id$v=19$hash-one", T0)
    assert len(ana.session_key) == 32
    with pytest.raises(InvalidEditorError, match="exists already"):
        store.add_editor("ANA", "x")
    with pytest.raises(InvalidEditorError, match="not usable"):
        store.add_editor("ana lopez", "x")
    store.add_editor("ben.k", "$argon2id$v=19$hash-two")
    assert [e.name for e in store.list_editors()] == ["Ana", "ben.k"]
    assert store.get_editor("aNa").name == "Ana"
    changed = store.set_editor_password("ana", "$argon2id$v=19$new", now=T0 + timedelta(1))
    assert changed.session_key != ana.session_key
    assert changed.password_changed_at == T0 + timedelta(1)
    store.end_sessions("ana")
    assert store.get_editor("ana").session_key != changed.session_key
    store.update_password_hash("ana", "not the current hash", "ignored")
    assert store.get_editor("ana").password_hash == "$argon2id$v=19$new"
    store.update_password_hash("ana", "$argon2id$v=19$new", "$argon2id$v=19$stronger")
    assert store.get_editor("ana").password_hash == "$argon2id$v=19$stronger"
    store.record_sign_in("ana", now=T0)
    assert store.get_editor("ana").last_sign_in_at == T0
    assert store.remove_editor("ANA") is True
    assert store.remove_editor("ana") is False
    with pytest.raises(InvalidEditorError, match="no editor named"):
        store.set_editor_password("ana", "x")
    assert store.get_editor("ana") is None


# --------------------------------------------------------------------------- rate limits


def test_rate_buckets_empty_refill_and_can_be_looked_at(store: Store) -> None:
    """The sign-up buckets, which the desk's sign-in limits share, can also be looked at."""
    take = store.take_signup_token
    for _ in range(3):
        assert take("k", capacity=3, per_second=1 / 60, now=T0) == 0
    assert take("k", capacity=3, per_second=1 / 60, take=False, now=T0) == 60
    assert take("k", capacity=3, per_second=1 / 60, now=T0) == 60
    assert take("k", capacity=3, per_second=1 / 60, now=T0 + timedelta(seconds=45)) == 15
    # Looking does not take.
    assert take("k", capacity=3, per_second=1 / 60, take=False,
                 now=T0 + timedelta(seconds=60)) == 0
    assert take("k", capacity=3, per_second=1 / 60, now=T0 + timedelta(seconds=60)) == 0
    assert take("k", capacity=3, per_second=1 / 60, now=T0 + timedelta(seconds=61)) == 59
    # Other keys are other buckets; an unknown key is full.
    assert take("other", capacity=3, per_second=1 / 60, take=False, now=T0) == 0
    with pytest.raises(ValueError):
        take("x" * 101, capacity=3, per_second=1)


# --------------------------------------------------------------------------- reports


def _published(store: Store, n: int) -> tuple[int, list]:
    for i in range(n):
        store.add_subscriber("daily", f"reader{i}@example.org")
    record = store.record_edition(seed_edition())
    store.publish_edition(record.id, message_id_domain="news.example.org", now=T0)
    claims = store.claim_deliveries(record.id, worker_id="w", limit=100, now=T0,
                                    lease=timedelta(hours=1))
    return record.id, claims


def test_timeline_failures_retries_and_caused_suppressions(store: Store) -> None:
    edition_id, claims = _published(store, 10)
    store.mark_sent_many([(c, "250") for c in claims[:4]],
                         now=T0 + timedelta(seconds=20))
    store.mark_sent_many([(c, "250") for c in claims[4:6]],
                         now=T0 + timedelta(minutes=2, seconds=5))
    store.mark_failed(claims[6], code=550, error="5.1.1 user unknown",
                      suppress=True, now=T0 + timedelta(minutes=2, seconds=6))
    store.mark_failed(claims[7], code=552, error="5.2.2 mailbox full",
                      suppress=False, now=T0 + timedelta(minutes=2, seconds=7))
    store.mark_deferred(claims[8], error="451 greylisted",
                        retry_at=T0 + timedelta(minutes=9), now=T0)
    # An address suppressed for another reason (not this edition) is not "caused".
    store.suppress("reader9@example.org", "complained", detail="earlier")

    assert store.delivery_timeline(edition_id) == [
        (datetime(2026, 3, 2, 6, 58, tzinfo=UTC), {"sent": 4}),
        (datetime(2026, 3, 2, 7, 0, tzinfo=UTC), {"sent": 2, "failed": 2}),
    ]
    groups = store.failure_groups(edition_id, addresses=5)
    assert [(g.status, g.reason, g.count) for g in groups] == [
        ("failed", "smtp 550 5.1.1", 1), ("failed", "smtp 552 5.2.2", 1)]
    assert groups[0].addresses == ("reader6@example.org",)
    assert groups[0].example == "5.1.1 user unknown"
    retry = store.retry_state(edition_id)
    assert (retry.retrying, retry.queued, retry.sending) == (1, 0, 1)
    assert retry.next_retry_at == T0 + timedelta(minutes=9)
    caused = store.suppressions_caused(edition_id)
    assert [(c.reason, c.email) for c in caused] == [("bounced", "reader6@example.org")]


def test_a_bounce_report_after_the_send_counts_as_caused_and_in_the_rates(store: Store) -> None:
    edition_id, claims = _published(store, 4)
    store.mark_sent_many([(c, "250") for c in claims], now=T0)
    first, second = claims[0], claims[1]
    store.record_bounce("r1", kind="hard", subscriber_id=first.subscriber_id,
                        delivery_id=first.delivery_id, status="5.1.1", reason="unknown",
                        now=T0 + timedelta(hours=1))
    store.record_bounce("r2", kind="complaint", subscriber_id=second.subscriber_id,
                        delivery_id=second.delivery_id, status=None, reason="abuse",
                        now=T0 + timedelta(hours=2))
    caused = {(c.reason, c.email) for c in store.suppressions_caused(edition_id)}
    assert caused == {("bounced", first.email), ("complained", second.email)}
    (rates,) = store.edition_rates("daily")
    assert (rates.sent, rates.refused, rates.hard, rates.soft, rates.complaints) == (4, 0, 1, 0, 1)
    assert rates.complaint_rate == 0.25 and rates.bounce_rate == 0.25
    assert store.edition_rates("weekend") == []


def test_list_growth_per_local_day(store: Store) -> None:
    zone = ZoneInfo("America/New_York")
    day = timedelta(days=1)
    # Two joined on 1 March (local), one on 2 March, one left on 2 March; one is pending.
    store.add_subscriber("daily", "a@example.org", now=datetime(2026, 3, 1, 15, tzinfo=UTC))
    store.add_subscriber("daily", "b@example.org", now=datetime(2026, 3, 2, 3, tzinfo=UTC))
    store.add_subscriber("daily", "c@example.org", now=datetime(2026, 3, 2, 15, tzinfo=UTC))
    store.set_status("daily", "a@example.org", "unsubscribed",
                     now=datetime(2026, 3, 2, 16, tzinfo=UTC))
    store.add_subscriber("daily", "p@example.org", status="pending",
                         now=datetime(2026, 3, 2, 15, tzinfo=UTC))
    growth = store.list_growth("daily", days=3, zone=zone, today=date(2026, 3, 2))
    assert [(g.day, g.joined, g.left, g.size) for g in growth] == [
        (date(2026, 2, 28), 0, 0, 0),
        (date(2026, 3, 1), 2, 0, 2),  # 03:00 UTC on the 2nd is still the 1st in New York
        (date(2026, 3, 2), 1, 1, 2),
    ]
    assert date(2026, 3, 2) - growth[0].day == 2 * day


def test_finding_a_reader_and_what_the_desk_shows_of_them(store: Store) -> None:
    sid = store.add_subscriber("daily", "Ana@Example.org", sections=["World"])
    store.add_subscriber("weekend", "ana@example.org")
    assert store.find_subscriber_id("ANA@example.org") == sid
    assert store.find_subscriber_id("not an address") is None
    assert store.find_subscriber_id("nobody@example.org") is None
    assert [m.list_name for m in store.subscriber_memberships(sid)] == ["daily", "weekend"]
    assert store.suppression_of(sid) is None
    store.suppress("ana@example.org", "bounced", detail="550 5.1.1")
    reason, _, detail = store.suppression_of(sid)
    assert (reason, detail) == ("bounced", "550 5.1.1")
    edition_id, claims = _published(store, 0)
    assert claims == []  # suppressed: no ledger row
    assert store.subscriber_deliveries(sid) == []
    assert edition_id


def test_failures_under_one_reply_code_are_grouped_by_their_enhanced_status(
        store: Store) -> None:
    """Two unknown mailboxes and a policy block, all "550": three rows, two reasons."""
    edition_id, claims = _published(store, 6)
    for i, error in enumerate((
            "550 at RCPT: 5.1.1 <address>: Recipient address rejected: User unknown",
            "550 at RCPT: 5.1.1 <address>: Recipient address rejected: User unknown",
            "550 at RCPT: 5.7.1 <address> rejected by policy",
            "550 at DATA: 5.7.1 Message content rejected",
            "550 at RCPT: Recipient address rejected")):
        store.mark_failed(claims[i], code=550, error=error, suppress=False,
                          now=T0 + timedelta(seconds=i))
    store.mark_expired(claims[5], error="451 at RCPT: 4.7.1 Greylisted",
                       now=T0 + timedelta(minutes=5))
    groups = store.failure_groups(edition_id, addresses=5)
    assert [(g.status, g.reason, g.count) for g in groups] == [
        ("failed", "smtp 550 5.1.1 at RCPT", 2),
        ("expired", "retries exhausted (last: 451 4.7.1 at RCPT)", 1),
        ("failed", "smtp 550 5.7.1 at DATA", 1),
        ("failed", "smtp 550 5.7.1 at RCPT", 1),
        ("failed", "smtp 550 at RCPT", 1),
    ]
    assert sorted(groups[0].addresses) == ["reader0@example.org", "reader1@example.org"]
    assert groups[3].addresses == ("reader2@example.org",)
    assert groups[3].example == "550 at RCPT: 5.7.1 <address> rejected by policy"


def test_failure_labels_read_the_enhanced_code_and_phase() -> None:
    from digest.store.failures import failure_label, reply_status

    assert reply_status("5.0.0 <address>: 5.1.1 user unknown", 550) == "5.1.1"
    assert reply_status("4.7.1 greylisted", 550) == "5.7.1"  # the reply code's class
    assert reply_status("Recipient address rejected") is None
    assert reply_status("version 1.2.3 of the filter") is None  # no class 1
    assert failure_label("smtp 550", "550 at RCPT: 5.1.1 <address>: User unknown", 550) == \
        "smtp 550 5.1.1 at RCPT"
    assert failure_label("smtp 554", "554 at DATA: 5.6.0 Refused at end of data", 554) == \
        "smtp 554 5.6.0 at DATA"
    assert failure_label("refused", "550 at MAIL: 5.7.1 Sender not allowed", None) == \
        "smtp 550 5.7.1 at MAIL"
    assert failure_label("smtp 550", "5.1.1 user unknown", 550) == "smtp 550 5.1.1"
    assert failure_label("smtp 550", None, 550) == "smtp 550"
    assert failure_label("retries exhausted", "451 at RCPT: 4.7.1 Greylisted", 451) == \
        "retries exhausted (last: 451 4.7.1 at RCPT)"
    assert failure_label("retries exhausted", "connection lost", None) == "retries exhausted"
    assert failure_label("no longer subscribed", None) == "no longer subscribed"
    assert failure_label(None, None) == "no reason recorded"
