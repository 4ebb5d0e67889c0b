"""Subscribers and their memberships: add, look up, unsubscribe, suppress (sign-up requests
and their confirmation are in :mod:`.optin`).

Who owns a membership (the rule every method here, in :mod:`.optin` and in :mod:`.importer`
enforces, so no caller can break it):

* **The reader** owns their consent and their sections. Only the reader's own confirmed
  actions change them: the confirmation POST of a sign-up (the only way a reader becomes
  active), unsubscribing (one-click, the page's button, an unsubscribe email), and sections
  saved on the preferences page.
* **The system's evidence** about the address (a hard bounce, repeated soft bounces, an
  abuse complaint by the reader, a relay refusing the address) suppresses the address and
  moves every membership of it towards not mailing; each membership gets an event, even one
  whose status stays (:func:`.consent.lower_everywhere`). A move towards not mailing goes
  from active or pending to an inactive status, or up between inactive ones:
  unsubscribed < bounced < complained (:data:`.schema.STATUS_RANK`); nothing moves down.
* **An editor's import** (and ``subscribers add``) may add new readers, fill or update
  names and attributes of any member, set sections only where the reader never chose them,
  and move a status only towards not mailing. **An import never sets a status the
  membership had before**: once a reader came back from it (by their own confirmation, or
  an editor's ``add --confirmed``), no stale row (an old export, a CRM file synced by every
  send) can put them back. A bounced or complained status it sets suppresses the address on
  every list, as evidence does. It never makes an existing member active.
* **A sign-up request** changes nothing about an existing member (status, timestamps,
  name, sections) until its confirmation POST, which applies the name and sections of the
  request it confirms. For a suppressed address, an address whose mailbox complained under
  any spelling, or a member who complained, it records nothing and no confirmation email
  may be sent (``outcome == "suppressed"``); a confirmation never lifts a suppression.
* **An editor** makes a member active directly only with ``subscribers add --confirmed``
  (``confirmed=True``), recorded as the editor's act; it also lifts a suppression. An
  editor's ``set_status`` (``subscribers remove``) moves only towards not mailing.

Every change (and every sign-up request) writes one event in :mod:`.consent` in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import SubscriberNotFoundError

from .changes import (
    change_membership,
    ensure_membership,
    ensure_subscriber,
    sections_of,
    utc,
)
from .consent import lift_suppression, lower_everywhere, record_event
from .editions import list_id
from .engine import guarded
from .members import Membership, membership_from_row, suppress_key, suppressed_status
from .optin import OptInMixin, SubscriptionRequest
from .schema import (
    ACTIVE,
    INACTIVE,
    MEMBERSHIP_STATUSES,
    STATUS_RANK,
    lists,
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


def _status_checked(status: str) -> str:
    if status not in MEMBERSHIP_STATUSES:
        raise InvalidSubscriberError(f"The status {status!r} is not one of "
                                     f"{', '.join(MEMBERSHIP_STATUSES)}.")
    return status


def lowers(new: str, old: str) -> bool:
    """True when moving a membership from ``old`` to ``new`` is a move towards not mailing
    (see the rule above: up :data:`~.schema.STATUS_RANK`)."""
    return new in INACTIVE and STATUS_RANK[new] > STATUS_RANK[old]


def suppress_everywhere(conn: Connection, subscriber_id: int, key: str, status: str, *,
                        actor: str, cause: str, detail: dict[str, Any] | None, now: datetime,
                        except_list: int | None = None) -> int:
    """Put the address on the suppression list (``status`` "bounced" or "complained") and
    apply it to every membership (:func:`.consent.lower_everywhere`, except the list the
    caller recorded); returns how many memberships changed status."""
    note = ", ".join(f"{k} {v}" for k, v in (detail or {}).items()) or cause
    suppress_key(conn, key, status, note, now)
    return lower_everywhere(conn, subscriber_id, status, actor=actor, cause=cause,
                            detail=detail, now=now, except_list=except_list)


class SubscribersMixin(OptInMixin):
    """Store methods that change one subscriber at a time, under the ownership rule."""

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
        now = utc(now)
        cause = "editor-confirmed" if confirmed else "editor-add"
        with self.write() as conn:
            lid = list_id(conn, list_name, create=True)
            sid = self._upsert_subscriber(conn, address, key, name, attributes, now)
            lifted = lift_suppression(conn, key) if confirmed else None
            extra = {**(detail or {}), **({"lifted_suppression": lifted} if lifted else {})}
            new = ACTIVE if confirmed else (suppressed_status(conn, key) or status)
            if ensure_membership(conn, lid, sid, status=new, sections=chosen, source=source,
                                 created_at=now, changed_at=now,
                                 confirmed_at=now if new == ACTIVE else None):
                record_event(conn, list_id=lid, subscriber_id=sid, old_status=None,
                             new_status=new, old_sections=None, new_sections=chosen,
                             actor="editor", cause=cause, detail=extra, now=now)
                if new in ("bounced", "complained") and new == status:
                    suppress_everywhere(conn, sid, key, new, actor="editor", cause=cause,
                                        detail=detail, now=now, except_list=lid)
                return sid
            member = self._membership(conn, sa.and_(subscribers.c.id == sid,
                                                    lists.c.id == lid))
            assert member is not None
            values: dict[str, Any] = {}
            if sections is not None and member.sections_chosen_at is None \
                    and chosen != sections_of(member):
                values["sections"] = chosen
            if confirmed and member.status != ACTIVE:
                values.update(status=ACTIVE, confirmed_at=now)
            elif not confirmed and lowers(status, member.status):
                values["status"] = status
            if values or lifted:
                change_membership(conn, member, now, actor="editor", cause=cause,
                                  detail=extra, **values)
            if values.get("status") in ("bounced", "complained"):
                suppress_everywhere(conn, sid, key, status, actor="editor", cause=cause,
                                    detail=detail, now=now, except_list=lid)
            return sid

    @staticmethod
    def _upsert_subscriber(conn: Connection, address: str, key: str, name: str | None,
                           attributes: dict[str, str] | None, now: datetime) -> int:
        sid, created = ensure_subscriber(conn, address, key, now, name=name,
                                         attributes=attributes)
        if created:
            return sid
        row = conn.execute(sa.select(subscribers.c.name, subscribers.c.attributes)
                           .where(subscribers.c.id == sid)).one()
        values: dict[str, Any] = {}
        if name is not None and name != row.name:
            values["name"] = name
        if attributes:
            merged = {**(row.attributes or {}), **attributes}
            if merged != row.attributes:
                values["attributes"] = merged
        if values:
            conn.execute(subscribers.update().where(subscribers.c.id == sid)
                         .values(updated_at=now, **values))
        return sid

    @guarded
    def set_status(self, list_name: str, email: str, status: str, *, cause: str = "editor-remove",
                   detail: dict[str, Any] | None = None,
                   now: datetime | None = None) -> Membership:
        """An editor moves a membership towards not mailing ("unsubscribed", "bounced" or
        "complained"; the last two also suppress the address for every list). Setting the
        status the member has already changes nothing (but re-suppresses the address).

        :raises SubscriberNotFoundError: when the address is not on the list.
        :raises InvalidSubscriberError: for "active" or "pending" (only the reader's
            confirmation or ``subscribers add --confirmed`` makes anyone active), and for a
            move down between inactive statuses (complained to unsubscribed or bounced,
            bounced to unsubscribed): that would undo evidence the store keeps.
        """
        if _status_checked(status) not in INACTIVE:
            raise InvalidSubscriberError(
                f"An editor cannot set {status!r} directly: only the reader's confirmation "
                "or `subscribers add --confirmed` makes a member active.")
        now = utc(now)
        _, key = normalise_address(email, allow_smtputf8=True)
        with self.write() as conn:
            member = self._membership(conn, sa.and_(subscribers.c.email_key == key,
                                                    lists.c.name == list_name))
            if member is None:
                raise SubscriberNotFoundError(f"The address is not on the list {list_name!r}; "
                                              "check the spelling or the --list option.")
            if member.status != status and not lowers(status, member.status):
                raise InvalidSubscriberError(
                    f"The member is {member.status} on {list_name!r}; an editor cannot move "
                    f"them to {status} (inactive statuses only go up: unsubscribed, bounced, "
                    "complained).")
            recorded = None
            if member.status != status:
                change_membership(conn, member, now, actor="editor", cause=cause,
                                  detail=detail, status=status)
                recorded = list_id(conn, list_name)
            if status in ("bounced", "complained"):
                suppress_everywhere(conn, member.subscriber_id, key, status, actor="editor",
                                    cause=cause, detail=detail, now=now,
                                    except_list=recorded)
            return self._by_id(conn, member.subscriber_id, list_name)

    @guarded
    def suppress(self, email: str, reason: str, *, detail: str | None = None,
                 cause: str | None = None, now: datetime | None = None) -> None:
        """Suppress ``email`` on every list (``reason`` "bounced" or "complained"); its
        memberships move towards not mailing, each with an event (see
        :func:`.consent.lower_everywhere`)."""
        if reason not in ("bounced", "complained"):
            raise InvalidSubscriberError("A suppression reason is \"bounced\" or \"complained\".")
        _, key = normalise_address(email, allow_smtputf8=True)
        now = utc(now)
        with self.write() as conn:
            suppress_key(conn, key, reason, detail, now)
            sid = conn.execute(sa.select(subscribers.c.id)
                               .where(subscribers.c.email_key == key)).scalar()
            if sid is not None:
                lower_everywhere(conn, sid, reason, actor="system", cause=cause or "suppressed",
                                 detail={"reason": detail} if detail else None, now=now)

    @guarded
    def unsubscribe(self, subscriber_id: int, list_name: str, *,
                    cause: str = "unsubscribe-page", detail: dict[str, Any] | None = None,
                    now: datetime | None = None) -> bool:
        """The reader unsubscribes from one list (committed at once); False if already
        inactive. ``cause``: "one-click-unsubscribe", "unsubscribe-page" or
        "mailto-unsubscribe" (``detail``: the report's Message-ID)."""
        now = utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if member.status in INACTIVE:
                return False
            change_membership(conn, member, now, actor="reader", cause=cause, detail=detail,
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
        now = utc(now)
        with self.write() as conn:
            member = self._by_id(conn, subscriber_id, list_name)
            if chosen != sections_of(member) or member.sections_chosen_at is None:
                change_membership(conn, member, now, actor="reader", cause="preferences",
                             sections=chosen, sections_chosen_at=now)
            return self._by_id(conn, subscriber_id, list_name)
