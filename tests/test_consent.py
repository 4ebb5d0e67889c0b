"""The ownership rule and the consent record, in the store, on SQLite and PostgreSQL.

Readers own their consent and sections; imports and sign-ups cannot override them; every
change is one event with its cause (issue 9, items 1 and 2).
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from store_rows import all_rows

from digest.errors import SubscriberNotFoundError
from digest.models import Edition, EditionSection, Story
from digest.store import ImportReport, InvalidSubscriberError, Store, open_store
from digest.store.engine import create_engine
from digest.store.migrate import upgrade

pytest_plugins = ["store_backends"]

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
SECTIONS = ("Politics", "World", "Business", "Sports")


def _import(store: Store, text: str, *, name: str = "list.csv",
            **kwargs: object) -> ImportReport:
    return store.import_csv("daily", io.BytesIO(text.encode()), known_sections=SECTIONS,
                            source_name=name, **kwargs)  # type: ignore[arg-type]


def _member(store: Store, email: str, list_name: str = "daily"):  # type: ignore[no-untyped-def]
    member = store.get_membership(list_name, email)
    assert member is not None
    return member


def _story(store: Store, email: str) -> list[tuple[str | None, str, str, str]]:
    return [(e.old_status, e.new_status, e.actor, e.cause)
            for e in store.membership_history(email)]


FILE = ("email,name,sections,status\n"
        "ann@example.org,Ann,World,\n"
        "bob@example.org,Bob,,\n"
        "cat@example.org,Cat,Sports,\n")


# --------------------------------------------------------------------------- the rule


def test_an_import_never_makes_an_opted_out_or_pending_reader_active(store: Store) -> None:
    _import(store, FILE)
    ann = _member(store, "ann@example.org")
    assert store.unsubscribe(ann.subscriber_id, "daily", cause="one-click-unsubscribe")
    store.suppress("bob@example.org", "complained", cause="complaint")
    request = store.request_subscription("daily", "dan@example.org")  # pending, unconfirmed
    shouty = FILE.replace(",\n", ",active\n") + "dan@example.org,Dan,,active\n"
    for text in (FILE, shouty):
        for confirmed in (True, False):
            report = _import(store, text, confirmed=confirmed)
            assert report.accepted == 0
    assert [_member(store, f"{n}@example.org").status for n in ("ann", "bob", "cat", "dan")] \
        == ["unsubscribed", "complained", "active", "pending"]
    assert [m.email for m in store.iter_eligible("daily")] == ["cat@example.org"]
    assert request.member.status == "pending"


def test_sections_the_reader_chose_are_never_overwritten(store: Store) -> None:
    _import(store, FILE)
    ann = _member(store, "ann@example.org")
    chosen = store.update_sections(ann.subscriber_id, "daily", ["Business"], known=SECTIONS,
                                   now=NOW)
    assert chosen.sections == {"Business"} and chosen.sections_chosen_at == NOW
    changed = FILE.replace("Ann,World", "Ann,Politics").replace("Cat,Sports", "Cat,World")
    report = _import(store, changed)
    assert (report.updated, report.unchanged) == (1, 2)
    assert [(k.line, k.reason) for k in report.kept] == [
        (2, ("sections chosen by the reader (on the preferences page or at a confirmed "
             "sign-up) were left alone"))]
    assert _member(store, "ann@example.org").sections == {"Business"}
    assert _member(store, "cat@example.org").sections == {"World"}  # the editor's: updated
    # Not even a "every section" choice is overwritten, nor by `subscribers add`.
    store.update_sections(ann.subscriber_id, "daily", None, known=SECTIONS)
    _import(store, changed)
    store.add_subscriber("daily", "ann@example.org", sections=["World"])
    assert _member(store, "ann@example.org").sections is None


def test_an_import_lowers_a_status_once(store: Store) -> None:
    _import(store, FILE)
    lowering = FILE.replace("Ann,World,", "Ann,World,unsubscribed")
    first = _import(store, lowering, name="crm.csv")
    assert first.updated == 1 and _member(store, "ann@example.org").status == "unsubscribed"
    # The reader comes back by their own confirmed sign-up ...
    request = store.request_subscription("daily", "ann@example.org")
    store.confirm_subscription(request.member.subscriber_id, "daily",
                               request_id=request.request_id)
    # ... and the same stale file, synced again by every send, does not undo it.
    again = _import(store, lowering, name="crm.csv")
    assert _member(store, "ann@example.org").status == "active"
    assert again.kept[0].line == 2 and "the reader came back" in again.kept[0].reason
    assert (again.updated, again.unchanged) == (0, 3)
    # An editor who means it says so explicitly.
    store.set_status("daily", "ann@example.org", "unsubscribed")
    assert _member(store, "ann@example.org").status == "unsubscribed"


def test_a_sign_up_changes_nothing_about_a_member_until_its_confirmation(store: Store) -> None:
    _import(store, FILE, now=NOW)
    ann = _member(store, "ann@example.org")
    store.unsubscribe(ann.subscriber_id, "daily", now=NOW + timedelta(hours=1))
    before = _member(store, "ann@example.org")
    request = store.request_subscription("daily", "ANN@example.org", name="Mallory",
                                         sections=["Politics"], now=NOW + timedelta(hours=2))
    assert request.outcome == "requested"
    after = _member(store, "ann@example.org")
    assert after == before  # status, changed_at, confirmed_at, name, sections
    assert (after.status, after.name, after.sections) == ("unsubscribed", "Ann", {"World"})
    confirmed = store.confirm_subscription(ann.subscriber_id, "daily",
                                           request_id=request.request_id,
                                           now=NOW + timedelta(hours=3))
    # The confirmed request's name and sections are the reader's now.
    assert (confirmed.status, confirmed.sections, confirmed.name) == (
        "active", {"Politics"}, "Mallory")
    assert confirmed.confirmed_at == confirmed.sections_chosen_at == NOW + timedelta(hours=3)


def test_no_request_for_a_suppressed_or_complained_address(store: Store) -> None:
    _import(store, FILE)
    store.suppress("ann@example.org", "bounced", cause="bounce")
    store.set_status("daily", "bob@example.org", "complained")
    history = all_rows(store)["membership_events"]
    for email in ("ann@example.org", "bob@example.org", "BOB@example.org"):
        request = store.request_subscription("daily", email)
        assert (request.outcome, request.request_id) == ("suppressed", None)
        # Also on a list the address is not on yet.
        assert store.request_subscription("weekly", email).outcome == "suppressed"
    assert all_rows(store)["membership_events"] == history
    assert store.get_membership("weekly", "ann@example.org") is None


def test_confirmation_is_bound_to_its_request(store: Store) -> None:
    first = store.request_subscription("daily", "ann@example.org")
    sid = first.member.subscriber_id
    store.unsubscribe(sid, "daily")  # the reader left after the first request
    assert not store.can_confirm(sid, "daily", first.request_id)
    assert store.confirm_subscription(sid, "daily", request_id=first.request_id
                                      ).status == "unsubscribed"
    second = store.request_subscription("daily", "ann@example.org")
    assert store.can_confirm(sid, "daily", second.request_id)
    # A request of another member or another list confirms nothing.
    other = store.request_subscription("daily", "bob@example.org")
    weekly = store.request_subscription("weekly", "ann@example.org")
    for request_id in (other.request_id, weekly.request_id, 10**6):
        assert store.confirm_subscription(sid, "daily", request_id=request_id
                                          ).status == "unsubscribed"
    # A link from before the record (no request) confirms a pending member only.
    assert store.confirm_subscription(sid, "daily").status == "unsubscribed"
    assert store.confirm_subscription(other.member.subscriber_id, "daily").status == "active"
    assert store.confirm_subscription(sid, "daily", request_id=second.request_id
                                      ).status == "active"


def test_only_an_editor_with_consent_makes_someone_active(store: Store) -> None:
    _import(store, FILE)
    store.set_status("daily", "ann@example.org", "unsubscribed")
    with pytest.raises(InvalidSubscriberError, match="add --confirmed"):
        store.set_status("daily", "ann@example.org", "active")
    store.add_subscriber("daily", "ann@example.org", status="active")
    assert _member(store, "ann@example.org").status == "unsubscribed"
    store.add_subscriber("daily", "ann@example.org", confirmed=True,
                         detail={"command": "subscribers add --confirmed"})
    assert _member(store, "ann@example.org").status == "active"
    last = store.membership_history("ann@example.org")[-1]
    assert (last.actor, last.cause, last.detail) == (
        "editor", "editor-confirmed", {"command": "subscribers add --confirmed"})


# --------------------------------------------------------------------------- the record


def test_every_change_is_one_event_with_its_cause(store: Store) -> None:
    _import(store, FILE, name="subscribers/daily.csv", now=NOW)
    ann = _member(store, "ann@example.org")
    sid = ann.subscriber_id
    store.update_sections(sid, "daily", ["Sports"], known=SECTIONS)
    store.unsubscribe(sid, "daily", cause="one-click-unsubscribe")
    request = store.request_subscription("daily", "ann@example.org", sections=["World"])
    store.confirm_subscription(sid, "daily", request_id=request.request_id)
    store.unsubscribe(sid, "daily", cause="unsubscribe-page")
    store.add_subscriber("daily", "ann@example.org", confirmed=True)
    store.set_status("daily", "ann@example.org", "unsubscribed")
    events = store.membership_history("ann@example.org")
    assert [(e.old_status, e.new_status, e.actor, e.cause) for e in events] == [
        (None, "active", "import", "import"),
        ("active", "active", "reader", "preferences"),
        ("active", "unsubscribed", "reader", "one-click-unsubscribe"),
        ("unsubscribed", "unsubscribed", "reader", "web-signup"),
        ("unsubscribed", "active", "reader", "confirm"),
        ("active", "unsubscribed", "reader", "unsubscribe-page"),
        ("unsubscribed", "active", "editor", "editor-confirmed"),
        ("active", "unsubscribed", "editor", "editor-remove"),
    ]
    first = events[0]
    assert first.created_at == NOW and first.list_name == "daily"
    assert first.detail == {"file": "subscribers/daily.csv", "line": 2}
    assert (first.new_sections, events[1].old_sections, events[1].new_sections) == (
        ("World",), ("World",), ("Sports",))
    assert events[3].detail == {"sections": ["World"]}
    assert events[4].detail == {"request": request.request_id}
    assert events[4].new_sections == ("World",)
    assert [e.id for e in events] == sorted(e.id for e in events)
    line = events[2].describe()
    assert "daily  active -> unsubscribed  by reader: one-click-unsubscribe" in line
    assert events[0].describe().endswith("file=subscribers/daily.csv, line=2")
    # Nothing that changes nothing is recorded.
    store.unsubscribe(sid, "daily")
    _import(store, FILE, name="subscribers/daily.csv")
    assert len(store.membership_history("ann@example.org")) == len(events)
    assert [e.cause for e in store.membership_history("ann@example.org", "daily")] == [
        e.cause for e in events]


def test_evidence_moves_every_list_with_the_reports_message_id(store: Store) -> None:
    for list_name in ("daily", "weekly"):
        store.add_subscriber(list_name, "ann@example.org")
    store.add_subscriber("monthly", "ann@example.org", status="unsubscribed")
    sid = _member(store, "ann@example.org").subscriber_id
    result = store.record_bounce("k1", kind="complaint", subscriber_id=sid, delivery_id=None,
                                 status=None, reason="abuse report",
                                 report_message_id="<arf-1@mx.example.net>", now=NOW)
    assert result == "suppressed"
    events = [e for e in store.membership_history("ann@example.org") if e.cause != "editor-add"]
    assert sorted((e.list_name, e.old_status, e.new_status, e.actor) for e in events) == [
        ("daily", "active", "complained", "system"),
        ("monthly", "unsubscribed", "complained", "system"),
        ("weekly", "active", "complained", "system")]
    assert events[0].detail == {"report_message_id": "<arf-1@mx.example.net>",
                                "reason": "abuse report"}


def test_soft_bounces_and_relay_refusals_are_recorded(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    store.add_subscriber("daily", "bob@example.org")
    ann = _member(store, "ann@example.org").subscriber_id
    for i in range(3):
        store.record_bounce(f"s{i}", kind="soft", subscriber_id=ann, delivery_id=None,
                            status="4.2.2", reason="mailbox full",
                            report_message_id=f"<dsn-{i}@mx.example.net>", now=NOW)
    assert _story(store, "ann@example.org")[-1] == ("active", "bounced", "system",
                                                    "soft-bounces")
    assert store.membership_history("ann@example.org")[-1].detail["report_message_id"] == \
        "<dsn-2@mx.example.net>"
    record = store.record_edition(Edition(
        list_name="daily", date=NOW.date(), subject="s", preheader="",
        lead=Story(id="l", section="World", headline="h", is_lead=True),
        sections=(EditionSection("World", ()),)))
    store.publish_edition(record.id, message_id_domain="news.example.org", now=NOW)
    [claim] = store.claim_deliveries(record.id, worker_id="w", limit=5, now=NOW,
                                     lease=timedelta(minutes=5))
    store.mark_failed(claim, code=550, error="5.1.1 user unknown", suppress=True,
                      now=NOW)
    last = store.membership_history("bob@example.org")[-1]
    assert (last.old_status, last.new_status, last.cause) == ("active", "bounced",
                                                              "delivery-refused")
    assert last.detail == {"delivery_id": claim.delivery_id, "code": 550,
                           "reply": "5.1.1 user unknown"}


def test_history_of_an_unknown_address_is_one_clear_error(store: Store) -> None:
    with pytest.raises(SubscriberNotFoundError, match="no such address"):
        store.membership_history("nobody@example.org")
    store.add_subscriber("daily", "ann@example.org")
    with pytest.raises(SubscriberNotFoundError, match="no memberships on the list 'weekly'"):
        store.membership_history("ann@example.org", "weekly")
    with pytest.raises(SubscriberNotFoundError, match="not a valid email"):
        store.membership_history("not an address")


def test_export_says_when_and_how_each_member_consented(store: Store) -> None:
    _import(store, FILE, now=NOW)
    request = store.request_subscription("daily", "new@example.org")
    store.confirm_subscription(request.member.subscriber_id, "daily",
                               request_id=request.request_id, now=NOW + timedelta(days=1))
    store.add_subscriber("daily", "ed@example.org", now=NOW)
    store.request_subscription("daily", "wait@example.org")
    out = io.StringIO()
    store.export_csv("daily", out)
    rows = {r.split(",")[0]: r.split(",")[3:6] for r in out.getvalue().splitlines()[1:]}
    assert rows == {
        "ann@example.org": ["active", "2026-03-02T07:00:00+00:00", "import"],
        "bob@example.org": ["active", "2026-03-02T07:00:00+00:00", "import"],
        "cat@example.org": ["active", "2026-03-02T07:00:00+00:00", "import"],
        "new@example.org": ["active", "2026-03-03T07:00:00+00:00", "confirm"],
        "ed@example.org": ["active", "2026-03-02T07:00:00+00:00", "editor-add"],
        "wait@example.org": ["pending", "", ""],
    }


def test_import_events_go_in_bulk_with_file_and_line(store: Store) -> None:
    rows = "".join(f"r{i:04d}@example.org,R{i},World,\n" for i in range(2500))
    report = _import(store, "email,name,sections,status\n" + rows, name="big.csv", batch=1000)
    assert report.accepted == 2500
    events = all_rows(store)["membership_events"]
    assert len(events) == 2500
    history = store.membership_history("r2499@example.org")
    assert history[0].detail == {"file": "big.csv", "line": 2501}
    assert _import(store, "email,status\nr0007@example.org,bounced\n").updated == 1
    assert _story(store, "r0007@example.org")[-1] == ("active", "bounced", "import", "import")


def test_a_dry_run_import_writes_nothing_and_predicts_the_real_one(store: Store) -> None:
    _import(store, FILE)
    ann = _member(store, "ann@example.org")
    store.update_sections(ann.subscriber_id, "daily", ["Business"], known=SECTIONS)
    text = (FILE.replace("Ann,World", "Ann,Politics").replace("Bob,,", "Bob,,unsubscribed")
            + "dan@example.org,Dan,Sports,\neve@example.org,,,pending\n"
            + "dan@example.org,Daniel,Sports,\n")
    before = all_rows(store)
    dry = _import(store, text, dry_run=True)
    assert all_rows(store) == before
    assert dry.new_members == [("dan@example.org", "Dan", frozenset({"Sports"}))]
    real = _import(store, text)
    assert (dry.accepted, dry.updated, dry.kept_inactive, len(dry.kept)) == (
        real.accepted, real.updated, real.kept_inactive, len(real.kept)) == (2, 2, 0, 1)
    assert real.new_members == []
    # A dry run into a list the store does not have yet writes nothing either.
    before = all_rows(store)
    assert store.import_csv("weekly", io.BytesIO(FILE.encode()), dry_run=True).accepted == 3
    assert all_rows(store) == before


# --------------------------------------------------------------------------- migration


def test_the_migration_starts_the_record_from_each_memberships_state(store_url: str) -> None:
    engine = create_engine(store_url)
    upgrade(engine, "0004")
    t = datetime(2026, 1, 2)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO lists (id, name, title, created_at) "
                             "VALUES (1, 'daily', 'Daily', :t)"), {"t": t})
        for sid, status, source in ((1, "active", "import"), (2, "unsubscribed", "web")):
            conn.execute(sa.text(
                "INSERT INTO subscribers (id, email, email_key, name, attributes, created_at, "
                "updated_at) VALUES (:id, :e, :e, NULL, '{}', :t, :t)"),
                {"id": sid, "e": f"r{sid}@example.org", "t": t})
            conn.execute(sa.text(
                "INSERT INTO memberships (list_id, subscriber_id, status, sections, source, "
                "created_at, confirmed_at, changed_at) VALUES (1, :id, :s, '[\"World\"]', :src,"
                " :t, :t, :t)"), {"id": sid, "s": status, "src": source, "t": t})
    engine.dispose()
    with open_store(store_url) as opened:
        [start] = opened.membership_history("r1@example.org")
        assert (start.old_status, start.new_status, start.actor, start.cause) == (
            None, "active", "system", "record-start")
        assert start.new_sections == ("World",) and start.detail == {"source": "import"}
        assert start.created_at == t.replace(tzinfo=UTC)
        assert _member(opened, "r1@example.org").sections_chosen_at is None
        out = io.StringIO()
        opened.export_csv("daily", out)
        assert "import (before the record)" in out.getvalue()
        assert opened.membership_history("r2@example.org")[0].new_status == "unsubscribed"


# --------------------------------------------------------------------------- limits


def test_signup_limits_are_shared_by_every_store_and_refill(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)  # two serve processes
    try:
        take = [s.take_signup_token for s in (first, second)]
        got = [take[i % 2]("mailbox:x", capacity=3, per_second=1 / 60, now=NOW)
               for i in range(4)]
        assert got == [0, 0, 0, 60]
        assert first.take_signup_token("mailbox:y", capacity=3, per_second=1 / 60,
                                       now=NOW) == 0  # another key: its own bucket
        later = NOW + timedelta(seconds=61)
        assert second.take_signup_token("mailbox:x", capacity=3, per_second=1 / 60,
                                        now=later) == 0
        assert second.take_signup_token("mailbox:x", capacity=3, per_second=1 / 60,
                                        now=later) == 59
        # Full buckets are forgotten: the table does not grow with the traffic. Each kind
        # forgets only its own (another kind may refill far more slowly).
        first.take_signup_token("client:z", capacity=3, per_second=1 / 60,
                                now=NOW + timedelta(hours=1))
        assert [r[1] for r in all_rows(first)["signup_limits"]] == [
            "mailbox:x", "mailbox:y", "client:z"]
        first.take_signup_token("mailbox:w", capacity=3, per_second=1 / 60,
                                now=NOW + timedelta(hours=1))
        assert [r[1] for r in all_rows(first)["signup_limits"]] == ["client:z", "mailbox:w"]
    finally:
        first.close()
        second.close()


def test_signup_limits_hold_under_concurrent_requests(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    results: list[int] = []
    lock = threading.Lock()

    def hammer(s: Store) -> None:
        for _ in range(5):
            wait = s.take_signup_token("mailbox:race", capacity=3, per_second=1 / 3600)
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            s.close()
    assert results.count(0) == 3 and len(results) == 20
