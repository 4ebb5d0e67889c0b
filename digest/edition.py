"""Edition assembly (pure): choose the lead, group teasers by section, drop repeats and old news,
and decide which stories of a sent edition its readers received.

What counts as a repeat (an earlier edition of the list carried it, see
:func:`carried_stories`):

- the same story identity, ever: the normalised guid or link (:mod:`digest.identity`), so a
  feed that moved from http to https, or appended ``utm_*`` parameters, sends nothing again;
- the same headline only for a story without a link (a page teaser, whose id is made from its
  headline), and only when an edition within the list's ``repeat_window`` carried it: "Letters
  to the Editor" with a new link comes back the next day, and a page teaser that has no other
  identity is not suppressed forever.

The store looks those keys up (:class:`digest.models.RepeatKeys`); nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from digest.config import ListSettings
from digest.errors import EmptyEditionError
from digest.identity import headline_key, identity_keys, link_key
from digest.models import (
    CarriedStory,
    Edition,
    EditionSection,
    RepeatKeys,
    SkippedItem,
    Story,
)
from digest.patterns import PREHEADER_MAX, SUBJECT_MAX, fill_pattern, pattern_fields

__all__ = ["assemble_edition", "carried_stories", "is_repeat", "keys_to_check", "story_keys"]

_OLDEST = datetime.min.replace(tzinfo=UTC)
_NOTHING_CARRIED = RepeatKeys()


def story_keys(story: Story) -> frozenset[str]:
    """The keys that make two stories in one edition the same: identity and headline."""
    return identity_keys(story) | {headline_key(story.headline)}


def keys_to_check(stories: Iterable[Story]) -> RepeatKeys:
    """The keys to ask the store about: every identity, and the headlines of linkless stories."""
    identities: set[str] = set()
    headlines: set[str] = set()
    for story in stories:
        identities |= identity_keys(story)
        if link_key(story.url) is None:
            headlines.add(headline_key(story.headline))
    return RepeatKeys(frozenset(identities), frozenset(headlines))


def is_repeat(story: Story, carried: RepeatKeys) -> bool:
    """True when an earlier edition carried ``story`` (see the module docstring for the rule)."""
    if identity_keys(story) & carried.identities:
        return True
    return link_key(story.url) is None and headline_key(story.headline) in carried.headlines


def _newest_first(story: Story) -> tuple[bool, float]:
    # Undated stories sort after dated ones, keeping their source order (sorted is stable).
    return (story.published_at is None, -(story.published_at or _OLDEST).timestamp())


def _has_text(story: Story) -> bool:
    return bool((story.summary or "").strip()
                or any(block.text.strip() for block in story.body))


def _richness(story: Story) -> int:
    """0 (a bare headline) to 2 (text and a link): which copy of a duplicate to keep."""
    return int(_has_text(story)) + int(link_key(story.url) is not None)


def assemble_edition(
    stories: Iterable[Story],
    *,
    list_settings: ListSettings,
    as_of: datetime,
    carried: RepeatKeys = _NOTHING_CARRIED,
    skipped: Sequence[SkippedItem] = (),
    site_name: str = "",
    force: bool = False,
) -> Edition:
    """Build one list's edition from the stories its sources gave.

    The lead is chosen by :func:`_choose_lead`. Teasers follow grouped by section in the
    configured order (other sections after, alphabetically), newest first, at most
    ``teasers_per_section`` each. No story appears twice (same guid, link or normalised
    headline; the copy with the most text and a link is kept), none older than ``max_age``,
    and none that an earlier edition carried (:func:`is_repeat` with ``carried``) unless
    ``force``.

    :raises EmptyEditionError: when nothing new is left, or nothing new is fit to lead (only
        bare headlines, with neither text nor a link, or only stories dated in the future
        are left; ``force`` builds either anyway), or there are no stories at all.
    :raises ConfigError: when the subject or preheader pattern cannot be filled.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    try:
        return _assemble(stories, lst=list_settings, as_of=as_of, carried=carried,
                         skipped=skipped, site_name=site_name, force=force)
    except EmptyEditionError as exc:
        if exc.skipped or not skipped:
            raise
        # What the sources skipped is often why nothing is left: the command prints it.
        raise EmptyEditionError(str(exc), why=exc.why, forceable=exc.forceable,
                                skipped=tuple((i.source, i.line, i.reason) for i in skipped)
                                ) from None


def _assemble(stories: Iterable[Story], *, lst: ListSettings, as_of: datetime,
              carried: RepeatKeys, skipped: Sequence[SkippedItem], site_name: str,
              force: bool) -> Edition:
    list_settings = lst
    excluded: Counter[str] = Counter()
    all_stories = list(stories)
    if not all_stories:
        raise EmptyEditionError(
            f"The {list_settings.name} edition has no stories: every source was empty or "
            "unreadable; check the sources listed above."
        )

    # Leads first, then the richer copy, then the newest: when two copies of a story meet,
    # the better one is kept.
    ordered = sorted(all_stories,
                     key=lambda s: (not s.is_lead, -_richness(s), *_newest_first(s)))
    seen: set[str] = set()
    fresh: list[Story] = []
    oldest_allowed = as_of - list_settings.max_age if list_settings.max_age else None
    for story in ordered:
        keys = story_keys(story)
        if keys & seen:
            excluded["duplicate"] += 1
            continue
        seen |= keys
        if not force and is_repeat(story, carried):
            excluded["already sent"] += 1
            continue
        if oldest_allowed and story.published_at and story.published_at < oldest_allowed:
            excluded["too old"] += 1
            continue
        fresh.append(story)

    if not fresh:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(excluded.items()))
        why = f"The {list_settings.name} edition has nothing new ({reasons})"
        if excluded["already sent"]:  # --force lifts only the "already sent" rule
            raise EmptyEditionError.forceable_because(why)
        raise EmptyEditionError(
            f"{why}: every story is older than [lists.{list_settings.name}] max_age; check "
            "that the sources are being updated, or raise max_age.", why=f"{why}.")

    lead = _choose_lead(fresh, list_settings, as_of)
    if not force and lead.future_dated:
        raise EmptyEditionError.forceable_because(
            f"The {list_settings.name} edition has nothing to lead with: "
            + ("its one new story is" if len(fresh) == 1
               else f"all {len(fresh)} new stories are")
            + " dated in the future (a source's clock or time zone is wrong; see the "
            "warnings)")
    if not force and _lead_tier(lead, list_settings, as_of) == _BARE_HEADLINE:
        raise EmptyEditionError.forceable_because(
            f"The {list_settings.name} edition has nothing to lead with: none of the "
            f"{len(fresh)} new stories has a body, a summary or a link (they are bare "
            "headlines left over from earlier editions or pages)")
    rest = [s for s in fresh if s is not lead]
    sections = _group(rest, list_settings, excluded)
    day = as_of.astimezone(list_settings.timezone).date()
    fields = pattern_fields(
        lead_headline=lead.headline, lead_section=lead.section,
        teaser_headlines=[s.headline for sec in sections for s in sec.teasers],
        title=list_settings.title, site=site_name, day=day,
        language=list_settings.language)
    return Edition(
        list_name=list_settings.name,
        date=day,
        subject=fill_pattern(list_settings.subject, fields, "subject", SUBJECT_MAX),
        preheader=fill_pattern(list_settings.preheader, fields, "preheader", PREHEADER_MAX),
        lead=lead,
        sections=sections,
        skipped=tuple(skipped),
        excluded=tuple(sorted(excluded.items())),
    )


_BARE_HEADLINE = 5
"""The lead tier of a story with neither text nor a link: it never leads unless forced."""


def _lead_tier(story: Story, lst: ListSettings, as_of: datetime) -> int:
    has_text = _has_text(story)
    if story.is_lead and has_text:
        return 0
    linked = link_key(story.url) is not None
    timely = story.published_at is not None and (
        lst.max_age is None or story.published_at >= as_of - lst.max_age)
    if has_text and linked:
        return 1 if timely else 2
    if has_text:
        return 3
    return 4 if linked else _BARE_HEADLINE


def _choose_lead(stories: list[Story], lst: ListSettings, as_of: datetime) -> Story:
    """The lead: the best tier first; within a tier the story a page marked as its lead,
    then the ``lead_section``'s, then the newest.

    Tiers, best first: (0) the story a page marked as its lead, when it has a body or a
    summary (the newsroom chose it, and its text is in the email, so no link is needed);
    (1) a story with a body or summary and a link, published within ``max_age`` (any
    publication date when the list has none); (2) the same, undated; (3) a body or summary
    without a link; (4) a headline with a link; (5) a bare headline. A teaser with neither
    text nor link never leads an edition that is not forced (:func:`assemble_edition`
    skips the day instead: a reader could not read the story it leads with), and a story
    dated in the future (``future_dated``) never leads while another is left (when none
    is, :func:`assemble_edition` skips the day unless forced).
    """
    # A story dated in the future (a source's clock or zone is wrong) never leads while
    # another is left.
    stories = [s for s in stories if not s.future_dated] or stories
    wanted = (lst.lead_section or "").casefold()
    return min(stories, key=lambda s: (_lead_tier(s, lst, as_of), not s.is_lead,
                                       not (wanted and s.section.casefold() == wanted),
                                       *_newest_first(s)))


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


def carried_stories(edition: Edition,
                    variants: Mapping[frozenset[str], frozenset[str]]) -> tuple[CarriedStory, ...]:
    """Which stories of ``edition`` its readers received, given the variants it was sent in.

    :param variants: for each variant sent to at least one reader, the section names it
        showed → the ids of the teasers its size budget dropped.
    :returns: one :class:`CarriedStory` per story of the edition, lead first.

    The rule: the lead is carried when any variant was sent (every variant shows it). A
    teaser is carried when at least one sent variant showed its section and *every* sent
    variant that showed its section kept it. A teaser the budget dropped from any variant
    (typically the all-sections one, the longest) stays eligible for the next edition,
    even though a narrower variant (a World-only reader's) showed it: those readers may see
    it twice, but the readers it was dropped for do not lose it. A repeat costs a reader a
    glance; a loss cannot be made good, and nothing the budget dropped may be lost. A teaser
    whose section no sent variant showed reached nobody and is not carried either.
    """
    def name(sections: frozenset[str]) -> tuple[str, ...]:
        return tuple(sorted(sections, key=str.casefold))

    out: list[CarriedStory] = []
    if edition.lead is not None:
        shown = tuple(sorted(name(v) for v in variants))
        out.append(CarriedStory(edition.lead.id, bool(variants), shown, ()))
    for section in edition.sections:
        relevant = [v for v in variants if section.name in v]
        for story in section.teasers:
            shown = tuple(sorted(name(v) for v in relevant if story.id not in variants[v]))
            dropped = tuple(sorted(name(v) for v in relevant if story.id in variants[v]))
            out.append(CarriedStory(story.id, bool(shown) and not dropped, shown, dropped))
    return tuple(out)
