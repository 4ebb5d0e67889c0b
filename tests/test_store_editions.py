"""Editions in the store: recorded once per list and day, forced re-runs, stories undecided."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from digest.errors import StoreError
from digest.models import Block, Edition, EditionSection, Image, RepeatKeys, SkippedItem, Story
from digest.store import Store

DAY = date(2026, 3, 2)

pytest_plugins = ["store_backends"]


def _edition(list_name: str = "daily", day: date = DAY, subject: str = "Vote tonight") -> Edition:
    lead = Story(
        id="https://news.test/vote", section="Politics", headline="Vote tonight — “Ça va”",
        url="https://news.test/vote", summary="Summary", summary_html="<p>Summary</p>",
        body=(Block("paragraph", "First."), Block("subheading", "Then")),
        image=Image("https://news.test/i.jpg", "Alt", 600, 400), author="Zoë",
        published_at=datetime(2026, 3, 1, 22, 30, tzinfo=UTC), source="front-page.txt",
        is_lead=True)
    teaser = Story(id="sha1:abc", section="World", headline="Summit: opens!")
    return Edition(list_name=list_name, date=day, subject=subject, preheader="Also: summit",
                   lead=lead, sections=(EditionSection("World", (teaser,)),),
                   skipped=(SkippedItem("front-page.txt", 12, "empty headline"),),
                   excluded=(("already sent", 2),))


def test_record_is_idempotent_per_list_and_day(store: Store) -> None:
    first = store.record_edition(_edition())
    again = store.record_edition(_edition(subject="Another subject"))
    assert again.id == first.id
    assert again.subject == "Vote tonight"
    assert (first.list_name, first.date, first.seq, first.status) == ("daily", DAY, 1, "draft")

    forced = store.record_edition(_edition(subject="Forced"), forced=True)

    assert forced.id != first.id
    assert forced.seq == 2
    found = store.find_edition("daily", DAY)
    assert found is not None and found.id == forced.id and found.subject == "Forced"
    assert store.find_edition("daily", date(2026, 3, 3)) is None
    assert store.find_edition("weekly", DAY) is None
    assert [r.id for r in store.list_editions("daily")] == [forced.id, first.id]


def test_payload_rebuilds_the_edition(store: Store) -> None:
    edition = _edition()
    record = store.record_edition(edition)
    stored = store.get_edition(record.id)
    assert stored.payload["subject"] == "Vote tonight"
    assert stored.edition() == edition


def test_recorded_stories_are_undecided_until_sent(store: Store) -> None:
    """Recording (building, drafting) carries nothing: the send decides (test_store_carried)."""
    record = store.record_edition(_edition())
    rows = store.edition_story_records(record.id)
    assert [(r.story_id, r.section, r.carried) for r in rows] == [
        ("https://news.test/vote", "Politics", None), ("sha1:abc", "World", None)]
    assert store.carried_keys("daily", RepeatKeys(frozenset({"u:news.test/vote"})),
                              headlines_since=DAY) == RepeatKeys()
    # build --next asks as if the stored edition had gone out.
    assert store.carried_keys("daily", RepeatKeys(frozenset({"u:news.test/vote"})),
                              headlines_since=DAY, including=[record.id]) == RepeatKeys(
        frozenset({"u:news.test/vote"}))


def test_ensure_list_creates_and_retitles(store: Store) -> None:
    lid = store.ensure_list("daily", "Morning Briefing")
    assert store.ensure_list("daily", "Morning Briefing (new)") == lid
    assert store.list_names() == ["daily"]


def test_unknown_edition_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no edition 42"):
        store.get_edition(42)
