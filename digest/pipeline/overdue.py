"""Editions that are due and not sent: a list whose send time has passed today (or whose
send window, opened on the previous local date, is still open) and whose edition for that day
is not built, or still a draft or approved (not sending, sent, held, cancelled or missed).

The scheduler's due rule (:mod:`digest.pipeline.scheduled`) publishes these within the send
window; ``status`` lists them so an operator sees what should be going out and is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.logs import iso_time
from digest.slots import SendSchedule

if TYPE_CHECKING:
    from digest.store import Store

__all__ = ["DueEdition", "due_editions"]

#: An edition in these states is still to be published.
_NOT_PUBLISHED = ("draft", "approved")


@dataclass(frozen=True, slots=True)
class DueEdition:
    """One due, unsent edition: its list, local ``day``, send time and window's end (in the
    list's zone), and the stored edition if any (``edition_id``/``status`` None: not built)."""

    list_name: str
    day: date
    due: datetime
    closes: datetime
    edition_id: int | None
    status: str | None
    needs_approval: bool

    def text(self, now: datetime) -> str:
        """One line, e.g. ``daily 2026-11-30 (due 2026-11-30T07:00:00+01:00 Europe/Paris):
        no edition built yet; its send window is open until …``."""
        if self.edition_id is None:
            what = "no edition built yet"
        elif self.needs_approval:
            what = (f"edition {self.edition_id} is a draft waiting for an editor's approval "
                    f"(`editions approve {self.edition_id}`)")
        else:
            what = f"edition {self.edition_id} is {self.status} and not published"
        if now < self.closes:
            window = (f"its send window is open until {iso_time(self.closes)}, so a running "
                      f"scheduler sends it (or `send --list {self.list_name}` now)")
        else:
            window = (f"its send window ended at {iso_time(self.closes)}, so a running "
                      "scheduler records it missed")
        return (f"{self.list_name} {self.day.isoformat()} (due {iso_time(self.due)} "
                f"{self.due.tzinfo}): {what}; {window}")


def due_editions(settings: Settings, store: Store, now: datetime,
                 list_name: str | None = None) -> list[DueEdition]:
    """Every list's (or ``list_name``'s) due and unsent editions at ``now``, oldest first.

    :raises StoreError: the database cannot be read.
    """
    lists = [settings.get_list(list_name)] if list_name else list(settings.lists.values())
    found: list[DueEdition] = []
    for lst in lists:
        schedule = SendSchedule(lst)
        today = now.astimezone(lst.timezone).date()
        for slot in schedule.slots_around(now):
            if slot.due > now or (slot.day != today and not slot.is_open(now)):
                continue
            record = store.find_edition(lst.name, slot.day)
            if record is not None and record.status not in _NOT_PUBLISHED:
                continue
            found.append(DueEdition(
                lst.name, slot.day, slot.due.astimezone(lst.timezone),
                slot.closes.astimezone(lst.timezone),
                record.id if record is not None else None,
                record.status if record is not None else None,
                needs_approval=(record is not None and record.status == "draft"
                                and lst.review == "required")))
    return sorted(found, key=lambda d: d.due)
