"""Reading memberships: look one up, count them, stream a list's members in batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import SubscriberNotFoundError
from digest.mailboxes import mailbox

from .engine import Database, guarded
from .schema import ACTIVE, lists, memberships, subscribers, suppressions
from .validation import InvalidSubscriberError, normalise_address

__all__ = ["MembersMixin", "Membership", "member_query", "membership_from_row",
           "suppress_key", "suppressed_status", "suppressed_statuses"]


@dataclass(frozen=True, slots=True)
class Membership:
    """One subscriber on one list: status, section preferences (None = all) and who they are.

    ``sections_chosen_at`` is when the reader last chose the sections themselves (None while
    they are the editor's); ``source`` says how the membership was first added.
    """

    subscriber_id: int
    list_name: str
    email: str
    name: str | None
    status: str
    sections: frozenset[str] | None
    attributes: dict[str, str]
    source: str
    created_at: datetime
    confirmed_at: datetime | None
    changed_at: datetime
    sections_chosen_at: datetime | None = None


_MEMBER_COLUMNS = (
    subscribers.c.id.label("subscriber_id"), lists.c.name.label("list_name"),
    subscribers.c.email, subscribers.c.name, memberships.c.status, memberships.c.sections,
    subscribers.c.attributes, memberships.c.source, memberships.c.created_at,
    memberships.c.confirmed_at, memberships.c.changed_at, memberships.c.sections_chosen_at,
)


def member_query() -> sa.Select[Any]:
    """SELECT of every :class:`Membership` column, joined; add WHERE clauses."""
    return (sa.select(*_MEMBER_COLUMNS)
            .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
            .join(lists, lists.c.id == memberships.c.list_id))


def membership_from_row(row: Any) -> Membership:
    """A :class:`Membership` from a row of :func:`member_query`."""
    return Membership(
        subscriber_id=row.subscriber_id, list_name=row.list_name, email=row.email,
        name=row.name, status=row.status,
        sections=frozenset(row.sections) if row.sections is not None else None,
        attributes=dict(row.attributes or {}), source=row.source, created_at=row.created_at,
        confirmed_at=row.confirmed_at, changed_at=row.changed_at,
        sections_chosen_at=row.sections_chosen_at)


def suppressed_status(conn: Connection, email_key: str) -> str | None:
    """The status a new membership of the address must take, or None when it may join:
    "complained" when the address is suppressed as complained or its mailbox complained
    under another spelling (``victim+x@``, Gmail's dots: :func:`digest.mailboxes.mailbox`),
    "bounced" when the address itself is suppressed for another reason."""
    return suppressed_statuses(conn, [email_key]).get(email_key)


def suppressed_statuses(conn: Connection, email_keys: Sequence[str]) -> dict[str, str]:
    """:func:`suppressed_status` of many addresses at once (those absent may join)."""
    if not email_keys:
        return {}
    boxes = {key: mailbox(key) for key in email_keys}
    rows = conn.execute(sa.select(suppressions.c.email_key, suppressions.c.mailbox,
                                  suppressions.c.reason).where(sa.or_(
        suppressions.c.email_key.in_(list(email_keys)),
        sa.and_(suppressions.c.mailbox.in_(sorted(set(boxes.values()))),
                suppressions.c.reason == "complained")))).all()
    exact = {r.email_key: r.reason for r in rows}
    complained = {r.mailbox for r in rows if r.reason == "complained"}
    found: dict[str, str] = {}
    for key in email_keys:
        if exact.get(key) == "complained" or boxes[key] in complained:
            found[key] = "complained"
        elif key in exact:
            found[key] = "bounced"
    return found


def suppress_key(conn: Connection, email_key: str, reason: str, detail: str | None,
                 now: datetime) -> None:
    """Put the address on the suppression list as ``reason`` ("bounced" or "complained"),
    or raise a "bounced" suppression to "complained" (never the other way)."""
    found = conn.execute(sa.select(suppressions.c.id, suppressions.c.reason)
                         .where(suppressions.c.email_key == email_key)).first()
    note = detail[:500] if detail else None
    if found is None:
        conn.execute(suppressions.insert().values(email_key=email_key, reason=reason,
                                                  detail=note, created_at=now))
    elif reason == "complained" and found.reason != "complained":
        conn.execute(suppressions.update().where(suppressions.c.id == found.id)
                     .values(reason=reason, detail=note, created_at=now))


class MembersMixin(Database):
    """Store methods that read memberships."""

    def _membership(self, conn: Connection, where: Any) -> Membership | None:
        row = conn.execute(member_query().where(where)).first()
        return membership_from_row(row) if row is not None else None

    def _by_id(self, conn: Connection, subscriber_id: int, list_name: str) -> Membership:
        found = self._membership(conn, sa.and_(subscribers.c.id == subscriber_id,
                                               lists.c.name == list_name))
        if found is None:
            raise SubscriberNotFoundError(f"Subscriber {subscriber_id} is not on the list "
                                          f"{list_name!r}.")
        return found

    @guarded
    def get_membership(self, list_name: str, email: str) -> Membership | None:
        """The membership of ``email`` on the list, or None (also for an invalid address)."""
        try:
            _, key = normalise_address(email, allow_smtputf8=True)
        except InvalidSubscriberError:
            return None
        with self.read() as conn:
            return self._membership(conn, sa.and_(subscribers.c.email_key == key,
                                                  lists.c.name == list_name))

    @guarded
    def get_membership_by_id(self, subscriber_id: int, list_name: str) -> Membership:
        """The membership of subscriber ``subscriber_id`` (from a signed link) on the list.

        :raises SubscriberNotFoundError: when there is none.
        """
        with self.read() as conn:
            return self._by_id(conn, subscriber_id, list_name)

    @guarded
    def is_suppressed(self, email: str) -> bool:
        """True when ``email`` is on the suppression list."""
        _, key = normalise_address(email, allow_smtputf8=True)
        with self.read() as conn:
            return suppressed_status(conn, key) is not None

    @guarded
    def count_members(self, list_name: str) -> dict[str, int]:
        """How many members of the list are in each status."""
        query = (sa.select(memberships.c.status, sa.func.count())
                 .join(lists, lists.c.id == memberships.c.list_id)
                 .where(lists.c.name == list_name).group_by(memberships.c.status))
        with self.read() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def iter_members(self, list_name: str, *, status: str | None = None,
                     batch: int = 1000) -> Iterator[Membership]:
        """Every member of the list (optionally of one status) in subscriber order, read in
        batches of ``batch`` short transactions so memory does not grow with the list."""
        return self._stream(list_name, status=status, eligible=False, batch=batch)

    def iter_eligible(self, list_name: str, batch: int = 1000) -> Iterator[Membership]:
        """The members an edition would go to now (active, not suppressed), streamed."""
        return self._stream(list_name, status=ACTIVE, eligible=True, batch=batch)

    def _stream(self, list_name: str, *, status: str | None, eligible: bool,
                batch: int) -> Iterator[Membership]:
        after = 0
        while True:
            rows = self._page(list_name, status, eligible, after, batch)
            for row in rows:
                yield membership_from_row(row)
            if len(rows) < batch:
                return
            after = rows[-1].subscriber_id

    @guarded
    def _page(self, list_name: str, status: str | None, eligible: bool, after: int,
              batch: int) -> list[Any]:
        with self.read() as conn:
            query = (member_query()
                     .where(lists.c.name == list_name, memberships.c.subscriber_id > after)
                     .order_by(memberships.c.subscriber_id).limit(batch))
            if status is not None:
                query = query.where(memberships.c.status == status)
            if eligible:
                query = query.where(~sa.select(suppressions.c.id).where(
                    suppressions.c.email_key == subscribers.c.email_key).exists())
            return list(conn.execute(query).all())
