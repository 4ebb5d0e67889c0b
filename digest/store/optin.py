"""Double opt-in: a sign-up request (an event, nothing else) and its confirmation POST, the
only way a reader makes themselves active. The rule is :mod:`.subscribers`'.

A request keeps what the requester typed (sections, name) in its event; only the
confirmation of that request applies it, so nobody can name or re-section a reader by
typing their address into the form. A request is refused (nothing recorded, no email may
be sent) for a suppressed address, an address whose mailbox complained under any spelling
(:func:`digest.mailboxes.mailbox`), and a member who complained on the list. A confirmation
applies only when nothing kept the reader from mail after its request: no move towards not
mailing and no suppression (:data:`~.consent.SUPPRESSING_CAUSES`), even one that left the
status as it was; it never lifts a suppression.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .changes import (
    change_membership,
    ensure_membership,
    ensure_subscriber,
    sections_of,
    utc,
)
from .consent import REQUEST_CAUSES, SUPPRESSING_CAUSES, record_event
from .editions import list_id
from .engine import guarded
from .members import Membership, MembersMixin, suppressed_status
from .schema import ACTIVE, INACTIVE, lists, membership_events, subscribers
from .validation import clean_name, clean_sections, normalise_address

__all__ = ["OptInMixin", "SubscriptionRequest"]


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


class OptInMixin(MembersMixin):
    """Store methods of the double opt-in: request, check, confirm."""

    @guarded
    def request_subscription(self, list_name: str, email: str, *, name: str | None = None,
                             sections: Iterable[str] | None = None, cause: str = "web-signup",
                             source: str = "web", allow_smtputf8: bool = False,
                             now: datetime | None = None) -> SubscriptionRequest:
        """Record a double opt-in request (an event; a new address becomes "pending", with
        no name and every section). ``name`` and ``sections`` wait in the event until
        :meth:`confirm_subscription` of this request; nothing about an existing member
        changes. Safe to call concurrently for the same new address.
        """
        address, key = normalise_address(email, allow_smtputf8=allow_smtputf8)
        name = clean_name(name)
        chosen, _ = clean_sections(sections)
        now = utc(now)
        actor = "editor" if cause == "editor-request" else "reader"
        detail: dict[str, Any] = {"sections": chosen} if sections is not None else {}
        if name is not None:
            detail["name"] = name
        with self.write() as conn:
            lid = list_id(conn, list_name, create=True)
            where = sa.and_(subscribers.c.email_key == key, lists.c.id == lid)
            member = self._membership(conn, where)
            if suppressed_status(conn, key) is not None:
                return SubscriptionRequest("suppressed", member)
            created = False
            if member is None:
                sid, _ = ensure_subscriber(conn, address, key, now)
                # Sections too wait for the confirmation: a stranger's choice is no one's.
                created = ensure_membership(conn, lid, sid, status="pending", sections=None,
                                            source=source, created_at=now, changed_at=now)
                member = self._membership(conn, where)
                assert member is not None
            if member.status == "complained":
                return SubscriptionRequest("suppressed", member)
            if member.status == ACTIVE:
                return SubscriptionRequest("already-active", member)
            current = sections_of(member)
            request_id = record_event(
                conn, list_id=lid, subscriber_id=member.subscriber_id,
                old_status=None if created else member.status, new_status=member.status,
                old_sections=None if created else current, new_sections=current,
                actor=actor, cause=cause, detail=detail, now=now)
            return SubscriptionRequest("requested", member, request_id)

    @guarded
    def confirm_subscription(self, subscriber_id: int, list_name: str, *,
                             request_id: int | None = None,
                             now: datetime | None = None) -> Membership:
        """The reader's confirmation POST: make the membership active and apply the name
        and sections the request carried.

        It applies only when request ``request_id`` is this member's, nothing kept the
        member from mail after it (see the module docstring) and the address is not
        suppressed. A link without a request (made before the consent record) confirms a
        "pending" member only. Anything else, and a second confirmation, leaves the
        membership as it is (look at ``status``; ``confirmed_at`` is ``now`` only when this
        call confirmed).
        """
        now = utc(now)
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
                if asked.get("name"):
                    conn.execute(subscribers.update()
                                 .where(subscribers.c.id == subscriber_id)
                                 .values(name=asked["name"], updated_at=now))
            change_membership(conn, member, now, actor="reader", cause="confirm",
                              detail=detail, **values)
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
        if suppressed_status(conn, member.email.casefold()) is not None:
            return False
        ev = membership_events.c
        if request_id is None:
            return member.status == "pending"
        lid = list_id(conn, member.list_name)
        request = conn.execute(sa.select(ev.cause).where(
            ev.id == request_id, ev.list_id == lid,
            ev.subscriber_id == member.subscriber_id)).scalar()
        if request not in REQUEST_CAUSES:
            return False
        kept_away = conn.execute(sa.select(ev.id).where(
            ev.list_id == lid, ev.subscriber_id == member.subscriber_id, ev.id > request_id,
            ev.new_status.in_(INACTIVE),
            sa.or_(ev.old_status.is_(None), ev.old_status != ev.new_status,
                   ev.cause.in_(SUPPRESSING_CAUSES))).limit(1)).first()
        return kept_away is None
