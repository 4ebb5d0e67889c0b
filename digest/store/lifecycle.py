"""An edition's lifecycle: its status, every move as an event, and publishing.

Moves (each one event)::

    draft ──approve──> approved ──publish──> sending ──last ledger row ended──> sent
    draft, approved ──hold──> held ──approve──> approved
    draft, approved ──send window over──> missed
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
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import EditionStateError, StoreError

from .engine import Database, guarded
from .schema import (
    ACTIVE,
    EDITION_STATUSES,
    NON_TERMINAL,
    deliveries,
    edition_events,
    editions,
    lists,
    memberships,
    subscribers,
    suppressions,
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
    "missed": frozenset({"draft", "approved"}),
    "draft": frozenset({"approved"}),
}
_VERB = {"approved": "approve", "held": "hold", "cancelled": "cancel", "missed": "mark missed",
         "draft": "return to draft"}


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
    verb = _VERB.get(new, new)
    if status in PUBLISHED:
        what = "is being delivered" if status == "sending" else "already went out"
        return EditionStateError(f"Edition {edition_id} {what} (status {status}); it can no "
                                 f"longer be {'held' if new == 'held' else new}.")
    if status == "cancelled":
        return EditionStateError(f"Edition {edition_id} was cancelled, and cancelled editions "
                                 "stay cancelled; make another with `draft`.")
    if status == "missed":
        return EditionStateError(f"Edition {edition_id} missed its send window, so the "
                                 f"scheduler will not send it; cannot {verb} it. Send it "
                                 "anyway with `send --force`, or cancel it.")
    return EditionStateError(f"Edition {edition_id} is {status}; it cannot {verb} from there.")


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
            warn = e.old != e.new and (e.new == "missed" or (
                e.new == "held" and not e.actor.startswith("editor:")))
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

    # ---------------------------------------------------------------- publishing

    def _random_token(self) -> sa.ColumnElement[str]:
        if self.is_sqlite:
            return sa.func.lower(sa.func.hex(sa.func.randomblob(6)))
        return sa.func.substr(sa.func.md5(sa.cast(sa.func.random(), sa.String)), 1, 12)

    @guarded
    def publish_edition(self, edition_id: int, *, message_id_domain: str, now: datetime,
                        actor: str = "send command", cause: str | None = None,
                        force: bool = False) -> int:
        """Publish the edition: in one transaction, one "queued" ledger row per active,
        unsuppressed member, and the move to "sending" with its event.

        Returns how many rows it created: 0 when the edition was published already, and 0
        with nothing changed when the list has no eligible recipient (the edition stays
        unpublished, so the day is not used up). At most one edition per list and date is
        published unless ``force`` (the editor's override, recorded in the event).

        :raises EditionStateError: the edition is cancelled; or held or missed, or another
            edition of that list and date went out, and not ``force``.
        :raises StoreError: there is no such edition.
        """
        now = _utc(now)
        with self.write() as conn:
            query = sa.select(editions.c.list_id, editions.c.date, editions.c.status,
                              editions.c.published_at).where(editions.c.id == edition_id)
            if not self.is_sqlite:
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise StoreError(f"The store has no edition {edition_id} to publish; "
                                 "record it first.")
            if row.published_at is not None:
                return 0
            if row.status == "cancelled" or (row.status not in PENDING and not force):
                raise _publish_refusal(edition_id, row.status)
            if not self.is_sqlite:  # serialise publishers of one list (SQLite: BEGIN IMMEDIATE)
                conn.execute(sa.select(lists.c.id).where(lists.c.id == row.list_id)
                             .with_for_update())
            other = conn.execute(sa.select(editions.c.id).where(
                editions.c.list_id == row.list_id, editions.c.date == row.date,
                editions.c.id != edition_id, editions.c.published_at.is_not(None),
            ).limit(1)).scalar()
            if other is not None and not force:
                raise EditionStateError(
                    f"Edition {other} of the same list and date ({row.date}) already went out; "
                    "only one edition a day is published unless you use --force.")
            created = self._insert_ledger_rows(conn, edition_id, row.list_id,
                                               message_id_domain, now)
            if not created:
                return 0
            conn.execute(editions.update().where(editions.c.id == edition_id).values(
                published_at=now, message_id_domain=message_id_domain, status="sending"))
            detail: dict[str, Any] = {"recipients": created}
            if force:
                detail["forced"] = True
            logged = self._add_event(
                conn, edition_id, row.status, "sending", actor=actor,
                cause=cause or f"published to {created} recipient(s)", detail=detail, now=now)
        self._log_events([logged])
        return created

    def _insert_ledger_rows(self, conn: Connection, edition_id: int, list_id: int,
                            domain: str, now: datetime) -> int:
        message_id = ("<e" + sa.literal(str(edition_id)) + ".s"
                      + sa.cast(memberships.c.subscriber_id, sa.String) + "."
                      + self._random_token() + "@" + sa.literal(domain) + ">")
        eligible = (
            sa.select(
                sa.literal(edition_id), memberships.c.subscriber_id, sa.literal("queued"),
                message_id, sa.literal(0), sa.literal(now, deliveries.c.created_at.type),
                sa.literal(now, deliveries.c.next_attempt_at.type))
            .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
            .outerjoin(suppressions, suppressions.c.email_key == subscribers.c.email_key)
            .where(memberships.c.list_id == list_id, memberships.c.status == ACTIVE,
                   suppressions.c.id.is_(None))
            .order_by(memberships.c.subscriber_id))
        return int(conn.execute(deliveries.insert().from_select(
            ["edition_id", "subscriber_id", "status", "message_id", "attempts",
             "created_at", "next_attempt_at"], eligible),
            execution_options={"preserve_rowcount": True}).rowcount)

    @guarded
    def settle_editions(self, list_name: str | None = None, *, actor: str,
                        now: datetime | None = None) -> list[int]:
        """Move every "sending" edition (of ``list_name``, or of every list) whose ledger
        rows have all ended to "sent", with an event carrying the counts; returns their ids.
        Cheap when there is nothing to do: delivery paths call it after each run."""
        now = _utc(now)
        open_rows = (sa.select(sa.literal(1)).where(
            deliveries.c.edition_id == editions.c.id,
            deliveries.c.status.in_(sorted(NON_TERMINAL))).exists())
        query = sa.select(editions.c.id).where(editions.c.status == "sending", ~open_rows)
        if list_name is not None:
            query = query.join(lists, lists.c.id == editions.c.list_id).where(
                lists.c.name == list_name)
        logged: list[_Logged] = []
        with self.write() as conn:
            for edition_id in conn.execute(query).scalars().all():
                moved = conn.execute(editions.update().where(
                    editions.c.id == edition_id, editions.c.status == "sending",
                ).values(status="sent")).rowcount
                if not moved:
                    continue
                counts = {s: int(n) for s, n in conn.execute(
                    sa.select(deliveries.c.status, sa.func.count())
                    .where(deliveries.c.edition_id == edition_id)
                    .group_by(deliveries.c.status))}
                last = conn.execute(sa.select(sa.func.max(deliveries.c.finished_at)).where(
                    deliveries.c.edition_id == edition_id)).scalar()
                detail: dict[str, Any] = {k: counts.get(k, 0) for k in
                                          ("sent", "failed", "expired", "skipped")}
                if last is not None:
                    detail["finished_at"] = _utc(last).isoformat()
                cause = ", ".join(f"{detail[k]} {k}" for k in
                                  ("sent", "failed", "expired", "skipped"))
                logged.append(self._add_event(
                    conn, edition_id, "sending", "sent", actor=actor,
                    cause=f"every ledger row ended: {cause}", detail=detail, now=now))
        self._log_events(logged)
        return [e.edition_id for e in logged]

    @guarded
    def delivery_counts(self, edition_ids: Collection[int]) -> dict[int, dict[str, int]]:
        """Ledger rows per status for each edition id (missing ids: no rows)."""
        if not edition_ids:
            return {}
        query = (sa.select(deliveries.c.edition_id, deliveries.c.status, sa.func.count())
                 .where(deliveries.c.edition_id.in_(sorted(edition_ids)))
                 .group_by(deliveries.c.edition_id, deliveries.c.status))
        out: dict[int, dict[str, int]] = {}
        with self.read() as conn:
            for edition_id, status, n in conn.execute(query):
                out.setdefault(int(edition_id), {})[status] = int(n)
        return out


    @guarded
    def edition_audience(self, edition_id: int) -> dict[tuple[str, ...] | None, int]:
        """How many readers chose each set of sections (a sorted tuple; None: every section):
        the edition's ledger rows once published, else the list's eligible members now."""
        with self.read() as conn:
            ed = conn.execute(sa.select(editions.c.list_id, editions.c.published_at)
                              .where(editions.c.id == edition_id)).first()
            if ed is None:
                raise StoreError(f"The store has no edition {edition_id}; check the edition id.")
            query = sa.select(memberships.c.sections).where(memberships.c.list_id == ed.list_id)
            if ed.published_at is not None:
                query = query.join(deliveries, sa.and_(
                    deliveries.c.subscriber_id == memberships.c.subscriber_id,
                    deliveries.c.edition_id == edition_id))
            else:
                query = (query.join(subscribers,
                                    subscribers.c.id == memberships.c.subscriber_id)
                         .where(memberships.c.status == ACTIVE, ~sa.select(suppressions.c.id)
                                .where(suppressions.c.email_key == subscribers.c.email_key)
                                .exists()))
            out: dict[tuple[str, ...] | None, int] = {}
            for (sections,) in conn.execute(query):
                key = tuple(sorted(sections)) if sections is not None else None
                out[key] = out.get(key, 0) + 1
        return out


def _publish_refusal(edition_id: int, status: str) -> EditionStateError:
    if status == "held":
        return EditionStateError(f"Edition {edition_id} is held; approve it (`editions approve "
                                 f"{edition_id}`) or send it anyway with --force.")
    if status == "missed":
        return EditionStateError(f"Edition {edition_id} missed its send window; send it anyway "
                                 "with --force, or draft another.")
    return EditionStateError(f"Edition {edition_id} was cancelled and is never sent; make "
                             "another with `draft` (or `send --force` builds a new one).")
