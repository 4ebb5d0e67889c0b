"""The consent record: one append-only ``membership_events`` row per change of a membership.

Every change of a membership's status or sections, and every sign-up request, is written in
the same transaction as the change itself, with who acted (``actor``: reader, editor,
system, import) and why (``cause``, one of :data:`CAUSES`), so a newsroom can show when and
how each reader consented (GDPR Art. 7(1)) and anyone can answer "why is this reader in
this state?" (``subscribers history``). Rows are never updated or deleted; erasing a
subscriber deletes their rows with them. The rule deciding *which* changes are allowed is in
:mod:`digest.store.subscribers`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import SubscriberNotFoundError

from .engine import Database, guarded
from .schema import (
    ACTIVE,
    EVENT_ACTORS,
    STATUS_RANK,
    lists,
    membership_events,
    memberships,
    subscribers,
    suppressions,
)
from .validation import InvalidSubscriberError, normalise_address

__all__ = [
    "CAUSES",
    "REQUEST_CAUSES",
    "SUPPRESSING_CAUSES",
    "ConsentMixin",
    "MembershipEvent",
    "consent_sources",
    "event_row",
    "lift_suppression",
    "lower_everywhere",
    "record_event",
    "record_events",
]

#: Every cause an event may name, and what it means (``subscribers history`` prints codes).
CAUSES: dict[str, str] = {
    "record-start": "the state when the consent record began (detail: how it was added)",
    "import": "an editor's CSV import (detail: file and line)",
    "web-signup": "the sign-up form: a request, which changes nothing until confirmed",
    "resubscribe-request": "the preferences page's subscribe-again button: a request",
    "editor-request": "`subscribers add --confirm`: a request whose link the editor sends",
    "confirm": "the reader's confirmation POST (detail: the request it confirms)",
    "one-click-unsubscribe": "an RFC 8058 one-click POST from the reader's mail provider",
    "unsubscribe-page": "the unsubscribe button on the web page",
    "mailto-unsubscribe": "an unsubscribe email (detail: its Message-ID)",
    "preferences": "sections saved by the reader on the preferences page",
    "bounce": "a hard bounce report (detail: its Message-ID and status)",
    "soft-bounces": "repeated soft bounces (detail: the last report's Message-ID)",
    "complaint": "an abuse complaint (detail: the report's Message-ID)",
    "forwarded-complaint": "a complaint about the reader's copy by someone else it was "
                           "forwarded to (detail: the report's Message-ID and who): noted, "
                           "never suppressing",
    "delivery-refused": "the relay refused the address during a send (detail: the reply)",
    "suppressed": "the address was put on the suppression list (detail: why; for an "
                  "import, the file and line that said so)",
    "editor-add": "`subscribers add`",
    "editor-confirmed": "`subscribers add --confirmed`: an editor vouches for the consent",
    "editor-remove": "`subscribers remove`",
}
#: Causes of request events: a confirmation link names one of these events.
REQUEST_CAUSES = frozenset({"web-signup", "resubscribe-request", "editor-request"})
#: Causes of events that keep a reader from mail even when the status stays as it was (an
#: unsubscribed reader's address bouncing): a confirmation requested before one of them
#: never applies.
SUPPRESSING_CAUSES = frozenset({"bounce", "soft-bounces", "complaint", "delivery-refused",
                                "suppressed", "editor-remove"})


@dataclass(frozen=True, slots=True)
class MembershipEvent:
    """One row of the consent record. Sections are sorted names, None for every section;
    ``old_status`` is None when the event created the membership."""

    id: int
    created_at: datetime
    list_name: str
    old_status: str | None
    new_status: str
    old_sections: tuple[str, ...] | None
    new_sections: tuple[str, ...] | None
    actor: str
    cause: str
    detail: dict[str, Any]

    def describe(self) -> str:
        """One line: time, list, status change, sections change, actor/cause, detail."""
        when = self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        status = (f"{self.old_status or '(new)'} -> {self.new_status}"
                  if self.old_status != self.new_status else f"{self.new_status} (unchanged)")
        parts = [when, self.list_name, status]
        if self.old_status is None or self.old_sections != self.new_sections:
            parts.append(f"sections: {_sections_text(self.new_sections)}")
        parts.append(f"by {self.actor}: {self.cause}")
        if self.detail:
            parts.append(", ".join(f"{k}={_detail_text(v)}" for k, v in self.detail.items()))
        return "  ".join(parts)


def _sections_text(sections: Iterable[str] | None) -> str:
    return "all" if sections is None else ";".join(sections)


def _detail_text(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(str(v) for v in value) or "(none)"
    return "all" if value is None else str(value)


def event_row(*, list_id: int, subscriber_id: int, old_status: str | None, new_status: str,
              old_sections: Sequence[str] | None, new_sections: Sequence[str] | None,
              actor: str, cause: str, now: datetime,
              detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of one event row (for :func:`record_events`).

    :raises ValueError: for an actor or cause the record does not know (a programming error).
    """
    if actor not in EVENT_ACTORS or cause not in CAUSES:
        raise ValueError(f"unknown consent event actor {actor!r} or cause {cause!r}")
    return {"created_at": now, "list_id": list_id, "subscriber_id": subscriber_id,
            "old_status": old_status, "new_status": new_status,
            "old_sections": list(old_sections) if old_sections is not None else None,
            "new_sections": list(new_sections) if new_sections is not None else None,
            "actor": actor, "cause": cause, "detail": detail or None}


_EVENT_COLUMNS = ("created_at", "list_id", "subscriber_id", "old_status", "new_status",
                  "old_sections", "new_sections", "actor", "cause", "detail")
_JSON_COLUMNS = frozenset({"old_sections", "new_sections", "detail"})


@functools.cache
def _bulk_insert(dialect: str) -> str:
    """The INSERT for :func:`record_events` in the driver's own parameter style."""
    if dialect == "sqlite":
        marks = ["?"] * len(_EVENT_COLUMNS)
    else:  # psycopg: JSON travels as text and is cast by the server
        marks = ["%s::json" if c in _JSON_COLUMNS else "%s" for c in _EVENT_COLUMNS]
    return (f"INSERT INTO membership_events ({', '.join(_EVENT_COLUMNS)}) "
            f"VALUES ({', '.join(marks)})")


def _stamp(moment: datetime, sqlite: bool) -> Any:
    naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    # SQLAlchemy's SQLite DATETIME text form, so UTCDateTime reads it back alike.
    return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else naive


def record_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows (from :func:`event_row`) with one executemany on the driver: an
    import writes one per changed member, and SQLAlchemy's per-row type processing would
    cost more than the insert itself. The values are the ones the table's types write."""
    if not rows:
        return
    sqlite = conn.dialect.name == "sqlite"
    dumps = json.dumps
    params = [tuple(
        _stamp(row["created_at"], sqlite) if c == "created_at"
        else dumps(row[c], ensure_ascii=False) if c in _JSON_COLUMNS else row[c]
        for c in _EVENT_COLUMNS) for row in rows]
    conn.exec_driver_sql(_bulk_insert(conn.dialect.name), params)


def record_event(conn: Connection, **values: Any) -> int:
    """Insert one event (arguments of :func:`event_row`) and return its id."""
    key = conn.execute(membership_events.insert().values(**event_row(**values))
                       ).inserted_primary_key
    assert key is not None
    return int(key[0])


def lower_everywhere(conn: Connection, subscriber_id: int, status: str, *, actor: str,
                     cause: str, detail: dict[str, Any] | None, now: datetime,
                     except_list: int | None = None) -> int:
    """Apply a suppression (``status`` "bounced" or "complained", or an editor's
    "unsubscribed") to every membership of a subscriber, one event each, and return how
    many changed status.

    A membership moves to ``status`` when that is a move towards not mailing (from active
    or pending, or up :data:`~digest.store.schema.STATUS_RANK`: unsubscribed < bounced <
    complained); every other one keeps its status and still gets an event with the cause,
    so ``subscribers history`` explains every suppression that touched the reader.
    ``except_list`` is a list whose membership the caller has recorded already.
    """
    query = sa.select(memberships.c.id, memberships.c.list_id, memberships.c.status,
                      memberships.c.sections).where(memberships.c.subscriber_id == subscriber_id)
    if except_list is not None:
        query = query.where(memberships.c.list_id != except_list)
    rows = conn.execute(query.order_by(memberships.c.list_id)).all()
    moved = [r.id for r in rows if STATUS_RANK[status] > STATUS_RANK[r.status]]
    if moved:
        conn.execute(memberships.update().where(memberships.c.id.in_(moved))
                     .values(status=status, changed_at=now))
    record_events(conn, [event_row(
        list_id=r.list_id, subscriber_id=subscriber_id, old_status=r.status,
        new_status=status if r.id in moved else r.status, old_sections=r.sections,
        new_sections=r.sections, actor=actor, cause=cause, detail=detail, now=now)
        for r in rows])
    return len(moved)


def lift_suppression(conn: Connection, email_key: str) -> str | None:
    """Remove the address from the suppression list; the reason it was there, or None."""
    reason = conn.execute(sa.select(suppressions.c.reason)
                          .where(suppressions.c.email_key == email_key)).scalar()
    if reason is not None:
        conn.execute(suppressions.delete().where(suppressions.c.email_key == email_key))
    return reason


def consent_sources(conn: Connection, list_id: int,
                    subscriber_ids: Sequence[int]) -> dict[int, str]:
    """For each subscriber, the cause of the event that last made the membership active
    ("confirm", "import", "editor-add", ...); members never active are absent."""
    if not subscriber_ids:
        return {}
    ev = membership_events.c
    latest = (sa.select(sa.func.max(ev.id))
              .where(ev.list_id == list_id, ev.subscriber_id.in_(list(subscriber_ids)),
                     ev.new_status == ACTIVE,
                     sa.or_(ev.old_status.is_(None), ev.old_status != ACTIVE))
              .group_by(ev.subscriber_id))
    found: dict[int, str] = {}
    for row in conn.execute(sa.select(ev.subscriber_id, ev.cause, ev.detail)
                            .where(ev.id.in_(latest))):
        cause = row.cause
        if cause == "record-start":
            cause = f"{(row.detail or {}).get('source', 'unknown')} (before the record)"
        found[int(row.subscriber_id)] = cause
    return found


class ConsentMixin(Database):
    """Store methods for reading the consent record."""

    @guarded
    def membership_history(self, email: str,
                           list_name: str | None = None) -> list[MembershipEvent]:
        """Every event of the address's memberships (of one list, or all), oldest first.

        :raises SubscriberNotFoundError: when the store has no such address, or it is not
            on ``list_name``.
        """
        try:
            _, key = normalise_address(email, allow_smtputf8=True)
        except InvalidSubscriberError:
            raise SubscriberNotFoundError("That is not a valid email address; check the "
                                          "spelling.") from None
        ev = membership_events.c
        query = (sa.select(ev.id, ev.created_at, lists.c.name, ev.old_status, ev.new_status,
                           ev.old_sections, ev.new_sections, ev.actor, ev.cause, ev.detail)
                 .join(lists, lists.c.id == ev.list_id)
                 .join(subscribers, subscribers.c.id == ev.subscriber_id)
                 .where(subscribers.c.email_key == key).order_by(ev.id))
        if list_name is not None:
            query = query.where(lists.c.name == list_name)
        with self.read() as conn:
            rows = conn.execute(query).all()
            if not rows:
                known = conn.execute(sa.select(subscribers.c.id)
                                     .where(subscribers.c.email_key == key)).first()
                where = "" if list_name is None else f" on the list {list_name!r}"
                raise SubscriberNotFoundError(
                    f"The address has no memberships{where}; check the spelling or the "
                    "--list option." if known else
                    "The store has no such address; check the spelling.")
        return [MembershipEvent(
            id=int(r.id), created_at=r.created_at, list_name=r.name, old_status=r.old_status,
            new_status=r.new_status,
            old_sections=tuple(r.old_sections) if r.old_sections is not None else None,
            new_sections=tuple(r.new_sections) if r.new_sections is not None else None,
            actor=r.actor, cause=r.cause, detail=dict(r.detail or {})) for r in rows]
