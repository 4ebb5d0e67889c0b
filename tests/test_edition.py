"""Edition assembly: lead choice, section order, limits, dedupe, carried stories, patterns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.config import ListSettings
from digest.edition import assemble_edition, carried_stories, is_repeat, keys_to_check
from digest.errors import EmptyEditionError
from digest.identity import headline_key
from digest.models import Block, Edition, EditionSection, RepeatKeys, Story, story_id

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
    """A story with a one-line summary (as feed items have); ``summary=None`` makes a bare
    headline, which never leads an edition that is not forced."""
    kw.setdefault("summary", f"{headline}, in one line.")
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


def received(*stories: Story) -> RepeatKeys:
    """What the store would answer had an edition inside the repeat window carried these."""
    keys = keys_to_check(stories)
    heads = frozenset(headline_key(s.headline) for s in stories)
    return RepeatKeys(keys.identities, heads)


def test_stories_carried_earlier_are_left_out_unless_forced() -> None:
    lead = story("lead", "Politics", 1)
    sent = story("sent yesterday", "World", 20, url="https://news.example.org/a")
    new = story("new today", "World", 2)
    edition = assemble_edition([lead, sent, new], list_settings=make_list(), as_of=NOW,
                               carried=received(sent))
    assert [s.headline for s in edition.stories] == ["lead", "new today"]
    assert dict(edition.excluded) == {"already sent": 1}

    everything = received(lead, sent, new)
    with pytest.raises(EmptyEditionError, match="nothing new.*3 already sent.*--force"):
        assemble_edition([lead, sent, new], list_settings=make_list(), as_of=NOW,
                         carried=everything)
    forced = assemble_edition([lead, sent, new], list_settings=make_list(), as_of=NOW,
                              carried=everything, force=True)
    assert len(forced.stories) == 3


def test_only_stories_past_max_age_is_not_offered_force() -> None:
    """--force lifts the "already sent" rule only: an edition whose stories are all older
    than max_age says how to fix that instead of offering a flag that changes nothing."""
    old = [story("old lead", "Politics", 24 * 40), story("old teaser", "World", 24 * 50)]
    lst = make_list(max_age=timedelta(days=30))
    with pytest.raises(EmptyEditionError) as caught:
        assemble_edition(old, list_settings=lst, as_of=NOW)
    assert not caught.value.forceable
    assert "nothing new (2 too old)" in str(caught.value)
    assert "max_age" in str(caught.value) and "--force" not in str(caught.value)
    with pytest.raises(EmptyEditionError) as forced:  # forcing would not help: same error
        assemble_edition(old, list_settings=lst, as_of=NOW, force=True)
    assert not forced.value.forceable

    sent = story("sent", "World", 2, url="https://news.example.org/s")
    with pytest.raises(EmptyEditionError) as mixed:  # one of them forcing would bring back
        assemble_edition([*old, sent], list_settings=lst, as_of=NOW, carried=received(sent))
    assert mixed.value.forceable and "--force" in str(mixed.value)


def test_a_feed_moving_to_https_with_tracking_parameters_repeats_nothing() -> None:
    before = [story(f"Story {i}", "World", 30 + i, id=f"http://news.example.org/{i}",
                    url=f"http://news.example.org/{i}") for i in range(3)]
    guid = story("Guid story", "World", 40, id="tag:news.example.org,2026:7",
                 url="http://news.example.org/seven")
    after = [story(f"Story {i} (updated)", "World", 2, id=f"https://news.example.org/{i}/",
                   url=f"https://NEWS.example.org/{i}/?utm_source=rss&utm_medium=feed"
                   f"&fbclid=abc&gclid=x&mc_cid=1") for i in range(3)]
    moved_guid = story("Guid story", "World", 2, id="tag:news.example.org,2026:7",
                       url="https://news.example.org/elsewhere")
    fresh = story("Actually new", "World", 1, url="https://news.example.org/new")
    edition = assemble_edition([*after, moved_guid, fresh], list_settings=make_list(),
                               as_of=NOW, carried=received(*before, guid))
    assert [s.headline for s in edition.stories] == ["Actually new"]
    assert dict(edition.excluded) == {"already sent": 4}


def test_a_recurring_headline_with_a_new_link_comes_back() -> None:
    lead = story("lead", "Politics", 1, url="https://news.example.org/lead")
    yesterday = [story(title, "Opinion", 26, url=f"https://news.example.org/{n}/1")
                 for n, title in enumerate(("Letters to the Editor", "This Date in History",
                                            "Weather"))]
    today = [story(s.headline, "Opinion", 2, url=f"https://news.example.org/{n}/2")
             for n, s in enumerate(yesterday)]
    edition = assemble_edition([lead, *today], list_settings=make_list(teasers_per_section=5),
                               as_of=NOW, carried=received(*yesterday))
    assert headlines(edition) == {"Opinion": [s.headline for s in today]}
    assert "already sent" not in dict(edition.excluded)


def test_a_headline_alone_suppresses_only_linkless_stories() -> None:
    teaser = story("Weather", "Top Stories", 3)  # a page teaser: no link, id from headline
    linked = story("Weather", "World", 3, url="https://news.example.org/weather/2")
    lead = story("lead", "Politics", 1)
    carried = received(story("Weather", "Top Stories", 30))
    assert is_repeat(teaser, carried) and not is_repeat(linked, carried)
    # The store answers with the headline only within the repeat window: outside it, the
    # linkless teaser is new again.
    outside = RepeatKeys(identities=carried.identities)
    assert not is_repeat(teaser, outside)
    edition = assemble_edition([lead, teaser], list_settings=make_list(), as_of=NOW,
                               carried=carried)
    assert edition.stories == (lead,)
    assert keys_to_check([teaser, linked]).headlines == {headline_key("Weather")}


def test_the_richer_copy_of_a_duplicate_is_kept() -> None:
    bare = story("Oil prices surge", "Business", 1, summary=None)
    rich = story("Oil Prices Surge", "Business", 3, url="https://news.example.org/oil",
                 summary="Brent rose 6% overnight.")
    lead = story("lead", "Politics", is_lead=True, body=(Block("paragraph", "Text."),))
    edition = assemble_edition([lead, bare, rich], list_settings=make_list(), as_of=NOW)
    assert edition.sections[0].teasers == (rich,)


TEXT = (Block("paragraph", "What happened, in full."),)


def test_lead_prefers_text_and_a_link_published_within_max_age() -> None:
    """Tomorrow's unattended edition must not lead with a month-old bare teaser."""
    old_bare = story("Month-old teaser", "Politics", 24 * 30, summary=None)
    undated = story("Undated with link", "World", None, url="https://n.example/u",
                    summary="Summary.")
    text_only = story("Text, no link", "World", 3, body=TEXT, summary=None)
    linked_bare = story("Link, no text", "World", 1, url="https://n.example/l", summary=None)
    stale_good = story("Good but old", "World", 24 * 5, url="https://n.example/o",
                       summary="Summary.")
    good = story("Good", "Business", 20, url="https://n.example/g", summary="Summary.")
    lst = make_list(max_age=None)
    pool = [old_bare, undated, text_only, linked_bare, stale_good, good]
    order = []
    while pool != [old_bare]:
        lead = assemble_edition(pool, list_settings=lst, as_of=NOW).lead
        order.append(lead.headline)
        pool = [s for s in pool if s is not lead]
    # Without max_age any date counts as published in time: newest first among the dated.
    assert order == ["Good", "Good but old", "Undated with link", "Text, no link",
                     "Link, no text"]
    # A bare headline (no text, no link) never leads: the day is skipped, unless forced.
    with pytest.raises(EmptyEditionError, match="nothing to lead with"):
        assemble_edition(pool, list_settings=lst, as_of=NOW)
    assert assemble_edition(pool, list_settings=lst, as_of=NOW, force=True).lead is old_bare
    # With max_age, "Good but old" is not in the edition at all (older than 2 days).
    week = make_list(max_age=timedelta(days=2))
    assert assemble_edition([old_bare, stale_good, text_only], list_settings=week,
                            as_of=NOW).lead.headline == "Text, no link"


def test_the_pages_own_lead_leads_when_it_has_text() -> None:
    page_lead = story("Page lead", "World", None, is_lead=True, body=TEXT)
    feed = story("Feed story", "Politics", 1, url="https://n.example/f", summary="S.")
    assert assemble_edition([feed, page_lead], list_settings=make_list(),
                            as_of=NOW).lead is page_lead
    bare_page_lead = story("Bare page lead", "World", None, is_lead=True, summary=None)
    assert assemble_edition([feed, bare_page_lead], list_settings=make_list(),
                            as_of=NOW).lead is feed


def test_lead_section_decides_within_a_tier() -> None:
    world = story("World news", "World", 1, url="https://n.example/w", summary="S.")
    politics = story("Politics news", "politics", 5, url="https://n.example/p", summary="S.")
    assert assemble_edition([world, politics], list_settings=make_list(),
                            as_of=NOW).lead is politics


def _sent_edition() -> Edition:
    lead = story("lead", "Politics", 1, id="L")
    world = tuple(story(f"w{i}", "World", 2 + i, id=f"W{i}") for i in range(3))
    sport = (story("s0", "Sports", 2, id="S0"),)
    health = (story("h0", "Health", 2, id="H0"),)
    return Edition("daily", NOW.date(), "s", "p", lead,
                   (EditionSection("World", world), EditionSection("Sports", sport),
                    EditionSection("Health", health)))


def test_carried_means_every_sent_variant_showing_the_section_kept_it() -> None:
    edition = _sent_edition()
    everything = frozenset({"World", "Sports", "Health"})
    world_only = frozenset({"World"})
    sports_only = frozenset({"Sports"})
    decided = {c.story_id: c for c in carried_stories(edition, {
        everything: frozenset({"W2", "S0"}),  # the budget dropped these from the big one
        world_only: frozenset(),
        sports_only: frozenset(),
    })}
    assert decided["L"].carried and len(decided["L"].shown_in) == 3
    assert decided["W0"].carried and decided["W0"].shown_in == (
        ("Health", "Sports", "World"), ("World",))
    # Shown to World-only readers but dropped for all-sections readers: not carried, so
    # it comes back tomorrow rather than being lost for the all-sections readers.
    assert not decided["W2"].carried
    assert decided["W2"].shown_in == (("World",),)
    assert decided["W2"].dropped_from == (("Health", "Sports", "World"),)
    assert not decided["S0"].carried
    assert decided["H0"].carried


def test_a_section_no_reader_gets_is_not_carried() -> None:
    edition = _sent_edition()
    decided = {c.story_id: c for c in carried_stories(
        edition, {frozenset({"Sports"}): frozenset()})}
    assert decided["L"].carried and decided["S0"].carried
    assert not any(decided[i].carried for i in ("W0", "W1", "W2", "H0"))
    assert decided["W0"].shown_in == () and decided["W0"].dropped_from == ()
    nobody = carried_stories(edition, {})
    assert not any(c.carried for c in nobody)


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
