"""Subject and preheader patterns: the fields a list's ``subject`` and ``preheader`` may use,
filled from the stories one email shows.

The edition fills them once for the edition as a whole (its stored subject and preheader);
the render stage fills them again for each section variant from the teasers that variant
keeps after the size budget, so a Sports-only reader's preheader names Sports stories.
Fields: ``lead_headline``, ``lead_section``, ``title``, ``site``, ``date`` (a
:class:`digest.i18n.LocalDate`, so ``{date:%d %B}`` writes day and month names in the list's
language), ``weekday`` (in the list's language), ``teaser_headlines`` (the
first three teasers shown, joined by " · ", or the lead's headline when there are none) and
``story_count`` (the lead plus the teasers shown).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from digest.errors import ConfigError
from digest.i18n import LocalDate, weekday_name

__all__ = ["PREHEADER_MAX", "SUBJECT_MAX", "fill_pattern", "one_line", "pattern_fields"]

PREHEADER_MAX = 140
"""Characters of preheader kept: what inbox previews show at most."""
SUBJECT_MAX = 200
"""Characters of subject kept (RFC 5322 allows more; no client shows more)."""


def pattern_fields(*, lead_headline: str, lead_section: str, teaser_headlines: Sequence[str],
                   title: str, site: str, day: date, language: str) -> dict[str, object]:
    """The values the patterns may use, for an email showing the given stories, with day and
    month names in ``language`` (a BCP 47 tag)."""
    return {
        "lead_headline": lead_headline,
        "lead_section": lead_section,
        "title": title,
        "site": site,
        "date": LocalDate.of(day, language),
        "weekday": weekday_name(day, language),
        "teaser_headlines": " · ".join(teaser_headlines[:3]) or lead_headline,
        "story_count": 1 + len(teaser_headlines),
    }


def fill_pattern(pattern: str, fields: dict[str, object], setting: str, limit: int) -> str:
    """``pattern`` filled from ``fields``, on one line, cut at a word to ``limit`` characters.

    :raises ConfigError: naming ``setting`` when the pattern cannot be filled.
    """
    try:
        text = pattern.format_map(fields)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"The {setting} pattern {pattern!r} cannot be filled ({exc}); "
                          "fix it in the configuration file.") from None
    return one_line(text, limit)


def one_line(text: str, limit: int) -> str:
    """Collapse all whitespace (CR and LF included) and cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:·-") + "…"
