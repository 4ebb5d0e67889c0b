"""Edition assembly: lead choice, section order, limits, dedupe, carried stories, patterns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.config import ListSettings
from digest.edition import assemble_edition, story_keys
from digest.errors import EmptyEditionError
from digest.models import Story, story_id

NOW = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)


def make_list(**changes: object) -> ListSettings:
    base = ListSettings(
        name="daily", title="Morning Briefing", sources=(), sections=("Politics", "World",
        "Business"), section_map={}, lead_section="Politics", teasers_per_section=2,
        max_age=None, timezone=ZoneInfo("Europe/London"), send_time=time(7), from_name="N",
        from_email="n@example.org", reply_to=None, subject="{lead_headline}",
        preheader="{teaser_headlines}", relay=None)
    return dataclasses.replace(base, **changes)


def story(headline: str, section: str = "World", hours: float | None = 1, **kw: object) -> Story:
    published = NOW - timedelta(hours=hours) if hours is not None else None
    return Story(id=kw.pop("id", story_id(section, headline)), section=section,
                 headline=headline, published_at=published, **kw)  # type: ignore[arg-type]


def headlines(edition) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {sec.name: [s.headline for s in sec.teasers] for sec in edition.sections}


def test_page_lead_wins_over_newer_stories() -> None:
    lead = story("Summit in Tokyo", "Politics", hours=30, is_lead=True)
    edition = assemble_edition([story("Newer", "Politics", 1), lead], list_settings=make_list(),
                               as_of=NOW)
    assert edition.lead == lead
    assert headlines(edition) == {"Politics": ["Newer"]}


def test_lead_is_newest_of_lead_section_then_newest_overall() -> None:
    stories = [story("Old politics", "Politics", 9), story("New politics", "Politics", 3),
               story("Newest world", "World", 1)]
    assert assemble_edition(stories, list_settings=make_list(), as_of=NOW).lead.headline == (
        "New politics")
    no_politics = [s for s in stories if s.section != "Politics"] + [story("B", "Business", 5)]
    assert assemble_edition(no_politics, list_settings=make_list(),
                            as_of=NOW).lead.headline == "Newest world"
    undated = [story("Undated", "Politics", None), story("Dated", "Sports", 50)]
    assert assemble_edition(undated, list_settings=make_list(lead_section=None),
                            as_of=NOW).lead.headline == "Dated"


def test_sections_follow_configured_order_then_alphabetical() -> None:
    stories = [story("lead", "Politics", 0.5, is_lead=True), story("z", "Zoology"),
               story("b", "business"), story("w", "World"), story("a", "arts"),
               story("p", "Politics")]
    edition = assemble_edition(stories, list_settings=make_list(), as_of=NOW)
    assert edition.section_names == ("Politics", "World", "Business", "arts", "Zoology")


def test_teasers_newest_first_limited_undated_last() -> None:
    stories = [story("lead", "Politics", is_lead=True), story("w-undated", "World", None),
               story("w-old", "World", 10), story("w-new", "World", 1), story("w-mid", "World", 5)]
    edition = assemble_edition(stories, list_settings=make_list(), as_of=NOW)
    assert headlines(edition)["World"] == ["w-new", "w-mid"]
    assert dict(edition.excluded) == {"over the per-section limit": 2}
    roomy = assemble_edition(stories, list_settings=make_list(teasers_per_section=10), as_of=NOW)
    assert headlines(roomy)["World"] == ["w-new", "w-mid", "w-old", "w-undated"]


def test_max_age_drops_old_stories_but_keeps_undated() -> None:
    stories = [story("lead", "Politics", 1), story("fresh", "World", 20),
               story("stale", "World", 60), story("undated", "World", None)]
    edition = assemble_edition(stories, list_settings=make_list(
        max_age=timedelta(days=1), teasers_per_section=5), as_of=NOW)
    assert headlines(edition)["World"] == ["fresh", "undated"]
    assert dict(edition.excluded) == {"too old": 1}


@pytest.mark.parametrize("twin", [
    lambda s: story("Another headline", s.section, 2, id=s.id),
    lambda s: story("Different words", "World", 2, url=s.url),
    lambda s: story("  oil PRICES surge — following EU sanctions!! ", "Business", 0.2),
])
def test_no_story_twice(twin) -> None:  # type: ignore[no-untyped-def]
    original = story("Oil Prices Surge Following EU Sanctions", "World", 1,
                     url="https://news.example.org/oil", id="guid-1")
    edition = assemble_edition([story("lead", "Politics", 0.1, is_lead=True), original,
                                twin(original)], list_settings=make_list(), as_of=NOW)
    assert len(edition.stories) == 2
    assert dict(edition.excluded) == {"duplicate": 1}


def test_stories_carried_earlier_are_left_out_unless_forced() -> None:
    lead = story("lead", "Politics", 1)
    sent = story("sent yesterday", "World", 20, url="https://news.example.org/a")
    new = story("new today", "World", 2)
    carried = story_keys(sent)
    edition = assemble_edition([lead, sent, new], list_settings=make_list(), as_of=NOW,
                               carried=carried)
    assert [s.headline for s in edition.stories] == ["lead", "new today"]
    assert dict(edition.excluded) == {"already sent": 1}

    everything = story_keys(lead) | story_keys(new) | carried
    with pytest.raises(EmptyEditionError, match="nothing new.*3 already sent.*--force"):
        assemble_edition([lead, sent, new], list_settings=make_list(), as_of=NOW,
                         carried=everything)
    forced = assemble_edition([lead, sent, new], list_settings=make_list(), as_of=NOW,
                              carried=everything, force=True)
    assert len(forced.stories) == 3


def test_no_stories_at_all_is_an_empty_edition_even_when_forced() -> None:
    with pytest.raises(EmptyEditionError, match="no stories"):
        assemble_edition([], list_settings=make_list(), as_of=NOW, force=True)


def test_subject_and_preheader_patterns() -> None:
    stories = [story("Summit\r\nin   Tokyo", "Politics", 1, is_lead=True),
               story("One", "World", 2), story("Two", "Business", 3), story("Three", "Arts", 4)]
    lst = make_list(subject="{title} for {weekday} {date:%d %B}: {lead_headline}",
                    preheader="{story_count} stories: {teaser_headlines}")
    edition = assemble_edition(stories, list_settings=lst, as_of=NOW)
    assert edition.subject == "Morning Briefing for Saturday 28 November: Summit in Tokyo"
    assert edition.preheader == "4 stories: One · Two · Three"
    default = assemble_edition(stories, list_settings=make_list(), as_of=NOW)
    assert default.subject == "Summit in Tokyo"


def test_long_subject_is_cut_at_a_word() -> None:
    lead = story("word " * 80, "Politics", 1)
    edition = assemble_edition([lead], list_settings=make_list(), as_of=NOW)
    assert len(edition.subject) <= 200
    assert edition.subject.endswith("word…")


def test_edition_date_is_in_the_lists_timezone() -> None:
    late = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    stories = [story("lead", "Politics", 1)]
    london = assemble_edition(stories, list_settings=make_list(), as_of=late)
    tokyo = assemble_edition(stories, list_settings=make_list(timezone=ZoneInfo("Asia/Tokyo")),
                             as_of=late)
    assert (london.date.day, tokyo.date.day) == (28, 29)


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError):
        assemble_edition([story("x")], list_settings=make_list(), as_of=datetime(2026, 1, 1))
