"""The Jinja2 environment the email templates run in: strict, autoescaped HTML, and filters."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from pathlib import Path

import jinja2

from digest.errors import RenderError
from digest.render.text import reference, wrap_text

__all__ = ["format_date", "format_day", "make_environment", "relative_time"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_day(day: date) -> str:
    """``Monday 25 August 2025`` in English whatever the process locale is."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def format_date(moment: datetime, tz: tzinfo | None = None) -> str:
    """``25 Aug 2025`` (in ``tz`` when given), locale-independent."""
    local = moment.astimezone(tz) if tz else moment
    return f"{local.day} {_MONTHS[local.month - 1][:3]} {local.year}"


def relative_time(moment: datetime | None, now: datetime | None, tz: tzinfo | None = None) -> str:
    """How long before ``now`` a story appeared: ``3 hours ago`` up to six days, else a date.

    A story dated after ``now`` reads ``just now``; without a ``now`` or a ``moment`` the
    answer is the absolute date or the empty string.
    """
    if moment is None:
        return ""
    if now is None:
        return format_date(moment, tz)
    seconds = max(0.0, (now - moment).total_seconds())
    for unit, size, limit in (("minute", 60, 60), ("hour", 3600, 24), ("day", 86400, 7)):
        count = int(seconds // size)
        if seconds < size * limit:
            if count < 1:
                return "just now"
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return format_date(moment, tz)


def make_environment(templates_dir: Path) -> jinja2.Environment:
    """The environment for ``templates_dir``: autoescape for ``.html``, undefined is an error.

    :raises RenderError: when the folder does not exist.
    """
    if not Path(templates_dir).is_dir():
        raise RenderError(f"The templates folder {templates_dir} does not exist; "
                          "point digest.templates_dir at it.")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm"),
                                            default_for_string=True, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["wrap"] = wrap_text
    env.filters["reference"] = reference
    env.filters["day"] = format_day
    env.filters["shortdate"] = format_date
    return env
