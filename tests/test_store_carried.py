"""What editions carried, in the store: identity keys, the repeat window, what counts as received,
the first decision standing, and the 0005 upgrade keeping (and keying) existing rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from digest.edition import keys_to_check
from digest.identity import headline_key, link_key
from digest.models import CarriedStory, Edition, EditionSection, RepeatKeys, Story
from digest.store import Store, open_store
from digest.store.engine import create_engine
from digest.store.migrate import upgrade
from digest.store.schema import deliveries

pytest_plugins = ["store_backends"]

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 7, tzinfo=UTC)
EVER = date(1970, 1, 1)


def _edition(day: date = DAY, *teasers: Story, lead: Story | None = None) -> Edition:
    lead = lead or Story(id="https://news.test/lead", section="Politics", headline="Lead",
                         url="https://news.test/lead")
    return Edition(list_name="daily", date=day, subject="S", preheader="", lead=lead,
                   sections=(EditionSection("World", tuple(teasers)),) if teasers else ())


def _send(store: Store, edition: Edition, *, dropped: frozenset[str] = frozenset()) -> int:
    """Record, publish to the list's members and decide: one all-sections variant."""
    record = store.record_edition(edition, forced=True)
    store.publish_edition(record.id, message_id_domain="news.test", now=NOW)
    store.record_carried(record.id, tuple(
        CarriedStory(s.id, s.id not in dropped, () if s.id in dropped else (("World",),),
                     (("World",),) if s.id in dropped else ())
        for s in edition.stories))
    return record.id


def _ask(store: Store, *stories: Story, since: date = EVER) -> RepeatKeys:
    return store.carried_keys("daily", keys_to_check(stories), headlines_since=since)


def test_identity_matches_across_scheme_slash_and_tracking(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    old = Story(id="http://news.test/a", section="World", headline="Old headline",
                url="http://news.test/a/")
    guid_only = Story(id="newsroom-1", section="World", headline="By guid",
                      url="http://news.test/moved")
    _send(store, _edition(DAY, old, guid_only))

    moved = Story(id="https://news.test/a", section="World", headline="Reworded",
                  url="https://NEWS.test/a?utm_source=rss&fbclid=x")
    same_guid = Story(id="newsroom-1", section="World", headline="By guid",
                      url="https://news.test/elsewhere")
    other = Story(id="https://news.test/b", section="World", headline="Old headline",
                  url="https://news.test/b")
    found = _ask(store, moved, same_guid, other)
    assert found.identities == {link_key("https://news.test/a"), "g:newsroom-1"}
    assert found.headlines == frozenset()  # stories with a link are never asked by headline
    # Another list shares nothing.
    assert store.carried_keys("weekly", keys_to_check([moved]),
                              headlines_since=EVER) == RepeatKeys()


def test_headlines_of_linkless_stories_count_only_within_the_window(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    teaser = Story(id="sha1:" + "0" * 20, section="World", headline="Letters to the Editor")
    _send(store, _edition(DAY, teaser))
    again = Story(id="sha1:" + "1" * 20, section="Opinion", headline="letters to the EDITOR!")
    assert _ask(store, again, since=DAY).headlines == {headline_key("Letters to the Editor")}
    assert _ask(store, again, since=DAY + timedelta(days=1)).headlines == frozenset()


def test_only_what_readers_received_counts(store: Store) -> None:
    kept = Story(id="https://news.test/kept", section="World", headline="Kept",
                 url="https://news.test/kept")
    dropped = Story(id="https://news.test/dropped", section="World", headline="Dropped",
                    url="https://news.test/dropped")
    # A draft (recorded, never published) carried nothing.
    store.record_edition(_edition(DAY - timedelta(days=2), kept, dropped))
    assert _ask(store, kept, dropped) == RepeatKeys()

    # Published to nobody: nothing received either.
    _send(store, _edition(DAY - timedelta(days=1), kept, dropped))
    assert _ask(store, kept, dropped) == RepeatKeys()

    store.add_subscriber("daily", "ann@example.org")
    edition_id = _send(store, _edition(DAY, kept, dropped), dropped=frozenset({dropped.id}))
    assert _ask(store, kept, dropped).identities == {link_key(kept.url)}

    # Every message of the edition failed: its readers received nothing.
    with store.engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.edition_id == edition_id)
                     .values(status="failed"))
    assert _ask(store, kept, dropped) == RepeatKeys()


def test_the_first_decision_stands_and_is_kept_for_the_record(store: Store) -> None:
    store.add_subscriber("daily", "all@example.org")
    store.add_subscriber("daily", "world@example.org", sections=["World"])
    store.add_subscriber("daily", "sport@example.org", sections=["Sports", "Nope"])
    store.add_subscriber("daily", "sport2@example.org", sections=["Sports", "Nope"])
    teaser = Story(id="t1", section="World", headline="T1")
    record = store.record_edition(_edition(DAY, teaser))
    assert [r.carried for r in store.edition_story_records(record.id)] == [None, None]
    store.publish_edition(record.id, message_id_domain="news.test", now=NOW)
    audience = store.edition_audience(record.id)
    assert audience == [(None, 1), (frozenset({"Nope", "Sports"}), 2),
                        (frozenset({"World"}), 1)]

    first = (CarriedStory("https://news.test/lead", True, (("World",), ()), ()),
             CarriedStory("t1", False, (("World",),), (("Politics", "World"),)))
    assert store.record_carried(record.id, first) is True
    assert store.record_carried(record.id, (CarriedStory("t1", True),)) is False
    rows = store.edition_story_records(record.id)
    assert [(r.position, r.story_id, r.carried) for r in rows] == [
        (0, "https://news.test/lead", True), (1, "t1", False)]
    assert rows[1].shown_in == (("World",),)
    assert rows[1].dropped_from == (("Politics", "World"),)
    assert rows[0].shown_in == (("World",), ())


def test_upgrade_to_0005_keys_existing_rows_and_keeps_what_went_out(store_url: str) -> None:
    engine = create_engine(store_url)
    upgrade(engine, "0004")
    t = datetime(2026, 1, 1)
    with engine.begin() as conn:
        run = conn.execute
        run(sa.text("INSERT INTO lists (id, name, title, created_at) VALUES (1, 'daily', 'D', :t)"),
            {"t": t})
        run(sa.text("INSERT INTO subscribers (id, email, email_key, name, attributes, "
                    "created_at, updated_at) VALUES (1, 'a@example.org', 'a@example.org', "
                    "NULL, '{}', :t, :t)"), {"t": t})
        for eid, published in ((1, t), (2, None)):
            run(sa.text("INSERT INTO editions (id, list_id, date, seq, subject, payload, "
                        "created_at, published_at) VALUES (:id, 1, :d, 1, 's', '{}', :t, :p)"),
                {"id": eid, "d": date(2026, 1, eid), "t": t, "p": published})
        run(sa.text("INSERT INTO deliveries (edition_id, subscriber_id, status, message_id, "
                    "attempts, created_at, next_attempt_at) VALUES (1, 1, 'sent', '<m@x>', 1, "
                    ":t, :t)"), {"t": t})
        for eid, pos, sid, url, head in (
                (1, 0, "http://news.test/sent", "http://news.test/sent/", "Sent Story"),
                (1, 1, "sha1:" + "2" * 20, None, "Weather"),
                (2, 0, "guid-9", "http://news.test/draft", "Draft Story")):
            run(sa.text("INSERT INTO edition_stories (edition_id, position, story_id, url, "
                        "headline_key, section, headline) VALUES (:e, :p, :s, :u, :h, 'World', "
                        ":hl)"), {"e": eid, "p": pos, "s": sid, "u": url, "h": head.lower(),
                                  "hl": head})
    engine.dispose()

    with open_store(store_url) as opened:
        rows = opened.edition_story_records(1)
        assert [r.carried for r in rows] == [True, True]
        assert [r.carried for r in opened.edition_story_records(2)] == [None]
        found = opened.carried_keys("daily", RepeatKeys(
            frozenset({link_key("https://news.test/sent"), link_key("https://news.test/draft"),
                       "g:guid-9"}),
            frozenset({headline_key("WEATHER")})), headlines_since=date(2026, 1, 1))
    assert found == RepeatKeys(frozenset({link_key("https://news.test/sent")}),
                               frozenset({headline_key("Weather")}))
