"""When a list's editions are due: one slot per scheduled local day, DST-proof.

Each list has one *slot* per scheduled local day (:class:`Slot`): with ``review =
"required"`` it opens ``review_lead`` before the send time (the draft is built and mailed to
the editors), the edition is *due* at the send time, and the slot closes ``send_window``
after it (an edition not published by then is missed). The send time is read on the wall
clock of the list's timezone with :mod:`zoneinfo`: a time that does not exist that day (the
spring DST change) means the first instant after the gap, a time that occurs twice (the
autumn change) means its first occurrence, so every list has exactly one slot per scheduled
local day. Pure computations: the scheduler's trigger and the pipeline's due rule share them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digest.config import ListSettings

__all__ = ["RETRY", "SendSchedule", "Slot", "local_instant"]

#: How often a due edition that is not yet published is tried again.
RETRY = timedelta(minutes=1)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) the wall clock of ``tz`` shows ``at`` on ``day``.

    A time the clocks skip that day (spring forward) gives the first instant after the gap,
    i.e. the moment of the change; a time that happens twice (fall back) gives the first.
    Follows PEP 495 ``fold`` semantics as implemented by :mod:`zoneinfo`.
    """
    wall = datetime.combine(day, at.replace(tzinfo=None))
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first  # exists (fold=0 is the earlier of two occurrences)
    # In a gap: fold=1 reads the wall time with the offset after the change (an instant
    # before the change), fold=0 with the offset before it (an instant after). The change is
    # the first instant whose wall time is past ``wall``: search between them by the second.
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


@dataclass(frozen=True, slots=True)
class Slot:
    """One scheduled edition of a list: its local ``day`` and, in UTC, when it ``opens``
    (review starts; equal to ``due`` without review), is ``due`` (the send time) and
    ``closes`` (the send window's end: from then on it is missed)."""

    list_name: str
    day: date
    opens: datetime
    due: datetime
    closes: datetime

    def is_open(self, now: datetime) -> bool:
        """True from ``opens`` (inclusive) to ``closes`` (exclusive)."""
        return self.opens <= now < self.closes


class SendSchedule:
    """A list's slots, computed from its send time, days, timezone, review lead and window."""

    def __init__(self, lst: ListSettings) -> None:
        self.list_name = lst.name
        self.tz = lst.timezone
        self.at = lst.send_time
        self.weekdays = frozenset(_WEEKDAYS.index(d) for d in lst.send_days)
        self.lead = lst.review_lead if lst.review == "required" else timedelta(0)
        self.window = lst.send_window

    def slot(self, day: date) -> Slot:
        """The slot of ``day`` (whether or not the list sends that weekday)."""
        due = local_instant(day, self.at, self.tz)
        return Slot(self.list_name, day, due - self.lead, due, due + self.window)

    def slots_around(self, now: datetime) -> Iterator[Slot]:
        """Scheduled slots in order, from the one two days before ``now``'s local date to
        nine days after (enough for any weekly pattern and any lead or window)."""
        today = now.astimezone(self.tz).date()
        for offset in range(-2, 10):
            day = today + timedelta(days=offset)
            if day.weekday() in self.weekdays:
                yield self.slot(day)

    def slot_at(self, now: datetime) -> Slot | None:
        """The slot open at ``now``, if any."""
        return next((s for s in self.slots_around(now) if s.is_open(now)), None)

    def last_closed(self, now: datetime) -> Slot | None:
        """The most recent slot that closed at or before ``now``."""
        closed = [s for s in self.slots_around(now) if s.closes <= now]
        return closed[-1] if closed else None

    def next_due(self, now: datetime) -> datetime | None:
        """The next send time at or after ``now``, in the list's timezone."""
        return next((s.due.astimezone(self.tz) for s in self.slots_around(now)
                     if s.due >= now), None)

    def next_fire(self, start: datetime, retry: timedelta = RETRY) -> datetime | None:
        """The first fire time at or after ``start``: a slot's opening, its send time and
        every ``retry`` after it while it is open, and its close; in UTC (all arithmetic is
        done in UTC: see :class:`digest.schedule.EditionTrigger` on ``fold``)."""
        start = start.astimezone(UTC)
        for slot in self.slots_around(start):
            if start <= slot.opens:
                return slot.opens
            if start <= slot.closes:
                steps = math.ceil((start - slot.due) / retry)
                return min(slot.due + steps * retry, slot.closes)
        return None  # pragma: no cover - slots_around always reaches past ``start``

    def describe(self) -> str:
        """e.g. "daily at 07:00 Europe/London (window 3:00:00)"."""
        days = ("daily" if len(self.weekdays) == 7 else
                "on " + ", ".join(_WEEKDAYS[d] for d in sorted(self.weekdays)))
        review = f", review from {_span(self.lead)} before" if self.lead else ""
        return f"{days} at {self.at:%H:%M} {self.tz}{review}, send window {_span(self.window)}"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}" if hours and minutes else f"{hours}h" if hours else \
        f"{minutes}m"
