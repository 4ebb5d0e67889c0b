"""Bounces and complaints in the store: find the delivery a report names, record it once, suppress."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from digest.errors import StoreError

from .consent import event_row, lower_everywhere, record_events
from .engine import Database, guarded
from .members import suppress_key
from .schema import (
    bounce_events,
    deliveries,
    editions,
    lists,
    memberships,
    subscribers,
    suppressions,
)

__all__ = ["BOUNCE_KINDS", "BouncesMixin", "DeliveryRef", "parse_ledger_message_id"]

BOUNCE_KINDS = ("hard", "soft", "complaint")
# publish_edition writes <e{edition}.s{subscriber}.{random}@{domain}>.
_LEDGER_ID = re.compile(r"<e(\d{1,18})\.s(\d{1,18})\.[0-9A-Za-z]+@[^<>\s@]+>")


class DeliveryRef(NamedTuple):
    """The ledger row a Message-ID belongs to, and who it went to."""

    delivery_id: int
    subscriber_id: int
    list_name: str
    email: str


def parse_ledger_message_id(message_id: str) -> tuple[int, int] | None:
    """``(edition_id, subscriber_id)`` of a ledger Message-ID, or None for any other shape."""
    match = _LEDGER_ID.fullmatch(message_id.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class BouncesMixin(Database):
    """Store methods for bounce processing."""

    @guarded
    def find_delivery_by_message_id(self, message_id: str) -> DeliveryRef | None:
        """The ledger row that was sent with ``message_id`` (compared without regard to
        case), or None when no row carries it."""
        ids = parse_ledger_message_id(message_id)
        if ids is None:
            return None
        query = (sa.select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.message_id,
                           lists.c.name, subscribers.c.email)
                 .join(editions, editions.c.id == deliveries.c.edition_id)
                 .join(lists, lists.c.id == editions.c.list_id)
                 .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                 .where(deliveries.c.edition_id == ids[0],
                        deliveries.c.subscriber_id == ids[1]))
        with self.read() as conn:
            row = conn.execute(query).first()
        # The random part is what makes a Message-ID unguessable: it must match exactly.
        if row is None or row.message_id.lower() != message_id.strip().lower():
            return None
        return DeliveryRef(int(row.id), int(row.subscriber_id), row.name, row.email)

    @guarded
    def bounce_recorded(self, event_key: str) -> bool:
        """True when a report with ``event_key`` was recorded already."""
        with self.read() as conn:
            return conn.execute(sa.select(bounce_events.c.id).where(
                bounce_events.c.event_key == event_key)).first() is not None

    @guarded
    def record_bounce(self, event_key: str, *, kind: str, subscriber_id: int,
                      delivery_id: int | None, status: str | None, reason: str,
                      soft_limit: int = 3, soft_window: timedelta = timedelta(days=14),
                      report_message_id: str | None = None, by_reader: bool = True,
                      list_name: str | None = None,
                      now: datetime | None = None) -> str:
        """Record one bounce or complaint for a subscriber, in one transaction, and suppress
        the address (every list) when it calls for it.

        A hard bounce suppresses as "bounced", a complaint as "complained"; soft bounces
        suppress as "bounced" once ``soft_limit`` different deliveries (reports naming no
        delivery count one each) soft-bounced within ``soft_window``. A complaint that is
        not ``by_reader`` (the report names another recipient: someone the reader forwarded
        the edition to) is recorded, and noted on the reader's membership of ``list_name``
        (cause "forwarded-complaint", status unchanged), but suppresses nothing.

        :param event_key: identifies the report (a hash of its bytes): recording the same
            key again changes nothing.
        :param report_message_id: the report's own Message-ID, kept in the consent record
            of every membership the report changes (cause "bounce", "soft-bounces" or
            "complaint").
        :returns: "duplicate" (seen before), "suppressed" (the address is suppressed now),
            "already-suppressed", "recorded" (a soft bounce below the limit) or "noted" (a
            complaint by someone else).
        :raises StoreError: for an unknown ``kind`` or subscriber.
        """
        if kind not in BOUNCE_KINDS:
            raise StoreError(f"A bounce kind is one of {', '.join(BOUNCE_KINDS)}, not {kind!r}.")
        now = _utc(now)
        with self.write() as conn:
            seen = conn.execute(sa.select(bounce_events.c.id).where(
                bounce_events.c.event_key == event_key)).first()
            if seen is not None:
                return "duplicate"
            key = conn.execute(sa.select(subscribers.c.email_key).where(
                subscribers.c.id == subscriber_id)).scalar()
            if key is None:
                raise StoreError(f"The store has no subscriber {subscriber_id}; the bounce "
                                 "names a deleted subscriber and was not recorded.")
            # Two runs over one mailbox at once (an overlapping cron): the second is told
            # "duplicate" instead of failing on the unique key.
            insert = (sqlite.insert if self.is_sqlite else postgresql.insert)(bounce_events)
            if conn.execute(insert.values(
                    event_key=event_key, kind=kind, subscriber_id=subscriber_id,
                    delivery_id=delivery_id, status=status, reason=reason[:200], created_at=now,
            ).on_conflict_do_nothing(index_elements=["event_key"])
                    .returning(bounce_events.c.id)).first() is None:
                return "duplicate"
            detail = " ".join(p for p in (kind, "bounce" if kind != "complaint" else "",
                                          status or "", reason) if p)
            cause = {"hard": "bounce", "soft": "soft-bounces", "complaint": "complaint"}[kind]
            record: dict[str, object] = {k: v for k, v in (("report_message_id", report_message_id),
                                        ("status", status), ("reason", reason[:200]),
                                        ("delivery_id", delivery_id)) if v}
            if kind == "complaint" and not by_reader:
                self._note_forwarded(conn, subscriber_id, list_name, record, now)
                return "noted"
            if kind == "soft":
                count = self._soft_count(conn, subscriber_id, now - soft_window)
                if count < soft_limit:
                    return "recorded"
                detail = (f"{count} soft bounces within {soft_window.days} days; last: "
                          f"{status or ''} {reason}").strip()
            return self._suppress_subscriber(conn, subscriber_id, key,
                                             "complained" if kind == "complaint" else "bounced",
                                             detail, now, cause=cause, record=record)

    @staticmethod
    def _soft_count(conn: Connection, subscriber_id: int, since: datetime) -> int:
        soft = sa.and_(bounce_events.c.subscriber_id == subscriber_id,
                       bounce_events.c.kind == "soft", bounce_events.c.created_at >= since)
        # Repeated "delayed" notices for one message are one soft bounce, not several.
        with_delivery = conn.execute(sa.select(
            sa.func.count(sa.distinct(bounce_events.c.delivery_id))).where(soft)).scalar()
        without = conn.execute(sa.select(sa.func.count()).where(
            soft, bounce_events.c.delivery_id.is_(None))).scalar()
        return int(with_delivery or 0) + int(without or 0)

    @staticmethod
    def _note_forwarded(conn: Connection, subscriber_id: int, list_name: str | None,
                        record: dict[str, object], now: datetime) -> None:
        """An event on the reader's membership of the list: a complaint about their copy
        by someone else, which changes nothing."""
        query = sa.select(memberships.c.list_id, memberships.c.status,
                          memberships.c.sections).where(
            memberships.c.subscriber_id == subscriber_id)
        if list_name is not None:
            query = query.join(lists, lists.c.id == memberships.c.list_id).where(
                lists.c.name == list_name)
        record_events(conn, [event_row(
            list_id=m.list_id, subscriber_id=subscriber_id, old_status=m.status,
            new_status=m.status, old_sections=m.sections, new_sections=m.sections,
            actor="system", cause="forwarded-complaint", detail=record, now=now)
            for m in conn.execute(query)])

    @staticmethod
    def _suppress_subscriber(conn: Connection, subscriber_id: int, email_key: str,
                             status: str, detail: str, now: datetime, *, cause: str,
                             record: dict[str, object]) -> str:
        changed = lower_everywhere(conn, subscriber_id, status, actor="system", cause=cause,
                                   detail=record, now=now)
        was = conn.execute(sa.select(suppressions.c.id).where(
            suppressions.c.email_key == email_key)).first()
        suppress_key(conn, email_key, status, detail, now)
        return "already-suppressed" if was is not None and not changed else "suppressed"
