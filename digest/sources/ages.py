"""Relative ages ("12 mins ago", "yesterday", "1 year ago") resolved against a capture time."""

from __future__ import annotations

import calendar
import re
from collections.abc import Container
from datetime import UTC, datetime, timedelta

from digest.errors import ParseError

__all__ = ["parse_age", "split_section_age"]

_UNITS: dict[str, str] = {}
for _unit, _spellings in {
    "seconds": "s sec secs second seconds",
    "minutes": "m min mins minute minutes",
    "hours": "h hr hrs hour hours",
    "days": "d day days",
    "weeks": "w wk wks week weeks",
    "months": "mo mos mth mths month months",
    "years": "y yr yrs year years",
}.items():
    for _spelling in _spellings.split():
        _UNITS[_spelling] = _unit

_UNIT_ALT = "|".join(sorted(_UNITS, key=len, reverse=True))
_COUNT = r"(?P<count>\d{1,9}|an?|one)"
# A full age; the unit must end the word so "5 monthsx ago" is not an age.
_AGE_BODY = (
    rf"(?:{_COUNT}\s*(?P<unit>{_UNIT_ALT})\b\.?\s+ago"
    r"|(?P<now>just\s+now|right\s+now|now|moments?\s+ago|today)"
    r"|(?P<yesterday>yesterday))"
)
_AGE = re.compile(rf"^\s*{_AGE_BODY}\s*$", re.IGNORECASE)
# An age glued to the end of a section name: "Top Stories1 month ago".
_TRAILING_AGE = re.compile(rf"{_AGE_BODY}\s*$", re.IGNORECASE)
_SECTION_TRIM = " \t-–—|·•:,"
_MAX_HEADER = 200  # longer lines are never a section + age


def parse_age(text: str, as_of: datetime) -> datetime:
    """Resolve a relative age such as ``"2 hours ago"`` against ``as_of``.

    Minutes and hours are exact elapsed time; days and weeks step the calendar;
    months and years step calendar months, clamping the day (31 March minus one month
    is 28 or 29 February). A naive ``as_of`` is taken as UTC; the result is in the
    same timezone as ``as_of``.

    :raises ParseError: when ``text`` is not an age or the result is out of range.
    """
    match = _AGE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ParseError(f"{str(text)[:60]!r} is not a relative age such as '2 hours ago'.")
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    try:
        return _resolve(match, as_of)
    except (OverflowError, ValueError) as exc:
        raise ParseError(f"The age {text.strip()!r} reaches outside the calendar.") from exc


def _resolve(match: re.Match[str], as_of: datetime) -> datetime:
    if match.group("now"):
        return as_of
    if match.group("yesterday"):
        return as_of - timedelta(days=1)
    raw_count = match.group("count").casefold()
    count = 1 if raw_count in ("a", "an", "one") else int(raw_count)
    unit = _UNITS[match.group("unit").casefold()]
    if unit in ("seconds", "minutes", "hours"):
        # Elapsed time: step in UTC so a DST change in between does not shift the result.
        utc = as_of.astimezone(UTC) - timedelta(**{unit: count})
        return utc.astimezone(as_of.tzinfo)
    if unit in ("days", "weeks"):
        return as_of - timedelta(**{unit: count})
    months = count * (12 if unit == "years" else 1)
    return _minus_months(as_of, months)


def _minus_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    if year < 1:
        raise ValueError("before year 1")
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def split_section_age(line: str, *, known_sections: Container[str] = ()) -> tuple[str, str | None]:
    """Split a teaser header such as ``"Top Stories1 month ago"`` into section and age text.

    The age may be glued to the section or separated by spaces or a dash. When several
    splits are possible (``"Formula 12 hours ago"``), the one whose section is in
    ``known_sections`` (casefolded) wins, else the longest age. A header with no age gives
    ``(section, None)``; a header that is only an age gives ``("", age)``.
    """
    text = line.strip()
    if len(text) > _MAX_HEADER:
        return text, None
    candidates: list[tuple[str, str]] = []
    for start in range(len(text)):
        if not _could_start_age(text, start):
            continue
        match = _TRAILING_AGE.match(text, start)
        if match is None or match.end() != len(text):
            continue
        if match.group("now") and not _word_starts(text, start):
            continue  # "Snow" is a section, not "S" + "now"
        candidates.append((text[:start].strip(_SECTION_TRIM), text[start:].strip()))
    if not candidates:
        return text.strip(_SECTION_TRIM) or text, None
    for section, age in candidates:
        if section.casefold() in known_sections:
            return section, age
    return candidates[0]


def _could_start_age(text: str, start: int) -> bool:
    char = text[start]
    return char.isdigit() or char.casefold() in "ajmnorty"


def _word_starts(text: str, start: int) -> bool:
    """True when a word begins at ``start``: after a non-letter, or as in "SportsNow"."""
    if start == 0 or not text[start - 1].isalpha():
        return True
    return text[start].isupper() and text[start - 1].islower()
