"""Subscribers and their memberships: add, look up, request, confirm, unsubscribe, suppress.

Who owns a membership (the rule every method here and in :mod:`.importer` enforces, so no
caller can break it):

* **The reader** owns their consent and their sections. Only the reader's own confirmed
  actions change them: the confirmation POST of a sign-up (the only way a reader becomes
  active), unsubscribing (one-click, the page's button, an unsubscribe email), and sections
  saved on the preferences page.
* **The system's evidence** about the address (a hard bounce, repeated soft bounces, an
  abuse complaint, a relay refusing the address) moves a status towards not mailing.
* **An editor's import** (and ``subscribers add``) may add new readers, fill or update
  names and attributes, set sections only where the reader never chose them, and move a
  status only towards not mailing (active or pending to unsubscribed, bounced or
  complained), once: a status the import already set is not set again after the reader
  came back. It never makes an existing member active.
* **A sign-up request** changes nothing about an existing member (status, timestamps,
  name, sections) until its confirmation POST; for a suppressed or complained address it
  records nothing and no confirmation email may be sent (``outcome == "suppressed"``).
* **An editor** makes a member active directly only with ``subscribers add --confirmed``
  (``confirmed=True``), recorded as the editor's act; it also lifts a suppression.

Every change (and every sign-up request) writes one event in :mod:`.consent` in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import SubscriberNotFoundError

from .consent import (
    REQUEST_CAUSES,
    lift_suppression,
    lower_everywhere,
    record_event,
)
from .editions import list_id
from .engine import guarded
from .ledger import suppress_address
from .members import Membership, MembersMixin, membership_from_row, suppressed_status
from .schema import (
    ACTIVE,
    INACTIVE,
    MEMBERSHIP_STATUSES,
    lists,
    membership_events,
    memberships,
    subscribers,
)
from .validation import InvalidSubscriberError, clean_name, clean_sections, normalise_address

__all__ = [
    "InvalidSubscriberError",
    "Membership",
    "SubscribersMixin",
    "SubscriptionRequest",
    "clean_name",
    "clean_sections",
    "membership_from_row",
    "normalise_address",
]


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """What a sign-up request did. ``outcome`` is "requested" (a confirmation link may name
    ``request_id``), "already-active" (nothing to confirm) or "suppressed" (the address is
    suppressed or complained: nothing was recorded and no confirmation email may go to it).
    ``member`` is the membership afterwards (None for a suppressed address not on the list).
    """

    outcome: str
    member: Membership | None
    request_id: int | None = None


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _status_checked(status: str) -> str:
    if status not in MEMBERSHIP_STATUSES:
        raise InvalidSubscriberError(f"The status {status!r} is not one of "
                                     f"{', '.join(MEMBERSHIP_STATUSES)}.")
    return status


def _sections(member: Membership) -> list[str] | None:
    return sorted(member.sections) if member.sections is not None else None


class SubscribersMixin(MembersMixin):
    """Store methods that change one subscriber at a time, under the ownership rule."""

    def _change(self, conn: Connection, member: Membership, now: datetime, *, actor: str,
                cause: str, detail: dict[str, Any] | None = None, **values: Any) -> int:
        """Update one membership and record the event; returns the event id."""
        lid = list_id(conn, member.list_name)
        conn.execute(memberships.update().where(
            memberships.c.list_id == lid, memberships.c.subscriber_id == member.subscriber_id,
        ).values(changed_at=now, **values))
        return record_event(
            conn, list_id=lid, subscriber_id=member.subscriber_id, old_status=member.status,
            new_status=values.get("status", member.status), old_sections=_sections(member),
            new_sections=values["sections"] if "sections" in values else _sections(member),
            actor=actor, cause=cause, detail=detail, now=now)

    @guarded
    def add_subscriber(self, list_name: str, email: str, *, name: str | None = None,
                       sections: Iterable[str] | None = None, status: str = ACTIVE,
                       attributes: dict[str, str] | None = None, source: str = "cli",
                       confirmed: bool = False, detail: dict[str, Any] | None = None,
                       allow_smtputf8: bool = False, now: datetime | None = None) -> int:
        """An editor adds ``email`` to the list (or updates name, attributes and sections)
        and gets the subscriber id back.

        A new member gets ``status`` (or the suppression's status). For an existing one
        only a move towards not mailing applies, and sections only where the reader never
        chose them; ``confirmed`` (``add --confirmed``) makes the member active whatever
        their status and lifts a suppression, recorded as the editor's act.
        """
        _status_checked(status)
        address, key = normalise_address(email, allow_smtputf8=allow_smtputf8)
        name = clean_name(name)
        chosen, _ = clean_sections(sections)
        now = _utc(now)
        cause = "editor-confirmed" if confirmed else "editor-add"
        with self.write() as conn:
            lid = list_id(conn, list_name, create=True)
            sid = self._upsert_subscriber(conn, address, key, name, attributes, now)
            member = self._membership(conn, sa.and_(subscribers.c.id == sid,
                                                    lists.c.id == lid))
            lifted = lift_suppression(conn, key) if confirmed else None
            extra = {**(detail or {}), **({"lifted_suppression": lifted} if lifted else {})}
            if member is None:
                new = ACTIVE if confirmed else (suppressed_status(conn, key) or status)
                conn.execute(memberships.insert().values(
                    list_id=lid, subscriber_id=sid, status=new, sections=chosen,
                    source=source, created_at=now, changed_at=now,
                    confirmed_at=now if new == ACTIVE else None))
                record_event(conn, list_id=lid, subscriber_id=sid, old_status=None,
                             new_status=new, old_sections=None, new_sections=chosen,
                             actor="editor", cause=cause, detail=extra, now=now)
                return sid
            values: dict[str, Any] = {}
            if sections is not None and member.sections_chosen_at is None \
                    and chosen != _sections(member):
                values["sections"] = chosen
            if confirmed and member.status != ACTIVE:
                values.update(status=ACTIVE, confirmed_at=now)
            elif status in INACTIVE and member.status in (ACTIVE, "pending"):
                values["status"] = status
            if values or lifted:
                self._change(conn, member, now, actor="editor", cause=cause, detail=extra,
                             **values)
            return sid

    @staticmethod
    def _upsert_subscriber(conn: Connection, address: str, key: str, name: str | None,
                           attributes: dict[str, str] | None, now: datetime) -> int:
        row = conn.execute(sa.select(subscribers.c.id, subscribers.c.name,
                                     subscribers.c.attributes)
                           .where(subscribers.c.email_key == key)).first()
        if row is None:
            new = conn.execute(subscribers.insert().values(
                email=address, email_key=key, name=name, attributes=dict(attributes or {}),
                created_at=now, updated_at=now)).inserted_primary_key
            assert new is not None
            return int(new[0])
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
    def set_status(self, list_name: str, email: str, status: str, *, cause: str = "editor-remove",
                   detail: dict[str, Any] | None = None,
                   now: datetime | None = None) -> Membership:
        """An editor moves a membership towards not mailing ("unsubscribed", "bounced" or
        "complained"; the last two also suppress the address for every list).

        :raises SubscriberNotFoundError: when the address is not on the list.
        :raises InvalidSubscriberError: for "active" or "pending": only the reader's
            confirmation or ``subscribers add --confirmed`` makes anyone active.
        """
        if _status_checked(status) not in INACTIVE:
            raise InvalidSubscriberError(
                f"An editor cannot set {status!r} directly: only the reader's confirmation "
                "or `subscribers add --confirmed` makes a member active.")
        now = _utc(now)
        _, key = normalise_address(email, allow_smtputf8=True)
        with self.write() as conn:
            member = self._membership(conn, sa.and_(subscribers.c.email_key == key,
                                                    lists.c.name == list_name))
            if member is None:
                raise SubscriberNotFoundError(f"The address is not on the list {list_name!r}; "
                                              "check the spelling or the --list option.")
            if member.status != status:
                self._change(conn, member, now, actor="editor", cause=cause, detail=detail,
                             status=status)
            if status in ("bounced", "complained"):
                suppress_address(conn, key, status, None, now)
                lower_everywhere(conn, member.subscriber_id, status, actor="editor",
                                 cause=cause, detail=detail, now=now)
            return self._by_id(conn, member.subscriber_id, list_name)

    @guarded
    def suppress(self, email: str, reason: str, *, detail: str | None = None,
                 cause: str | None = None, now: datetime | None = None) -> None:
        """Suppress ``email`` on every list (``reason`` "bounced" or "complained"); its
        active and pending memberships take that status, each with an event."""
        if reason not in ("bounced", "complained"):
            raise InvalidSubscriberError("A suppression reason is \"bounced\" or \"complained\".")
        _, key = normalise_address(email, allow_smtputf8=True)
        now = _utc(now)
        with self.write() as conn:
            suppress_address(conn, key, reason, detail, now)
            sid = conn.execute(sa.select(subscribers.c.id)
                               .where(subscribers.c.email_key == key)).scalar()
            if sid is not None:
                lower_everywhere(conn, sid, reason, actor="system", cause=cause or "suppressed",
                                 detail={"reason": detail} if detail else None, now=now)

    @guarded
    def request_subscription(self, list_name: str, email: str, *, name: str | None = None,
                             sections: Iterable[str] | None = None, cause: str = "web-signup",
                             source: str = "web", allow_smtputf8: bool = False,
                             now: datetime | None = None) -> SubscriptionRequest:
        """Record a double opt-in request (an event; a new address becomes "pending").

        Nothing about an existing member changes: the requested sections wait in the
        event until :meth:`confirm_subscription`. A name is kept only for a new subscriber.
        """
        address, key = normalise_address(email, allow_smtputf8=allow_smtputf8)
        name = clean_name(name)
        chosen, _ = clean_sections(sections)
        now = _utc(now)
        actor = "editor" if cause == "editor-request" else "reader"
        with self.write() as conn:
            lid = list_id(conn, list_name, create=True)
            member = self._membership(conn, sa.and_(subscribers.c.email_key == key,
                                                    lists.c.id == lid))
            if suppressed_status(conn, key) or (member and member.status == "complained"):
                return SubscriptionRequest("suppressed", member)
            if member is not None and member.status == ACTIVE:
                return SubscriptionRequest("already-active", member)
            detail: dict[str, Any] = {"sections": chosen} if sections is not None else {}
            if member is None:
                sid = conn.execute(sa.select(subscribers.c.id)
                                   .where(subscribers.c.email_key == key)).scalar()
                if sid is None:
                    sid = self._upsert_subscriber(conn, address, key, name, None, now)
                conn.execute(memberships.insert().values(
                    list_id=lid, subscriber_id=sid, status="pending", sections=chosen,
                    source=source, created_at=now, changed_at=now))
                old, current = None, None
            else:
                sid, old, current = member.subscriber_id, member.status, _sections(member)
            request_id = record_event(
                conn, list_id=lid, subscriber_id=sid, old_status=old,
                new_status=old or "pending", old_sections=current,
                new_sections=chosen if old is None else current, actor=actor, cause=cause,
                detail=detail, now=now)
            return SubscriptionRequest("requested", self._by_id(conn, sid, list_name),
                                       request_id)

    @guarded
    def confirm_subscription(self, subscriber_id: int, list_name: str, *,
                             request_id: int | None = None,
                             now: datetime | None = None) -> Membership:
        """The reader's confirmation POST: make the membership active, apply the sections
        the request carried, and lift a suppression of the address.

        It applies only when request ``request_id`` is this member's and nothing moved the
        member towards not mailing after it (unsubscribing, a bounce, a complaint). A link
        without a request (made before the consent record) confirms a "pending" member
        only. Anything else leaves the membership as it is (look at ``status``).
        """
        now = _utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if member.status == ACTIVE or not self._confirmable(conn, member, request_id):
                return member
            values: dict[str, Any] = {"status": ACTIVE, "confirmed_at": now}
            detail: dict[str, Any] = {"request": request_id} if request_id else {}
            if request_id is not None:
                asked = conn.execute(sa.select(membership_events.c.detail).where(
                    membership_events.c.id == request_id)).scalar() or {}
                if "sections" in asked:
                    values.update(sections=asked["sections"], sections_chosen_at=now)
            lifted = lift_suppression(conn, member.email.casefold())
            if lifted:
                detail["lifted_suppression"] = lifted
            self._change(conn, member, now, actor="reader", cause="confirm", detail=detail,
                         **values)
            return self._by_id(conn, subscriber_id, list_name)

    @guarded
    def can_confirm(self, subscriber_id: int, list_name: str,
                    request_id: int | None) -> bool:
        """True when :meth:`confirm_subscription` with ``request_id`` would make the member
        active now (the confirmation page shows its button then).

        :raises SubscriberNotFoundError: when the subscriber is not on the list.
        """
        with self.read() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            return member.status != ACTIVE and self._confirmable(conn, member, request_id)

    @staticmethod
    def _confirmable(conn: Connection, member: Membership, request_id: int | None) -> bool:
        ev = membership_events.c
        if request_id is None:
            return member.status == "pending"
        lid = list_id(conn, member.list_name)
        request = conn.execute(sa.select(ev.cause).where(
            ev.id == request_id, ev.list_id == lid,
            ev.subscriber_id == member.subscriber_id)).scalar()
        if request not in REQUEST_CAUSES:
            return False
        left_since = conn.execute(sa.select(ev.id).where(
            ev.list_id == lid, ev.subscriber_id == member.subscriber_id, ev.id > request_id,
            ev.new_status.in_(INACTIVE),
            sa.or_(ev.old_status.is_(None), ev.old_status != ev.new_status)).limit(1)).first()
        return left_since is None

    @guarded
    def unsubscribe(self, subscriber_id: int, list_name: str, *,
                    cause: str = "unsubscribe-page", detail: dict[str, Any] | None = None,
                    now: datetime | None = None) -> bool:
        """The reader unsubscribes from one list (committed at once); False if already
        inactive. ``cause``: "one-click-unsubscribe", "unsubscribe-page" or
        "mailto-unsubscribe" (``detail``: the report's Message-ID)."""
        now = _utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if member.status in INACTIVE:
                return False
            self._change(conn, member, now, actor="reader", cause=cause, detail=detail,
                         status="unsubscribed")
            return True

    @guarded
    def update_sections(self, subscriber_id: int, list_name: str,
                        sections: Iterable[str] | None, *, known: Iterable[str] | None = None,
                        now: datetime | None = None) -> Membership:
        """The reader's sections from the preferences page (None or empty: every section);
        from now on no import changes them.

        :raises InvalidSubscriberError: when a name is not in ``known``.
        """
        chosen, unknown = clean_sections(sections, known)
        if unknown:
            raise InvalidSubscriberError(f"Unknown section {unknown[0]!r}; choose from the "
                                         "list's sections.")
        now = _utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if chosen != _sections(member) or member.sections_chosen_at is None:
                self._change(conn, member, now, actor="reader", cause="preferences",
                             sections=chosen, sections_chosen_at=now)
            return self._by_id(conn, subscriber_id, list_name)
