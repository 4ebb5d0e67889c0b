"""What the desk's reports read: an edition's delivery over time, its failures and the
suppressions it caused, a list's growth, and bounce and complaint rates per edition.

Read-only queries over the ledger (``deliveries``), ``bounce_events``, ``suppressions``,
``memberships`` and the consent record (``membership_events``); every method is one short
read transaction. Addresses are returned for the caller to mask; nothing here logs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa

from .engine import Database, guarded
from .failures import failure_label
from .members import Membership, member_query, membership_from_row
from .schema import (
    DELIVERED,
    bounce_events,
    deliveries,
    editions,
    lists,
    membership_events,
    memberships,
    subscribers,
    suppressions,
)
from .validation import normalise_address

#: The distinct replies of one group its addresses are looked up among (the newest rows of
#: those; a group of thousands of different replies shows addresses from the first ones).
_MEMBERS = 50

__all__ = [
    "CausedSuppression",
    "EditionRates",
    "FailureGroup",
    "GrowthDay",
    "ReportsMixin",
    "RetryState",
    "SubscriberDelivery",
]


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Ledger rows that ended (or wait) for one reason: ``status`` failed / expired /
    skipped, ``reason`` as recorded refined by the relay's enhanced status code and SMTP
    phase (e.g. ``smtp 550 5.1.1 at RCPT``), an ``example`` of the relay's words (the newest),
    ``count`` rows, and up to a few of their ``addresses`` (for the caller to mask)."""

    status: str
    reason: str
    count: int
    example: str | None
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RetryState:
    """The rows of an edition not yet ended: ``retrying`` rows were deferred at least once
    and wait for ``next_retry_at``; ``queued`` never tried; ``sending`` are claimed now."""

    retrying: int
    queued: int
    sending: int
    next_retry_at: datetime | None
    next_any_at: datetime | None


@dataclass(frozen=True, slots=True)
class CausedSuppression:
    """An address suppressed because of a delivery of this edition (a 5xx at SMTP time, or a
    bounce or complaint report naming its Message-ID)."""

    reason: str
    email: str
    created_at: datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class EditionRates:
    """Per published edition: messages ``sent`` (250 after DATA), ``refused`` at SMTP time
    (failed rows), and reports received later: ``hard`` and ``soft`` bounces, ``complaints``."""

    edition_id: int
    date: date
    subject: str
    sent: int
    refused: int
    hard: int
    soft: int
    complaints: int

    @property
    def bounce_rate(self) -> float | None:
        """Refusals and bounce reports over attempted messages (sent + refused)."""
        tried = self.sent + self.refused
        return (self.refused + self.hard + self.soft) / tried if tried else None

    @property
    def complaint_rate(self) -> float | None:
        """Complaints over delivered messages: the ratio Gmail's 0.3 % threshold is about."""
        return self.complaints / self.sent if self.sent else None


@dataclass(frozen=True, slots=True)
class GrowthDay:
    """One day of a list (in the list's timezone): readers who ``joined`` (confirmed) and
    ``left`` (unsubscribed, bounced, complained) that day, and its ``size`` at the end."""

    day: date
    joined: int
    left: int
    size: int


@dataclass(frozen=True, slots=True)
class SubscriberDelivery:
    """One ledger row of a subscriber, newest first in :meth:`ReportsMixin.subscriber_deliveries`."""

    edition_id: int
    list_name: str
    date: date
    status: str
    reason: str | None
    finished_at: datetime | None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class ReportsMixin(Database):
    """Read-only store methods behind the desk's reports."""

    def _minute(self, column: Any) -> Any:
        if self.is_sqlite:
            return sa.func.strftime("%Y-%m-%d %H:%M", column)
        return sa.func.to_char(sa.func.date_trunc("minute", column), "YYYY-MM-DD HH24:MI")

    @guarded
    def delivery_timeline(self, edition_id: int) -> list[tuple[datetime, dict[str, int]]]:
        """Rows of the edition that ended, per minute of ``finished_at`` (UTC, oldest first):
        ``(minute, {status: count})`` for sent, sent-unconfirmed, failed and expired rows."""
        minute = self._minute(deliveries.c.finished_at).label("minute")
        query = (sa.select(minute, deliveries.c.status, sa.func.count())
                 .where(deliveries.c.edition_id == edition_id,
                        deliveries.c.status.in_(("sent", "sent_unconfirmed", "failed",
                                                 "expired")),
                        deliveries.c.finished_at.is_not(None))
                 .group_by(minute, deliveries.c.status).order_by(minute))
        out: dict[datetime, dict[str, int]] = defaultdict(dict)
        with self.read() as conn:
            for stamp, status, n in conn.execute(query):
                when = datetime.strptime(stamp, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
                out[when][status] = int(n)
        return sorted(out.items())

    @guarded
    def failure_groups(self, edition_id: int, *, addresses: int = 5) -> list[FailureGroup]:
        """Failed, expired and skipped rows of the edition grouped by status and reason,
        largest group first, each with its newest relay reply and up to ``addresses``
        addresses. The reason is the stored one refined by the RFC 3463 status and the
        SMTP phase of the relay's reply (:func:`digest.store.failures.failure_label`), so
        a 550 for an unknown mailbox (5.1.1) and one for a policy block (5.7.1) are two
        groups."""
        d = deliveries
        ended = sa.and_(d.c.edition_id == edition_id,
                        d.c.status.in_(("failed", "expired", "skipped")))
        counts = (sa.select(d.c.status, d.c.reason, d.c.last_code, d.c.last_error,
                            sa.func.count().label("n"))
                  .where(ended).group_by(d.c.status, d.c.reason, d.c.last_code, d.c.last_error))
        # (status, label) -> [count, the distinct (reason, code, error) it gathers]
        merged: dict[tuple[str, str], list[Any]] = {}
        groups: list[FailureGroup] = []
        with self.read() as conn:
            for status, reason, code, error, n in conn.execute(counts).all():
                entry = merged.setdefault((status, failure_label(reason, error, code)),
                                          [0, []])
                entry[0] += int(n)
                entry[1].append((reason, code, error))
            for (status, label), (n, members) in merged.items():
                same = sa.or_(*(sa.and_(
                    d.c.reason.is_(None) if reason is None else d.c.reason == reason,
                    d.c.last_code.is_(None) if code is None else d.c.last_code == code,
                    d.c.last_error.is_(None) if error is None else d.c.last_error == error)
                    for reason, code, error in members[:_MEMBERS]))
                rows = conn.execute(
                    sa.select(subscribers.c.email, d.c.last_error)
                    .join(subscribers, subscribers.c.id == d.c.subscriber_id)
                    .where(ended, d.c.status == status, same)
                    .order_by(d.c.finished_at.desc(), d.c.id.desc())
                    .limit(addresses)).all()
                example = next((r.last_error for r in rows if r.last_error), None)
                groups.append(FailureGroup(status, label, n, example,
                                           tuple(r.email for r in rows)))
        return sorted(groups, key=lambda g: (-g.count, g.status, g.reason))

    @guarded
    def retry_state(self, edition_id: int) -> RetryState:
        """What of the edition still waits, and when the next attempt is due."""
        d = deliveries
        query = (sa.select(
            sa.func.count().filter(d.c.status == "queued", d.c.attempts > 0),
            sa.func.count().filter(d.c.status == "queued", d.c.attempts == 0),
            sa.func.count().filter(d.c.status == "sending"),
            sa.func.min(d.c.next_attempt_at).filter(d.c.status == "queued", d.c.attempts > 0),
            sa.func.min(d.c.next_attempt_at).filter(d.c.status == "queued"),
        ).where(d.c.edition_id == edition_id, d.c.status.in_(("queued", "sending"))))
        with self.read() as conn:
            retrying, queued, sending, next_retry, next_any = conn.execute(query).one()
        return RetryState(int(retrying or 0), int(queued or 0), int(sending or 0),
                          _aware(next_retry), _aware(next_any))

    @guarded
    def suppressions_caused(self, edition_id: int) -> list[CausedSuppression]:
        """Addresses suppressed by a delivery of the edition: refused for good at SMTP time
        (suppressed as the row failed) or named by a bounce or complaint report."""
        d, s, b = deliveries, suppressions, bounce_events
        by_report = sa.select(sa.literal(1)).where(
            b.c.delivery_id == d.c.id, b.c.created_at == s.c.created_at).exists()
        at_smtp = sa.and_(d.c.status == "failed", d.c.finished_at == s.c.created_at)
        query = (sa.select(s.c.reason, subscribers.c.email, s.c.created_at, s.c.detail)
                 .join(subscribers, subscribers.c.email_key == s.c.email_key)
                 .join(d, d.c.subscriber_id == subscribers.c.id)
                 .where(d.c.edition_id == edition_id, sa.or_(at_smtp, by_report))
                 .order_by(s.c.created_at, s.c.id))
        with self.read() as conn:
            return [CausedSuppression(r.reason, r.email, r.created_at, r.detail)
                    for r in conn.execute(query)]

    @guarded
    def edition_rates(self, list_name: str, *, limit: int = 10) -> list[EditionRates]:
        """The newest ``limit`` published editions of the list, newest first, with what was
        sent, refused, bounced and complained about."""
        d, b = deliveries, bounce_events
        recent = (sa.select(editions.c.id, editions.c.date, editions.c.subject)
                  .join(lists, lists.c.id == editions.c.list_id)
                  .where(lists.c.name == list_name, editions.c.published_at.is_not(None))
                  .order_by(editions.c.date.desc(), editions.c.seq.desc()).limit(limit))
        out: list[EditionRates] = []
        with self.read() as conn:
            for edition_id, day, subject in conn.execute(recent).all():
                sent, refused = conn.execute(sa.select(
                    sa.func.count().filter(d.c.status.in_(sorted(DELIVERED))),
                    sa.func.count().filter(d.c.status == "failed"),
                ).where(d.c.edition_id == edition_id)).one()
                kinds: dict[str, int] = dict(conn.execute(
                    sa.select(b.c.kind, sa.func.count(sa.distinct(b.c.delivery_id)))
                    .join(d, d.c.id == b.c.delivery_id)
                    .where(d.c.edition_id == edition_id).group_by(b.c.kind)).all())
                out.append(EditionRates(edition_id, day, subject, int(sent or 0),
                                        int(refused or 0), int(kinds.get("hard", 0)),
                                        int(kinds.get("soft", 0)),
                                        int(kinds.get("complaint", 0))))
        return out

    @guarded
    def list_growth(self, list_name: str, *, days: int, zone: tzinfo,
                    today: date) -> list[GrowthDay]:
        """The last ``days`` days of the list up to ``today`` (days in ``zone``), oldest
        first: readers who became active (joined) and who stopped being active (left) each
        day, and the number of active readers at the end of it.

        Read from the consent record (``membership_events``): a reader who left and came
        back counts on both days, and the sizes are exact, worked back from today's count.
        """
        start_local = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(),
                                       zone)
        start = start_local.astimezone(UTC)
        m, ev = memberships, membership_events
        with self.read() as conn:
            active = int(conn.execute(
                sa.select(sa.func.count()).select_from(m).join(lists, lists.c.id == m.c.list_id)
                .where(lists.c.name == list_name, m.c.status == "active")).scalar() or 0)
            moves = conn.execute(
                sa.select(ev.c.created_at, ev.c.old_status, ev.c.new_status)
                .join(lists, lists.c.id == ev.c.list_id)
                .where(lists.c.name == list_name, ev.c.created_at >= start,
                       sa.or_(ev.c.new_status == "active", ev.c.old_status == "active"))).all()
        per_join: dict[date, int] = defaultdict(int)
        per_leave: dict[date, int] = defaultdict(int)
        for moment, old, new in moves:
            if (old == "active") == (new == "active"):
                continue  # a change of sections, or a note: not a join or a leave
            day = _aware(moment).astimezone(zone).date()  # type: ignore[union-attr]
            (per_join if new == "active" else per_leave)[day] += 1
        out: list[GrowthDay] = []
        size = active
        for offset in range(days):
            day = today - timedelta(days=offset)
            out.append(GrowthDay(day, per_join.get(day, 0), per_leave.get(day, 0), size))
            size = size - per_join.get(day, 0) + per_leave.get(day, 0)
        return out[::-1]

    @guarded
    def find_subscriber_id(self, email: str) -> int | None:
        """The id of the subscriber with ``email`` (any case), or None (also for an address
        that is not valid)."""
        try:
            _, key = normalise_address(email, allow_smtputf8=True)
        except ValueError:
            return None
        with self.read() as conn:
            found = conn.execute(sa.select(subscribers.c.id)
                                 .where(subscribers.c.email_key == key)).scalar()
        return int(found) if found is not None else None

    @guarded
    def subscriber_memberships(self, subscriber_id: int) -> list[Membership]:
        """Every membership of the subscriber, by list name."""
        query = member_query().where(subscribers.c.id == subscriber_id).order_by(lists.c.name)
        with self.read() as conn:
            return [membership_from_row(r) for r in conn.execute(query)]

    @guarded
    def suppression_of(self, subscriber_id: int) -> tuple[str, datetime, str | None] | None:
        """``(reason, since, detail)`` when the subscriber's address is suppressed."""
        query = (sa.select(suppressions.c.reason, suppressions.c.created_at,
                           suppressions.c.detail)
                 .join(subscribers, subscribers.c.email_key == suppressions.c.email_key)
                 .where(subscribers.c.id == subscriber_id))
        with self.read() as conn:
            row = conn.execute(query).first()
        return (row.reason, row.created_at, row.detail) if row is not None else None

    @guarded
    def subscriber_deliveries(self, subscriber_id: int, *,
                              limit: int = 10) -> list[SubscriberDelivery]:
        """The subscriber's newest ledger rows (what each edition did for them)."""
        d = deliveries
        query = (sa.select(d.c.edition_id, lists.c.name, editions.c.date, d.c.status,
                           d.c.reason, d.c.finished_at)
                 .join(editions, editions.c.id == d.c.edition_id)
                 .join(lists, lists.c.id == editions.c.list_id)
                 .where(d.c.subscriber_id == subscriber_id)
                 .order_by(d.c.id.desc()).limit(limit))
        with self.read() as conn:
            return [SubscriberDelivery(r.edition_id, r.name, r.date, r.status, r.reason,
                                       r.finished_at) for r in conn.execute(query)]
