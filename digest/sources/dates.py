"""Feed dates read as the instant they name, or reported as unreadable: never guessed.

Forms read here, before feedparser's own parsers are consulted:

- RFC 822 / RFC 5322 section 3.3 with the obsolete forms of section 4.3 (two-digit years:
  00-49 are 2000-2049, 50-99 are 1950-1999; named zones), any weekday spelling, month names
  in English, German, French, Spanish, Italian, Dutch and Portuguese;
- ISO 8601 / RFC 3339 / W3C-DTF (``2026-11-16T23:30:00+02:00``, ``Z``, a space for ``T``);
- ``2026/11/16 15:07:41`` (year first with slashes, as many CMSs write it);
- C ``asctime`` (``Mon Nov 16 08:57:00 2026``).

A time with no zone is read as UTC, and :attr:`FeedDate.problem` says so. ``-0000`` is UTC
(RFC 5322 section 3.3). An unknown or ambiguous zone name (``IST`` is India, Ireland or
Israel) leaves the item undated rather than hours off. For anything else feedparser's
reading is used only when its year and day appear as numbers in the text, so a misread such
as ``2026/11/16`` -> 1 November is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = ["FeedDate", "read_date"]

_MONTHS = {
    # English (first three letters of any spelling)
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
    # German, Dutch, French, Spanish, Italian, Portuguese (accents folded)
    "mrz": 3, "mai": 5, "okt": 10, "dez": 12, "mrt": 3, "mei": 5,
    "fev": 2, "avr": 4, "juin": 6, "juil": 7, "aou": 8,
    "ene": 1, "abr": 4, "ago": 8, "dic": 12, "set": 9,
    "gen": 1, "mag": 5, "giu": 6, "lug": 7, "ott": 10, "out": 10,
}  # fmt: skip
_ZONES = {  # minutes east of UTC; RFC 822's North American names keep their RFC meaning
    "ut": 0, "utc": 0, "gmt": 0, "z": 0, "wet": 0, "bst": 60, "west": 60, "wat": 60,
    "cet": 60, "met": 60, "mez": 60, "cest": 120, "mest": 120, "mesz": 120, "medt": 120,
    "eet": 120, "sast": 120, "cat": 120, "eest": 180, "msk": 180, "eat": 180,
    "pkt": 300, "ict": 420, "wib": 420, "hkt": 480, "sgt": 480, "pht": 480, "awst": 480,
    "jst": 540, "kst": 540, "acst": 570, "aest": 600, "acdt": 630, "aedt": 660,
    "nzst": 720, "nzdt": 780,
    "est": -300, "edt": -240, "cst": -360, "cdt": -300, "mst": -420, "mdt": -360,
    "pst": -480, "pdt": -420, "akst": -540, "akdt": -480, "hst": -600,
    "ast": -240, "adt": -180, "nst": -210, "ndt": -150,
}  # fmt: skip
_AMBIGUOUS_ZONES = frozenset({"ist", "amt", "gst", "sst", "cct"})
_ZONE = r"(?P<zone>(?:(?:gmt|utc|ut)\s*)?[+-]\d{1,2}(?::?\d{2})?|[a-z]{1,5})"
_TIME = r"(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,]\d+)?)?"
_RFC822 = re.compile(
    rf"^(?:[^\W\d_]{{2,}}\.?,?\s+)?(?P<d>\d{{1,2}})(?:\s+|-)(?P<mon>[^\W\d_]{{3,}})\.?(?:\s+|-)"
    rf"(?P<y>\d{{2,4}})(?:,?\s+{_TIME})?(?:\s*{_ZONE})?(?:\s*\([^()]*\))?$",
    re.IGNORECASE,
)
_SLASH = re.compile(
    rf"^(?P<y>\d{{4}})/(?P<mo>\d{{1,2}})/(?P<d>\d{{1,2}})(?:[\sT]+{_TIME})?(?:\s*{_ZONE})?$",
    re.IGNORECASE,
)
_ASCTIME = re.compile(
    rf"^(?:[^\W\d_]{{2,}}\s+)?(?P<mon>[^\W\d_]{{3,}})\s+(?P<d>\d{{1,2}})\s+{_TIME}\s+"
    rf"(?:{_ZONE}\s+)?(?P<y>\d{{4}})$",
    re.IGNORECASE,
)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T\s]\d{2}:\d{2}.*)?$", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class FeedDate:
    """A date as read: ``moment`` (UTC) or None, and ``problem``, one phrase when the text
    was unreadable or had to be assumed something of (``"gives no time zone"``)."""

    moment: datetime | None
    problem: str | None = None


def read_date(raw: Any, parsed: Any = None) -> FeedDate:
    """Read ``raw`` (a feed's date text); ``parsed`` is feedparser's ``*_parsed`` value.

    Never raises: what cannot be read is ``FeedDate(None, problem)``.
    """
    if not isinstance(raw, str) or not raw.strip():
        return FeedDate(_from_struct(parsed))
    text = " ".join(raw.split())
    if len(text) > 80:  # no date form is this long
        return FeedDate(None, f"its date {text[:60]!r}… could not be read")
    for reader in (_iso, _slash, _rfc822, _asctime):
        result = reader(text)
        if result is not None:
            return result
    fallback = _from_struct(parsed)
    if fallback is not None and _plausible(fallback, text):
        return FeedDate(fallback)
    return FeedDate(None, f"its date {text[:60]!r} could not be read")


def _iso(text: str) -> FeedDate | None:
    if not _ISO.match(text):
        return None
    value = re.sub(r"z$", "+00:00", text, flags=re.IGNORECASE)
    value = re.sub(r"\s*([+-]\d{2})(\d{2})$", r"\1:\2", value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return FeedDate(None, f"its date {text[:60]!r} could not be read")
    return _finish(moment, None, text)


def _slash(text: str) -> FeedDate | None:
    match = _SLASH.match(text)
    if match is None:
        return None
    return _build(text, match, int(match.group("y")), int(match.group("mo")))


def _rfc822(text: str) -> FeedDate | None:
    match = _RFC822.match(text)
    if match is None:
        return None
    month = _month(match.group("mon"))
    if month is None:
        return FeedDate(None, f"its date {text[:60]!r} names an unknown month")
    return _build(text, match, _year(match.group("y")), month)


def _asctime(text: str) -> FeedDate | None:
    match = _ASCTIME.match(text)
    if match is None:
        return None
    month = _month(match.group("mon"))
    if month is None:
        return None
    return _build(text, match, int(match.group("y")), month)


def _build(text: str, match: re.Match[str], year: int, month: int) -> FeedDate:
    zone = match.group("zone")
    offset = _offset(zone) if zone else None
    if zone and offset is None:
        what = "an ambiguous" if zone.casefold() in _AMBIGUOUS_ZONES else "an unknown"
        return FeedDate(None, f"its date {text[:60]!r} has {what} time zone {zone!r}")
    try:
        moment = datetime(
            year,
            month,
            int(match.group("d")),
            int(match.group("h") or 0),
            int(match.group("mi") or 0),
            int(match.group("s") or 0),
            tzinfo=offset,
        )
    except ValueError:
        return FeedDate(None, f"its date {text[:60]!r} is not a real date")
    return _finish(moment, offset, text)


def _finish(moment: datetime, offset: timezone | None, text: str) -> FeedDate:
    if moment.tzinfo is None:
        return FeedDate(moment.replace(tzinfo=UTC), f"its date {text[:60]!r} gives no time zone")
    try:
        return FeedDate(moment.astimezone(UTC))
    except OverflowError:
        return FeedDate(None, f"its date {text[:60]!r} is out of range")


def _offset(zone: str) -> timezone | None:
    name = zone.casefold().replace(" ", "")
    if name in _ZONES:
        return timezone(timedelta(minutes=_ZONES[name]))
    match = re.fullmatch(r"(?:gmt|utc|ut)?([+-])(\d{1,2}):?(\d{2})?", name)
    if match is None:
        return None
    hours, minutes = int(match.group(2)), int(match.group(3) or 0)
    if hours > 18 or minutes > 59:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _month(name: str) -> int | None:
    folded = unicodedata.normalize("NFKD", name.casefold().rstrip("."))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _MONTHS.get(folded[:4]) or _MONTHS.get(folded[:3])


def _year(digits: str) -> int:
    year = int(digits)
    if len(digits) == 2:
        return year + (2000 if year < 50 else 1900)
    if len(digits) == 3:
        return year + 1900
    return year


def _from_struct(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in parsed[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _plausible(moment: datetime, text: str) -> bool:
    """feedparser's reading is kept only when its year and day are numbers in the text."""
    numbers = {int(n) for n in _NUMBER.findall(text) if len(n) <= 4}
    year_ok = moment.year in numbers or moment.year % 100 in numbers
    # The zone may move the UTC day by one either way.
    days = {(moment + timedelta(days=step)).day for step in (-1, 0, 1)}
    return year_ok and bool(days & numbers)
