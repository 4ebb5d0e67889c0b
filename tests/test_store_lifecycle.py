"""An edition's lifecycle in the store: statuses, moves recorded as events, publishing rules,
agreement with the ledger, and the 0005 migration mapping existing editions."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from digest.errors import EditionStateError, StoreError
from digest.models import Edition, EditionSection, Story
from digest.store import Store, open_store
from digest.store.engine import create_engine
from digest.store.migrate import current_revision, head_revision, upgrade

pytest_plugins = ["store_backends"]

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
DOMAIN = "news.example.org"


def _edition(day: date = DAY, subject: str = "Vote tonight") -> Edition:
    lead = Story(id="https://news.test/vote", section="Politics", headline="Vote tonight",
                 url="https://news.test/vote")
    teasers = (Story(id="w1", section="World", headline="Summit opens"),
               Story(id="s1", section="Sports", headline="Final tonight"))
    return Edition(list_name="daily", date=day, subject=subject, preheader="",
                   lead=lead, sections=(EditionSection("World", teasers[:1]),
                                        EditionSection("Sports", teasers[1:])))


def _moves(store: Store, edition_id: int) -> list[tuple[str | None, str, str]]:
    return [(e.old_status, e.new_status, e.actor) for e in store.edition_events(edition_id)]


def test_every_move_is_an_event_with_its_actor_and_cause(store: Store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest.editions")
    record = store.record_edition(_edition(), actor="editor:ana", cause="drafted by hand")
    assert record.status == "draft"
    assert store.set_edition_status(record.id, "held", actor="editor:ben",
                                    cause="checking a quote")
    assert not store.set_edition_status(record.id, "held", actor="editor:ben")  # no-op
    assert store.set_edition_status(record.id, "approved", actor="editor:ana")
    store.note_edition(record.id, actor="scheduler", cause="review notice mailed",
                       detail={"notice": "review"})
    assert store.get_edition(record.id).status == "approved"
    events = store.edition_events(record.id)
    assert [(e.old_status, e.new_status, e.actor, e.cause) for e in events] == [
        (None, "draft", "editor:ana", "drafted by hand"),
        ("draft", "held", "editor:ben", "checking a quote"),
        ("held", "approved", "editor:ana", None),
        ("approved", "approved", "scheduler", "review notice mailed"),
    ]
    assert events[-1].detail == {"notice": "review"}
    assert all(e.created_at.tzinfo is not None for e in events)
    lines = [r.getMessage() for r in caplog.records]
    assert f"edition {record.id} list=daily date=2026-03-02 draft -> held by editor:ben: " \
        "checking a quote" in lines
    assert len(lines) == 4  # one line per event


@pytest.mark.parametrize(("status", "move", "needle"), [
    ("cancelled", "approved", "stay cancelled"),
    ("cancelled", "held", "stay cancelled"),
    ("missed", "approved", "missed its send window"),
    ("missed", "held", "missed its send window"),
])
def test_refused_moves_say_why(store: Store, status: str, move: str, needle: str) -> None:
    record = store.record_edition(_edition())
    store.set_edition_status(record.id, status, actor="scheduler")
    with pytest.raises(EditionStateError, match=needle) as refused:
        store.set_edition_status(record.id, move, actor="editor:ana")
    assert ". " not in str(refused.value)  # one sentence: what, and what to do
    assert store.get_edition(record.id).status == status
    with pytest.raises(StoreError, match="no edition 999"):
        store.set_edition_status(999, "held", actor="editor:ana")


def test_publishing_moves_to_sending_and_the_last_row_to_sent(store: Store) -> None:
    for name in ("ann", "bob"):
        store.add_subscriber("daily", f"{name}@example.org", sections=["World"])
    record = store.record_edition(_edition())
    assert store.publish_edition(record.id, message_id_domain=DOMAIN, now=NOW,
                                 actor="scheduler") == 2
    assert store.get_edition(record.id).status == "sending"
    with pytest.raises(EditionStateError, match="is being delivered"):
        store.set_edition_status(record.id, "held", actor="editor:ana")
    with pytest.raises(EditionStateError, match="is being delivered"):
        store.set_edition_status(record.id, "cancelled", actor="editor:ana")
    assert store.edition_audience(record.id) == [(frozenset({"World"}), 2)]
    store.add_subscriber("daily", "cid@example.org")
    assert store.eligible_audience("daily") == [(None, 1), (frozenset({"World"}), 2)]
    claims = store.claim_deliveries(record.id, worker_id="w", limit=10, now=NOW,
                                    lease=timedelta(minutes=1))
    store.mark_sent(claims[0], response="250", now=NOW)
    assert store.settle_editions(actor="worker") == []  # a row is still open
    store.mark_failed(claims[1], code=550, error="5.1.1", suppress=False, now=NOW)
    # The record agrees with the ledger at once; settling writes the move and its counts.
    assert store.get_edition(record.id).status == "sent"
    assert store.settle_editions("daily", actor="worker") == [record.id]
    assert store.settle_editions("daily", actor="worker") == []
    last = store.edition_events(record.id)[-1]
    assert (last.old_status, last.new_status, last.actor) == ("sending", "sent", "worker")
    assert last.detail is not None
    assert {k: last.detail[k] for k in ("sent", "failed", "expired", "skipped")} == {
        "sent": 1, "failed": 1, "expired": 0, "skipped": 0}
    assert last.cause == "every ledger row ended: 1 sent, 1 failed, 0 expired, 0 skipped"
    with pytest.raises(EditionStateError, match="already went out"):
        store.set_edition_status(record.id, "approved", actor="editor:ana")
    assert store.delivery_counts([record.id, 12345]) == {record.id: {"sent": 1, "failed": 1}}


def test_no_recipients_publishes_nothing_and_keeps_the_day(store: Store) -> None:
    record = store.record_edition(_edition())
    store.add_subscriber("daily", "gone@example.org", status="unsubscribed")
    assert store.publish_edition(record.id, message_id_domain=DOMAIN, now=NOW) == 0
    again = store.get_edition(record.id)
    assert (again.status, again.published_at) == ("draft", None)
    assert _moves(store, record.id) == [(None, "draft", "send command")]
    store.add_subscriber("daily", "new@example.org")
    assert store.publish_edition(record.id, message_id_domain=DOMAIN, now=NOW) == 1


def test_held_cancelled_and_missed_editions_need_force(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    held = store.record_edition(_edition())
    store.set_edition_status(held.id, "held", actor="editor:ana", cause="wrong photo")
    with pytest.raises(EditionStateError, match="is held; approve it"):
        store.publish_edition(held.id, message_id_domain=DOMAIN, now=NOW, actor="scheduler")
    assert store.publish_edition(held.id, message_id_domain=DOMAIN, now=NOW,
                                 actor="editor:ben", force=True) == 1
    event = store.edition_events(held.id)[-1]
    assert (event.old_status, event.new_status, event.actor) == ("held", "sending",
                                                                 "editor:ben")
    assert event.detail == {"recipients": 1, "forced": True}

    cancelled = store.record_edition(_edition(DAY + timedelta(days=1)))
    store.set_edition_status(cancelled.id, "cancelled", actor="editor:ana")
    for force in (False, True):
        with pytest.raises(EditionStateError, match="cancelled"):
            store.publish_edition(cancelled.id, message_id_domain=DOMAIN, now=NOW,
                                  force=force)
    missed = store.record_edition(_edition(DAY + timedelta(days=2)))
    store.set_edition_status(missed.id, "missed", actor="scheduler", cause="window ended")
    with pytest.raises(EditionStateError, match="missed its send window"):
        store.publish_edition(missed.id, message_id_domain=DOMAIN, now=NOW)
    assert store.publish_edition(missed.id, message_id_domain=DOMAIN, now=NOW,
                                 force=True) == 1


def test_one_published_edition_per_list_and_date_unless_forced(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    first = store.record_edition(_edition())
    assert store.publish_edition(first.id, message_id_domain=DOMAIN, now=NOW) == 1
    # A second edition of the same day (an editor's forced draft) supersedes nothing that
    # went out, and is published only with force.
    second = store.record_edition(_edition(subject="Again"), forced=True, actor="editor:ana")
    assert second.seq == 2 and store.get_edition(first.id).status == "sending"
    with pytest.raises(EditionStateError, match=f"Edition {first.id} .* already went out"):
        store.publish_edition(second.id, message_id_domain=DOMAIN, now=NOW)
    assert store.publish_edition(second.id, message_id_domain=DOMAIN, now=NOW,
                                 actor="editor:ana", force=True) == 1


def test_a_forced_record_supersedes_unpublished_editions_of_that_day(store: Store) -> None:
    first = store.record_edition(_edition())
    same = store.record_edition(_edition(subject="Other"))
    assert same.id == first.id  # not forced: the live edition of the day
    store.set_edition_status(first.id, "held", actor="editor:ana")
    second = store.record_edition(_edition(subject="Fresh"), forced=True, actor="editor:ana")
    assert store.get_edition(first.id).status == "cancelled"
    assert store.edition_events(first.id)[-1].cause == f"superseded by edition {second.id}"
    assert store.find_edition("daily", DAY).id == second.id
    # After a cancelled or missed edition, the next record makes a new one.
    store.set_edition_status(second.id, "cancelled", actor="editor:ana")
    third = store.record_edition(_edition(subject="Third"))
    assert third.seq == 3 and third.status == "draft"
    placeholder = store.record_edition(
        Edition(list_name="daily", date=DAY + timedelta(days=1), subject="", preheader="",
                lead=None, sections=()), actor="scheduler", cause="never built",
        status="missed")
    assert placeholder.status == "missed" and not placeholder.has_stories
    assert _moves(store, placeholder.id) == [(None, "missed", "scheduler")]


def test_list_editions_of_every_list_and_by_status(store: Store) -> None:
    a = store.record_edition(_edition())
    b = store.record_edition(Edition(list_name="weekly", date=DAY, subject="W", preheader="",
                                     lead=Story(id="x", section="X", headline="X"),
                                     sections=()))
    store.set_edition_status(b.id, "held", actor="editor:ana")
    assert {r.id for r in store.list_editions(None)} == {a.id, b.id}
    assert [r.id for r in store.list_editions(None, statuses=("held",))] == [b.id]
    assert [r.id for r in store.list_editions("daily")] == [a.id]


def test_migration_maps_existing_editions_from_the_ledger(store_url: str) -> None:
    engine = create_engine(store_url)
    upgrade(engine, "0004")
    t = datetime(2026, 3, 1, 7, 0)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO lists (id, name, title, created_at) VALUES "
                             "(1, 'daily', 'Daily', :t)"), {"t": t})
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, email_key, attributes, created_at, updated_at)"
            " VALUES (1, 'a@example.org', 'a@example.org', '{}', :t, :t)"), {"t": t})
        for eid, published in ((1, None), (2, t), (3, t), (4, t)):
            conn.execute(sa.text(
                "INSERT INTO editions (id, list_id, date, seq, subject, payload, created_at, "
                "published_at) VALUES (:id, 1, :d, 1, 'S', '{}', :t, :p)"),
                {"id": eid, "d": date(2026, 3, eid), "t": t, "p": published})
        for eid, status in ((2, "queued"), (3, "sent")):  # 4: "published" to nobody
            conn.execute(sa.text(
                "INSERT INTO deliveries (edition_id, subscriber_id, status, message_id, "
                "attempts, created_at, next_attempt_at) VALUES (:e, 1, :s, :m, 0, :t, :t)"),
                {"e": eid, "s": status, "m": f"<e{eid}@x>", "t": t})
    engine.dispose()
    with open_store(store_url) as opened:
        assert current_revision(opened.engine) == head_revision()
        got = {r.id: (r.status, r.published_at is not None)
               for r in opened.list_editions("daily")}
        assert got == {1: ("draft", False), 2: ("sending", True), 3: ("sent", True),
                       4: ("draft", False)}
        for eid in got:
            (event,) = opened.edition_events(eid)
            assert (event.old_status, event.new_status, event.actor) == (
                None, got[eid][0], "migration")
        assert opened.delivery_summary(2) == {"queued": 1}  # ledger rows kept
