"""An edition's lifecycle: its status and every move as an event (publishing, the move to
"sending" that creates the ledger rows, is in ``publishing.py``).

Moves (each one event)::

    draft ──approve──> approved ──publish──> sending ──last ledger row ended──> sent
    draft, approved ──hold──> held ──approve──> approved
    draft, approved ──send window over──> missed
    held ──approved after the send window──> missed
    draft, approved, held, missed ──cancel──> cancelled
    held, missed ──publish with --force (the editor's override)──> sending

- ``draft``: built and stored, not published. ``approved``: an editor said it may go out.
- ``sending``: published (one ledger row per recipient exists) and some rows are still
  queued or sending. ``sent``: published and every ledger row is terminal. A record's
  ``status`` is read together with the ledger, so the two always agree; :meth:`settle_editions`
  writes the move (and its event) once the last row ended.
- ``held``: an editor (or the scheduler, when a source failed) stopped it; the scheduler never
  publishes it. ``cancelled``: it will never go out. ``missed``: its send window ended before
  it was published. Only an editor's explicit ``--force`` publishes a held or missed edition,
  and that is recorded.

Every move is one row of ``edition_events`` (append-only) written in the same transaction as
the move, with the actor ("editor:<name>", "scheduler", "send command", "worker", ...), a
cause in words and a JSON detail; a notice about an edition that does not move it (the review
mail went out) is an event whose old and new status are equal. Each event is also one log line
on the ``digest.editions`` logger (never an address).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import EditionStateError, StoreError

from .engine import Database, guarded
from .schema import (
    EDITION_STATUSES,
    NON_TERMINAL,
    deliveries,
    edition_events,
    editions,
    lists,
)

__all__ = [
    "EDITION_STATUSES",
    "PENDING",
    "PUBLISHED",
    "UNPUBLISHED",
    "EditionEvent",
    "LifecycleMixin",
]

log = logging.getLogger("digest.editions")

#: Stored, not yet published: the scheduler may publish these (``approved`` only, with review).
PENDING = frozenset({"draft", "approved"})
#: Stored and not published, including ``held`` (which only an editor's ``--force`` publishes).
UNPUBLISHED = frozenset({"draft", "approved", "held"})
#: Published: ledger rows exist.
PUBLISHED = frozenset({"sending", "sent"})

# Moves an editor or the scheduler may make with set_edition_status (publishing and settling
# have their own methods): new status -> the statuses it may come from.
_MOVES: dict[str, frozenset[str]] = {
    "approved": frozenset({"draft", "held"}),
    "held": frozenset({"draft", "approved"}),
    "cancelled": frozenset({"draft", "approved", "held", "missed"}),
    "missed": frozenset({"draft", "approved", "held"}),
    "draft": frozenset({"approved"}),
}
_PAST = {"approved": "approved", "held": "held", "cancelled": "cancelled",
         "missed": "marked missed", "draft": "returned to draft"}


@dataclass(frozen=True, slots=True)
class EditionEvent:
    """One move of an edition's status (or a notice, when ``old_status == new_status``).

    ``old_status`` is None for the event that created the edition; ``created_at`` is UTC;
    ``detail`` is JSON data (counts, warnings, ``forced``) or None.
    """

    id: int
    edition_id: int
    created_at: datetime
    old_status: str | None
    new_status: str
    actor: str
    cause: str | None
    detail: dict[str, Any] | None


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _refusal(edition_id: int, status: str, new: str) -> EditionStateError:
    """The sentence for a move ``status`` -> ``new`` that is not allowed."""
    past = _PAST.get(new, new)
    if status in PUBLISHED:
        what = "is being delivered" if status == "sending" else "already went out"
        return EditionStateError(f"Edition {edition_id} {what} (status {status}); it can no "
                                 f"longer be {'held' if new == 'held' else new}.")
    if status == "cancelled":
        return EditionStateError(f"Edition {edition_id} was cancelled, and cancelled editions "
                                 "stay cancelled; make another with `draft`.")
    if status == "missed":
        return EditionStateError(f"Edition {edition_id} missed its send window, so it cannot "
                                 f"be {past} and the scheduler will not send it; send it anyway "
                                 "with `send --force`, or cancel it.")
    return EditionStateError(f"Edition {edition_id} is {status}, so it cannot be {past}.")


@dataclass(frozen=True, slots=True)
class _Logged:
    edition_id: int
    list_name: str
    day: date
    old: str | None
    new: str
    actor: str
    cause: str | None


class LifecycleMixin(Database):
    """Store methods that move an edition through its lifecycle and record each move."""

    # ---------------------------------------------------------------- events

    def _add_event(self, conn: Connection, edition_id: int, old: str | None, new: str, *,
                   actor: str, cause: str | None, detail: dict[str, Any] | None,
                   now: datetime) -> _Logged:
        conn.execute(edition_events.insert().values(
            edition_id=edition_id, created_at=now, old_status=old, new_status=new,
            actor=actor[:200], cause=cause[:1000] if cause else None, detail=detail))
        row = conn.execute(sa.select(lists.c.name, editions.c.date)
                           .join(lists, lists.c.id == editions.c.list_id)
                           .where(editions.c.id == edition_id)).one()
        return _Logged(edition_id, row.name, row.date, old, new, actor, cause)

    @staticmethod
    def _log_events(logged: Iterable[_Logged]) -> None:
        """One line per event, after its transaction committed."""
        for e in logged:
            if e.old == e.new:  # a note (a test sent, a review mail): the edition stays
                log.info("edition %d list=%s date=%s note (still %s) by %s%s", e.edition_id,
                         e.list_name, e.day.isoformat(), e.new, e.actor,
                         f": {e.cause}" if e.cause else "")
                continue
            # An editor's own move (hold, a late approval recorded as missed) is no warning.
            warn = e.new in ("missed", "held") and not e.actor.startswith("editor:")
            log.log(logging.WARNING if warn else logging.INFO,
                    "edition %d list=%s date=%s %s -> %s by %s%s", e.edition_id, e.list_name,
                    e.day.isoformat(), e.old or "new", e.new, e.actor,
                    f": {e.cause}" if e.cause else "")

    @guarded
    def edition_events(self, edition_id: int) -> list[EditionEvent]:
        """Every event of the edition, oldest first (the answer to "why is it so?")."""
        query = (sa.select(edition_events).where(edition_events.c.edition_id == edition_id)
                 .order_by(edition_events.c.id))
        with self.read() as conn:
            return [EditionEvent(id=r.id, edition_id=r.edition_id, created_at=r.created_at,
                                 old_status=r.old_status, new_status=r.new_status,
                                 actor=r.actor, cause=r.cause, detail=r.detail)
                    for r in conn.execute(query)]

    @guarded
    def note_edition(self, edition_id: int, *, actor: str, cause: str,
                     detail: dict[str, Any] | None = None, now: datetime | None = None) -> None:
        """Record a notice about an edition that does not move it (e.g. "review mail sent")."""
        with self.write() as conn:
            status = conn.execute(sa.select(editions.c.status)
                                  .where(editions.c.id == edition_id)).scalar()
            if status is None:
                raise StoreError(f"The store has no edition {edition_id}; check the edition id.")
            logged = self._add_event(conn, edition_id, status, status, actor=actor, cause=cause,
                                     detail=detail, now=_utc(now))
        self._log_events([logged])

    # ---------------------------------------------------------------- moves

    @guarded
    def set_edition_status(self, edition_id: int, new_status: str, *, actor: str,
                           cause: str | None = None, detail: dict[str, Any] | None = None,
                           now: datetime | None = None) -> bool:
        """Move the edition to ``new_status`` ("approved", "held", "cancelled", "missed" or
        back to "draft") and record the event; False when it is there already (nothing
        recorded).

        :raises EditionStateError: the move is not allowed from the current status (the
            message says why and what to do instead).
        :raises StoreError: there is no such edition.
        """
        allowed = _MOVES.get(new_status)
        if allowed is None:
            raise ValueError(f"not a status an edition can be moved to: {new_status!r}")
        now = _utc(now)
        with self.write() as conn:
            status = conn.execute(sa.select(editions.c.status)
                                  .where(editions.c.id == edition_id)).scalar()
            if status is None:
                raise StoreError(f"The store has no edition {edition_id}; check the edition id.")
            if status == "sending" and not self._has_open_rows(conn, edition_id):
                status = "sent"
            if status == new_status:
                return False
            if status not in allowed:
                raise _refusal(edition_id, status, new_status)
            moved = conn.execute(editions.update().where(
                editions.c.id == edition_id, editions.c.status == status,
            ).values(status=new_status)).rowcount
            if not moved:  # pragma: no cover - the write transaction serialises movers
                raise EditionStateError(f"Edition {edition_id} changed while this ran; look "
                                        "at it again and retry.")
            logged = self._add_event(conn, edition_id, status, new_status, actor=actor,
                                     cause=cause, detail=detail, now=now)
        self._log_events([logged])
        return True

    @staticmethod
    def _has_open_rows(conn: Connection, edition_id: int) -> bool:
        return conn.execute(sa.select(sa.literal(1)).where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.status.in_(sorted(NON_TERMINAL))).limit(1)).first() is not None

    def _record_created(self, conn: Connection, edition_id: int, status: str, *, actor: str,
                        cause: str | None, detail: dict[str, Any] | None, now: datetime,
                        supersede: bool) -> list[_Logged]:
        """The event of a new edition; with ``supersede`` every older unpublished edition of
        the same list and date is cancelled ("superseded"), so one stays live."""
        logged = [self._add_event(conn, edition_id, None, status, actor=actor, cause=cause,
                                  detail=detail, now=now)]
        if not supersede:
            return logged
        me = conn.execute(sa.select(editions.c.list_id, editions.c.date)
                          .where(editions.c.id == edition_id)).one()
        older = conn.execute(sa.select(editions.c.id, editions.c.status).where(
            editions.c.list_id == me.list_id, editions.c.date == me.date,
            editions.c.id != edition_id, editions.c.status.in_(sorted(UNPUBLISHED)))).all()
        for row in older:
            conn.execute(editions.update().where(editions.c.id == row.id)
                         .values(status="cancelled"))
            logged.append(self._add_event(
                conn, row.id, row.status, "cancelled", actor=actor,
                cause=f"superseded by edition {edition_id}", detail=None, now=now))
        return logged
