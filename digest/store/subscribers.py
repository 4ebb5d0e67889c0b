"""Subscribers and their memberships: add, look up, confirm, unsubscribe, suppress, stream.

An address that unsubscribed, bounced or complained is never made active again by an import
or an ``add``; only the subscriber's own confirmed opt-in does that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import SubscriberNotFoundError

from .editions import list_id
from .engine import Database, guarded
from .ledger import suppress_address
from .schema import (
    ACTIVE,
    INACTIVE,
    MEMBERSHIP_STATUSES,
    lists,
    memberships,
    subscribers,
    suppressions,
)
from .validation import InvalidSubscriberError, clean_name, clean_sections, normalise_address

__all__ = [
    "InvalidSubscriberError",
    "Membership",
    "SubscribersMixin",
    "clean_name",
    "clean_sections",
    "normalise_address",
]

@dataclass(frozen=True, slots=True)
class Membership:
    """One subscriber on one list: status, section preferences (None = all) and who they are."""

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


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


_MEMBER_COLUMNS = (
    subscribers.c.id.label("subscriber_id"), lists.c.name.label("list_name"),
    subscribers.c.email, subscribers.c.name, memberships.c.status, memberships.c.sections,
    subscribers.c.attributes, memberships.c.source, memberships.c.created_at,
    memberships.c.confirmed_at, memberships.c.changed_at,
)


def _member_query() -> sa.Select[Any]:
    return (sa.select(*_MEMBER_COLUMNS)
            .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
            .join(lists, lists.c.id == memberships.c.list_id))


def membership_from_row(row: Any) -> Membership:
    """A :class:`Membership` from a row of the member query."""
    return Membership(
        subscriber_id=row.subscriber_id, list_name=row.list_name, email=row.email,
        name=row.name, status=row.status,
        sections=frozenset(row.sections) if row.sections is not None else None,
        attributes=dict(row.attributes or {}), source=row.source, created_at=row.created_at,
        confirmed_at=row.confirmed_at, changed_at=row.changed_at)


def suppressed_status(conn: Connection, email_key: str) -> str | None:
    """"complained" or "bounced" when the address is suppressed, else None."""
    reason = conn.execute(sa.select(suppressions.c.reason)
                          .where(suppressions.c.email_key == email_key)).scalar()
    if reason is None:
        return None
    return "complained" if reason == "complained" else "bounced"


class SubscribersMixin(Database):
    """Store methods for one subscriber at a time and for streaming a list's members."""

    def _membership(self, conn: Connection, where: Any) -> Membership | None:
        row = conn.execute(_member_query().where(where)).first()
        return membership_from_row(row) if row is not None else None

    def _by_id(self, conn: Connection, subscriber_id: int, list_name: str) -> Membership:
        found = self._membership(conn, sa.and_(subscribers.c.id == subscriber_id,
                                               lists.c.name == list_name))
        if found is None:
            raise SubscriberNotFoundError(f"Subscriber {subscriber_id} is not on the list "
                                          f"{list_name!r}.")
        return found

    def _member_row(self, conn: Any, list_name: str, address: str, key: str,
                    name: str | None, attributes: dict[str, str] | None,
                    now: datetime) -> tuple[int, int, Any]:
        """(list id, subscriber id, the membership's id and status or None), creating the
        list and the subscriber as needed."""
        lid = list_id(conn, list_name, create=True)
        sid = self._upsert_subscriber(conn, address, key, name, attributes, now)
        current = conn.execute(sa.select(memberships.c.id, memberships.c.status).where(
            memberships.c.list_id == lid, memberships.c.subscriber_id == sid)).first()
        return lid, sid, current

    @guarded
    def add_subscriber(self, list_name: str, email: str, *, name: str | None = None,
                       sections: Iterable[str] | None = None, status: str = ACTIVE,
                       attributes: dict[str, str] | None = None, source: str = "cli",
                       allow_smtputf8: bool = False, now: datetime | None = None) -> int:
        """Add ``email`` to the list (or update name, sections and attributes given) and
        return the subscriber id; an inactive or suppressed address stays inactive."""
        if status not in MEMBERSHIP_STATUSES:
            raise InvalidSubscriberError(f"The status {status!r} is not one of "
                                         f"{', '.join(MEMBERSHIP_STATUSES)}.")
        address, key = normalise_address(email, allow_smtputf8=allow_smtputf8)
        name = clean_name(name)
        chosen, _ = clean_sections(sections)
        now = _utc(now)
        with self.write() as conn:
            lid, sid, current = self._member_row(conn, list_name, address, key, name,
                                                 attributes, now)
            if current is None:
                status = suppressed_status(conn, key) or status
                conn.execute(memberships.insert().values(
                    list_id=lid, subscriber_id=sid, status=status, sections=chosen,
                    source=source, created_at=now, changed_at=now,
                    confirmed_at=now if status == ACTIVE else None))
                return sid
            values: dict[str, Any] = {}
            if sections is not None:
                values["sections"] = chosen
            if current.status not in INACTIVE and status != current.status and (
                    status in INACTIVE or status == ACTIVE):
                values["status"] = status
                if status == ACTIVE:
                    values["confirmed_at"] = now
            if values:
                conn.execute(memberships.update().where(memberships.c.id == current.id)
                             .values(changed_at=now, **values))
            return sid

    @staticmethod
    def _upsert_subscriber(conn: Connection, address: str, key: str, name: str | None,
                           attributes: dict[str, str] | None, now: datetime) -> int:
        row = conn.execute(sa.select(subscribers.c.id, subscribers.c.name,
                                     subscribers.c.attributes)
                           .where(subscribers.c.email_key == key)).first()
        if row is None:
            return int(conn.execute(subscribers.insert().values(
                email=address, email_key=key, name=name, attributes=dict(attributes or {}),
                created_at=now, updated_at=now)).inserted_primary_key[0])
        values: dict[str, Any] = {}
        if name is not None and name != row.name:
            values["name"] = name
        if attributes:
            merged = {**(row.attributes or {}), **attributes}
            if merged != row.attributes:
                values["attributes"] = merged
        if values:
            conn.execute(subscribers.update().where(subscribers.c.id == row.id)
                         .values(updated_at=now, **values))
        return int(row.id)

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

    def _set(self, conn: Connection, member: Membership, now: datetime, **values: Any) -> None:
        lid = list_id(conn, member.list_name)
        conn.execute(memberships.update().where(
            memberships.c.list_id == lid, memberships.c.subscriber_id == member.subscriber_id,
        ).values(changed_at=now, **values))

    @guarded
    def set_status(self, list_name: str, email: str, status: str, *,
                   now: datetime | None = None) -> Membership:
        """Set a membership's status and commit at once; "bounced" and "complained" also
        suppress the address for every list.

        :raises SubscriberNotFoundError: when the address is not on the list.
        """
        if status not in MEMBERSHIP_STATUSES:
            raise InvalidSubscriberError(f"The status {status!r} is not one of "
                                         f"{', '.join(MEMBERSHIP_STATUSES)}.")
        now = _utc(now)
        _, key = normalise_address(email, allow_smtputf8=True)
        with self.write() as conn:
            member = self._membership(conn, sa.and_(subscribers.c.email_key == key,
                                                    lists.c.name == list_name))
            if member is None:
                raise SubscriberNotFoundError(f"The address is not on the list {list_name!r}; "
                                              "check the spelling or the --list option.")
            if status in ("bounced", "complained"):
                self._suppress(conn, key, status, None, now)
            if member.status != status:
                self._set(conn, member, now, status=status,
                          **({"confirmed_at": now} if status == ACTIVE else {}))
            return self._by_id(conn, member.subscriber_id, list_name)

    @staticmethod
    def _suppress(conn: Connection, key: str, status: str, detail: str | None,
                  now: datetime) -> None:
        suppress_address(conn, key, status, detail, now)
        sid = conn.execute(sa.select(subscribers.c.id)
                           .where(subscribers.c.email_key == key)).scalar()
        if sid is not None:
            conn.execute(memberships.update().where(
                memberships.c.subscriber_id == sid,
                memberships.c.status.in_(("active", "pending")),
            ).values(status=status, changed_at=now))

    @guarded
    def suppress(self, email: str, reason: str, *, detail: str | None = None,
                 now: datetime | None = None) -> None:
        """Suppress ``email`` on every list (``reason`` "bounced" or "complained")."""
        if reason not in ("bounced", "complained"):
            raise InvalidSubscriberError("A suppression reason is \"bounced\" or \"complained\".")
        _, key = normalise_address(email, allow_smtputf8=True)
        with self.write() as conn:
            self._suppress(conn, key, reason, detail, _utc(now))

    @guarded
    def is_suppressed(self, email: str) -> bool:
        """True when ``email`` is on the suppression list."""
        _, key = normalise_address(email, allow_smtputf8=True)
        with self.read() as conn:
            return suppressed_status(conn, key) is not None

    @guarded
    def request_subscription(self, list_name: str, email: str, *, name: str | None = None,
                             sections: Iterable[str] | None = None, source: str = "web",
                             allow_smtputf8: bool = False,
                             now: datetime | None = None) -> Membership:
        """Record a double opt-in request: the membership is "pending" until confirmed
        (an active one is left as it is)."""
        address, key = normalise_address(email, allow_smtputf8=allow_smtputf8)
        name = clean_name(name)
        chosen, _ = clean_sections(sections)
        now = _utc(now)
        with self.write() as conn:
            lid, sid, current = self._member_row(conn, list_name, address, key, name, None, now)
            if current is None:
                conn.execute(memberships.insert().values(
                    list_id=lid, subscriber_id=sid, status="pending", sections=chosen,
                    source=source, created_at=now, changed_at=now))
            elif current.status != ACTIVE:
                conn.execute(memberships.update().where(memberships.c.id == current.id)
                             .values(status="pending", sections=chosen, changed_at=now))
            return self._by_id(conn, sid, list_name)

    @guarded
    def confirm_subscription(self, subscriber_id: int, list_name: str, *,
                             now: datetime | None = None) -> Membership:
        """Make a "pending" membership active (the subscriber followed the signed link) and
        lift a suppression of the address; any other status is left as it is."""
        now = _utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if member.status == "pending":
                key = member.email.casefold()
                conn.execute(suppressions.delete().where(suppressions.c.email_key == key))
                self._set(conn, member, now, status=ACTIVE, confirmed_at=now)
            return self._by_id(conn, subscriber_id, list_name)

    @guarded
    def unsubscribe(self, subscriber_id: int, list_name: str, *,
                    now: datetime | None = None) -> bool:
        """Unsubscribe a member from one list (committed at once); False if already inactive."""
        now = _utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if member.status in INACTIVE:
                return False
            self._set(conn, member, now, status="unsubscribed")
            return True

    @guarded
    def update_sections(self, subscriber_id: int, list_name: str,
                        sections: Iterable[str] | None, *, known: Iterable[str] | None = None,
                        now: datetime | None = None) -> Membership:
        """Replace a member's section preferences (None or empty: every section).

        :raises InvalidSubscriberError: when a name is not in ``known``.
        """
        chosen, unknown = clean_sections(sections, known)
        if unknown:
            raise InvalidSubscriberError(f"Unknown section {unknown[0]!r}; choose from the "
                                         "list's sections.")
        now = _utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            self._set(conn, member, now, sections=chosen)
            return self._by_id(conn, subscriber_id, list_name)

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
            query = (_member_query()
                     .where(lists.c.name == list_name, memberships.c.subscriber_id > after)
                     .order_by(memberships.c.subscriber_id).limit(batch))
            if status is not None:
                query = query.where(memberships.c.status == status)
            if eligible:
                query = query.where(~sa.select(suppressions.c.id).where(
                    suppressions.c.email_key == subscribers.c.email_key).exists())
            return conn.execute(query).all()
