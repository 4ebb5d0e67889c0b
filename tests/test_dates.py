"""Feed dates: read as the instant they name, or unreadable and said so; never moved."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.sources.dates import read_date


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("Mon, 16 Nov 2026 08:57:00 MEST", utc(2026, 11, 16, 6, 57)),
        ("Mon, 16 Nov 2026 16:18:00 EST", utc(2026, 11, 16, 21, 18)),
        ("Mon, 16 Nov 2026 01:22:22 -0000", utc(2026, 11, 16, 1, 22, 22)),
        ("Mon, 16 Nov 26 12:39:07 -0700", utc(2026, 11, 16, 19, 39, 7)),
        ("Sun, 16 Nov 99 12:00:00 GMT", utc(1999, 11, 16, 12)),
        ("2026-11-16T23:30:00+02:00", utc(2026, 11, 16, 21, 30)),
        ("2026-11-16T23:30:00.250Z", utc(2026, 11, 16, 23, 30, 0).replace(microsecond=250000)),
        ("2026-11-16 23:30+0530", utc(2026, 11, 16, 18, 0)),
        ("Mo, 16 Nov 2026 10:00:00 +0100", utc(2026, 11, 16, 9)),
        ("Di, 17 Dez 2026 10:00:00 MEZ", utc(2026, 12, 17, 9)),
        ("mar., 17 févr. 2026 10:00 +0100", utc(2026, 2, 17, 9)),
        ("17 ago 2026 10:00:00 -0300", utc(2026, 8, 17, 13)),
        ("Mon, 02 Nov 2026 08:00:00 +0100 (CET)", utc(2026, 11, 2, 7)),
        ("Mon, 16 Nov 2026 10:00:00 GMT+2", utc(2026, 11, 16, 8)),
        ("2026/11/16 15:07:41 +0900", utc(2026, 11, 16, 6, 7, 41)),
    ],
)
def test_dates_with_a_zone_are_the_instant_they_name(text: str, moment: datetime) -> None:
    assert read_date(text).moment == moment
    assert read_date(text).problem is None


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026/11/16 15:07:41", utc(2026, 11, 16, 15, 7, 41)),
        ("2026/11/16", utc(2026, 11, 16)),
        ("Mon Nov 16 08:57:00 2026", utc(2026, 11, 16, 8, 57)),
        ("2026-11-16T08:30:00", utc(2026, 11, 16, 8, 30)),
    ],
)
def test_dates_without_a_zone_are_read_as_utc_and_say_so(text: str, moment: datetime) -> None:
    date = read_date(text)
    assert date.moment == moment
    assert date.problem == f"its date {text!r} gives no time zone"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Mon, 16 Nov 2026 10:00:00 IST", "has an ambiguous time zone 'IST'"),
        ("Mon, 16 Nov 2026 10:00:00 QQT", "has an unknown time zone 'QQT'"),
        ("Mon, 31 Feb 2026 10:00:00 GMT", "is not a real date"),
        ("16 Brumaire 2026 10:00 GMT", "names an unknown month"),
        ("next Tuesday", "could not be read"),
        ("2026-13-45T10:00:00Z", "could not be read"),
    ],
)
def test_unreadable_dates_are_none_with_a_reason(text: str, problem: str) -> None:
    date = read_date(text)
    assert date.moment is None
    assert date.problem == f"its date {text!r} {problem}"


def test_feedparser_is_trusted_only_where_its_reading_is_plausible() -> None:
    # feedparser reads "2026/11/16" as 1 November; that is never accepted as it is.
    misread = time.struct_time((2026, 11, 1, 0, 0, 0, 6, 305, 0))
    assert read_date("2026/11/16 and more", misread).moment is None
    # A form only feedparser knows (Korean) is kept when its numbers are in the text.
    korean = time.struct_time((2004, 5, 25, 5, 23, 17, 1, 146, 0))
    assert read_date("2004-05-25 오후 2:23:17", korean).moment == utc(2004, 5, 25, 5, 23, 17)
    assert read_date(None, korean).moment == utc(2004, 5, 25, 5, 23, 17)
    assert read_date("", None) == read_date(None)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_gives_a_date_or_a_reason(text: str) -> None:
    date = read_date(text)
    if text.strip():
        assert date.moment is not None or date.problem
    assert date.moment is None or date.moment.tzinfo is UTC
