"""Edition assembly (pure): choose the lead, group teasers by section, drop repeats and old news."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from digest.config import ListSettings
from digest.errors import ConfigError, EmptyEditionError
from digest.models import Edition, EditionSection, SkippedItem, Story, normalise_headline

__all__ = ["assemble_edition", "story_keys"]

_OLDEST = datetime.min.replace(tzinfo=UTC)
PREHEADER_MAX = 140
SUBJECT_MAX = 200


def story_keys(story: Story) -> set[str]:
    """The keys that make two stories the same: id, url, and the normalised headline."""
    keys = {story.id, "h:" + normalise_headline(story.headline)}
    if story.url:
        keys.add(story.url)
    return keys


def _newest_first(story: Story) -> tuple[bool, datetime]:
    # Undated stories sort after dated ones, keeping their source order (sorted is stable).
    return (story.published_at is None, -(story.published_at or _OLDEST).timestamp())


def assemble_edition(
    stories: Iterable[Story],
    *,
    list_settings: ListSettings,
    as_of: datetime,
    carried: Collection[str] = frozenset(),
    skipped: Sequence[SkippedItem] = (),
    site_name: str = "",
    force: bool = False,
) -> Edition:
    """Build one list's edition from the stories its sources gave.

    The lead is the first story a page marked as its lead, else the newest story of the
    list's ``lead_section``, else the newest story; never a ``future_dated`` one while
    another is left. Teasers follow grouped by section in the
    configured order (other sections after, alphabetically), newest first, at most
    ``teasers_per_section`` each. No story appears twice (same id, url or normalised
    headline), none older than ``max_age``, and none that an earlier edition carried
    (``carried`` holds :func:`story_keys` of those) unless ``force``.

    :raises EmptyEditionError: when nothing new is left (``force`` builds it anyway) or
        there are no stories at all.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    excluded: Counter[str] = Counter()
    all_stories = list(stories)
    if not all_stories:
        raise EmptyEditionError(
            f"The {list_settings.name} edition has no stories: every source was empty or "
            "unreadable; check the sources listed above."
        )

    # Leads first, then newest: when two copies of a story meet, the better one is kept.
    ordered = sorted(all_stories, key=lambda s: (not s.is_lead, *_newest_first(s)))
    seen: set[str] = set()
    fresh: list[Story] = []
    oldest_allowed = as_of - list_settings.max_age if list_settings.max_age else None
    for story in ordered:
        keys = story_keys(story)
        if keys & seen:
            excluded["duplicate"] += 1
            continue
        seen |= keys
        if not force and keys & set(carried):
            excluded["already sent"] += 1
            continue
        if oldest_allowed and story.published_at and story.published_at < oldest_allowed:
            excluded["too old"] += 1
            continue
        fresh.append(story)

    if not fresh:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(excluded.items()))
        raise EmptyEditionError(
            f"The {list_settings.name} edition has nothing new ({reasons}); "
            "use --force to build it anyway."
        )

    lead = _choose_lead(fresh, list_settings)
    rest = [s for s in fresh if s is not lead]
    sections = _group(rest, list_settings, excluded)
    day = as_of.astimezone(list_settings.timezone).date()
    fields = _pattern_fields(lead, sections, list_settings, site_name, day)
    return Edition(
        list_name=list_settings.name,
        date=day,
        subject=_one_line(_format(list_settings.subject, fields, "subject"), SUBJECT_MAX),
        preheader=_one_line(_format(list_settings.preheader, fields, "preheader"),
                            PREHEADER_MAX),
        lead=lead,
        sections=sections,
        skipped=tuple(skipped),
        excluded=tuple(sorted(excluded.items())),
    )


def _choose_lead(stories: list[Story], lst: ListSettings) -> Story:
    # A story dated in the future (a source's clock or zone is wrong) never leads.
    stories = [s for s in stories if not s.future_dated] or stories
    for story in stories:
        if story.is_lead:
            return story
    if lst.lead_section:
        wanted = lst.lead_section.casefold()
        in_section = [s for s in stories if s.section.casefold() == wanted]
        if in_section:
            return sorted(in_section, key=_newest_first)[0]
    return sorted(stories, key=_newest_first)[0]


def _group(stories: list[Story], lst: ListSettings,
           excluded: Counter[str]) -> tuple[EditionSection, ...]:
    by_section: dict[str, list[Story]] = {}
    canonical = {name.casefold(): name for name in lst.sections}
    for story in stories:
        name = canonical.get(story.section.casefold(), story.section)
        by_section.setdefault(name, []).append(story)
    configured = [name for name in lst.sections if name in by_section]
    others = sorted((n for n in by_section if n not in lst.sections), key=str.casefold)
    result = []
    for name in configured + others:
        teasers = sorted(by_section[name], key=_newest_first)
        if len(teasers) > lst.teasers_per_section:
            excluded["over the per-section limit"] += len(teasers) - lst.teasers_per_section
        result.append(EditionSection(name, tuple(teasers[: lst.teasers_per_section])))
    return tuple(result)


def _pattern_fields(lead: Story, sections: tuple[EditionSection, ...], lst: ListSettings,
                    site_name: str, day: object) -> dict[str, object]:
    teasers = [s for sec in sections for s in sec.teasers]
    return {
        "lead_headline": lead.headline,
        "lead_section": lead.section,
        "title": lst.title,
        "site": site_name,
        "date": day,
        "weekday": day.strftime("%A"),  # type: ignore[attr-defined]
        "teaser_headlines": " · ".join(s.headline for s in teasers[:3]) or lead.headline,
        "story_count": 1 + len(teasers),
    }


def _format(pattern: str, fields: dict[str, object], setting: str) -> str:
    try:
        return pattern.format_map(fields)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"The {setting} pattern {pattern!r} cannot be filled ({exc}); "
                          "fix it in the configuration file.") from None


def _one_line(text: str, limit: int) -> str:
    """Collapse all whitespace (CR and LF included) and cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:·-") + "…"
