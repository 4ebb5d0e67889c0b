"""Relative ages: every spelling the pages use, calendar arithmetic, and junk that must not crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.sources import parse_age
from digest.sources.ages import split_section_age

AS_OF = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Just now", AS_OF),
        ("just  NOW", AS_OF),
        ("now", AS_OF),
        ("1 min ago", AS_OF - timedelta(minutes=1)),
        ("12 mins ago", AS_OF - timedelta(minutes=12)),
        ("5m ago", AS_OF - timedelta(minutes=5)),
        ("30 seconds ago", AS_OF - timedelta(seconds=30)),
        ("an hour ago", AS_OF - timedelta(hours=1)),
        ("1 hr ago", AS_OF - timedelta(hours=1)),
        ("2 hours ago", AS_OF - timedelta(hours=2)),
        ("yesterday", AS_OF - timedelta(days=1)),
        ("1 day ago", AS_OF - timedelta(days=1)),
        ("a day ago", AS_OF - timedelta(days=1)),
        ("3 weeks ago", AS_OF - timedelta(weeks=3)),
        ("4 weeks ago", datetime(2026, 3, 3, 12, 0, tzinfo=UTC)),
        ("1 month ago", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),  # 31 March → clamped to 28 Feb
        ("2 months ago", datetime(2026, 1, 31, 12, 0, tzinfo=UTC)),
        ("13 months ago", datetime(2025, 2, 28, 12, 0, tzinfo=UTC)),
        ("1 year ago", datetime(2025, 3, 31, 12, 0, tzinfo=UTC)),
        ("  2 Years Ago  ", datetime(2024, 3, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_ages_resolve_against_the_capture_time(text: str, expected: datetime) -> None:
    assert parse_age(text, AS_OF) == expected


def test_a_year_before_29_february_clamps_to_28() -> None:
    leap = datetime(2028, 2, 29, 9, 0, tzinfo=UTC)
    assert parse_age("1 year ago", leap) == datetime(2027, 2, 28, 9, 0, tzinfo=UTC)


def test_hours_are_elapsed_time_across_a_dst_change() -> None:
    london = ZoneInfo("Europe/London")
    as_of = datetime(
        2026, 3, 29, 3, 30, tzinfo=london
    )  # 02:30 UTC, just after the clocks went forward
    result = parse_age("2 hours ago", as_of)
    assert result.tzinfo is london
    assert as_of.astimezone(UTC) - result.astimezone(UTC) == timedelta(hours=2)
    assert result.astimezone(UTC) == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def test_a_naive_capture_time_is_taken_as_utc() -> None:
    result = parse_age("2 hours ago", datetime(2026, 1, 1, 12, 0))
    assert result == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ago",
        "2 fortnights ago",
        "in 2 hours",
        "2 hours",
        "hours ago",
        "-1 day ago",
        "1.5 days ago",
        "Sports",
    ],
)
def test_what_is_not_an_age_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="is not a relative age"):
        parse_age(text, AS_OF)


def test_an_age_beyond_the_calendar_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="outside the calendar"):
        parse_age("999999999 years ago", AS_OF)
    with pytest.raises(ParseError, match="outside the calendar"):
        parse_age("999999999 days ago", AS_OF)


@pytest.mark.parametrize(
    ("header", "section", "age"),
    [
        ("Top Stories1 month ago", "Top Stories", "1 month ago"),
        ("Sports4 weeks ago", "Sports", "4 weeks ago"),
        ("SportsJust now", "Sports", "Just now"),
        ("Sportsan hour ago", "Sports", "an hour ago"),
        ("Worldyesterday", "World", "yesterday"),
        ("Business · 3 days ago", "Business", "3 days ago"),
        ("Sports - 2 hours ago", "Sports", "2 hours ago"),
        ("رياضة4 weeks ago", "رياضة", "4 weeks ago"),
        ("Politics", "Politics", None),
        ("Snow", "Snow", None),  # not "S" + "now"
        ("Known", "Known", None),
        ("Just now", "", "Just now"),
    ],
)
def test_split_section_and_glued_age(header: str, section: str, age: str | None) -> None:
    assert split_section_age(header) == (section, age)


def test_known_sections_decide_an_ambiguous_split() -> None:
    assert split_section_age("Formula 12 hours ago") == ("Formula", "12 hours ago")
    assert split_section_age("Formula 12 hours ago", known_sections={"formula 1"}) == (
        "Formula 1",
        "2 hours ago",
    )


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_random_text_is_an_age_or_a_parse_error(text: str) -> None:
    try:
        result = parse_age(text, AS_OF)
    except ParseError:
        return
    assert result.tzinfo is not None
    assert result <= AS_OF


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=500),
    unit=st.sampled_from(
        [
            "min",
            "mins",
            "hour",
            "hours",
            "hr",
            "day",
            "days",
            "week",
            "weeks",
            "month",
            "months",
            "year",
            "years",
        ]
    ),
    as_of=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_generated_ages_are_never_in_the_future(count: int, unit: str, as_of: datetime) -> None:
    result = parse_age(f"{count} {unit} ago", as_of)
    assert result <= as_of
    assert result.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(header=st.text(max_size=80))
def test_split_never_raises_and_returns_a_parseable_age(header: str) -> None:
    section, age = split_section_age(header)
    assert isinstance(section, str)
    if age is not None:
        try:
            parse_age(age, AS_OF)
        except ParseError as exc:
            assert "outside the calendar" in str(exc)
