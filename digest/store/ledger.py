"""The delivery ledger: one row per (edition, subscriber), claimed by workers, ended once.

States: queued -> sending -> sent | failed | expired, or skipped at claim time when the
address unsubscribed, bounced, complained or was suppressed after the edition was published.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import StoreError

from .engine import Database, guarded
from .schema import ACTIVE, deliveries, editions, memberships, subscribers, suppressions

__all__ = ["Claim", "LedgerMixin", "suppress_address"]

_MAX_TEXT = 1000


@dataclass(frozen=True, slots=True)
class Claim:
    """A ledger row a worker now owns: who to send to, and the stable Message-ID to use.

    ``sections`` is None for "every section"; ``attempts`` counts tries before this one
    (deferrals, permanent failures and leases that ran out).
    """

    delivery_id: int
    edition_id: int
    subscriber_id: int
    email: str
    name: str | None
    sections: frozenset[str] | None
    attributes: dict[str, str] = field(hash=False)
    attempts: int
    first_attempt_at: datetime | None
    message_id: str


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:_MAX_TEXT]


def suppress_address(conn: Connection, email_key: str, reason: str, detail: str | None,
                     now: datetime) -> None:
    """Add ``email_key`` to the suppression list unless it is there already."""
    exists = conn.execute(sa.select(suppressions.c.id)
                          .where(suppressions.c.email_key == email_key)).first()
    if exists is None:
        conn.execute(suppressions.insert().values(
            email_key=email_key, reason=reason, detail=detail[:500] if detail else None,
            created_at=now))


# Built once: constructing the statement per call costs more than running it on SQLite.
_SENT = deliveries.update().where(
    deliveries.c.id == sa.bindparam("b_id"), deliveries.c.status == "sending",
).values(status="sent", reason=None, response=sa.bindparam("b_response"),
         finished_at=sa.bindparam("b_now", type_=deliveries.c.finished_at.type),
         attempts=deliveries.c.attempts + 1, claimed_by=None, lease_until=None)


class LedgerMixin(Database):
    """Store methods for publishing an edition and moving its ledger rows."""

    def _random_token(self) -> sa.ColumnElement[str]:
        if self.is_sqlite:
            return sa.func.lower(sa.func.hex(sa.func.randomblob(6)))
        return sa.func.substr(sa.func.md5(sa.cast(sa.func.random(), sa.String)), 1, 12)

    @guarded
    def publish_edition(self, edition_id: int, *, message_id_domain: str,
                        now: datetime) -> int:
        """Create one "queued" row per active, unsuppressed member; 0 if already published."""
        now = _utc(now)
        with self.write() as conn:
            query = sa.select(editions.c.list_id, editions.c.published_at).where(
                editions.c.id == edition_id)
            if not self.is_sqlite:
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise StoreError(f"The store has no edition {edition_id} to publish; "
                                 "record it first.")
            if row.published_at is not None:
                return 0
            message_id = ("<e" + sa.literal(str(edition_id)) + ".s"
                          + sa.cast(memberships.c.subscriber_id, sa.String) + "."
                          + self._random_token() + "@" + sa.literal(message_id_domain) + ">")
            eligible = (
                sa.select(
                    sa.literal(edition_id), memberships.c.subscriber_id, sa.literal("queued"),
                    message_id, sa.literal(0), sa.literal(now, deliveries.c.created_at.type),
                    sa.literal(now, deliveries.c.next_attempt_at.type))
                .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
                .outerjoin(suppressions, suppressions.c.email_key == subscribers.c.email_key)
                .where(memberships.c.list_id == row.list_id, memberships.c.status == ACTIVE,
                       suppressions.c.id.is_(None))
                .order_by(memberships.c.subscriber_id))
            created = conn.execute(deliveries.insert().from_select(
                ["edition_id", "subscriber_id", "status", "message_id", "attempts",
                 "created_at", "next_attempt_at"], eligible),
                execution_options={"preserve_rowcount": True}).rowcount
            conn.execute(editions.update().where(editions.c.id == edition_id).values(
                published_at=now, message_id_domain=message_id_domain))
            return int(created)

    @guarded
    def claim_deliveries(self, edition_id: int, *, worker_id: str, limit: int,
                         now: datetime, lease: timedelta) -> list[Claim]:
        """Move up to ``limit`` due rows to "sending" for ``worker_id`` and return them;
        rows whose address is no longer eligible become "skipped" instead."""
        now = _utc(now)
        claims: list[Claim] = []
        with self.write() as conn:
            for lost in (True, False):
                while len(claims) < limit:
                    want = limit - len(claims)
                    rows = conn.execute(self._due_query(edition_id, now, want, lost)).all()
                    claims.extend(self._take(conn, edition_id, rows, worker_id, now, lease))
                    if len(rows) < want:
                        break
        return claims

    def _due_query(self, edition_id: int, now: datetime, limit: int,
                   lost: bool) -> sa.Select[Any]:
        d = deliveries
        if lost:
            due = sa.and_(d.c.status == "sending", d.c.lease_until <= now)
            order: tuple[Any, ...] = (d.c.id,)
        else:
            # Walks ix_deliveries_edition_id_status_next_attempt_at_id in order: no sort,
            # and rows already sent are never scanned again.
            due = sa.and_(d.c.status == "queued", d.c.next_attempt_at <= now)
            order = (d.c.next_attempt_at, d.c.id)
        query = (
            sa.select(d.c.id, d.c.subscriber_id, d.c.status, d.c.attempts,
                      d.c.first_attempt_at, d.c.message_id, subscribers.c.email,
                      subscribers.c.name, subscribers.c.attributes,
                      memberships.c.status.label("member_status"), memberships.c.sections,
                      suppressions.c.reason.label("suppressed"))
            .select_from(d)
            .join(editions, editions.c.id == d.c.edition_id)
            .join(subscribers, subscribers.c.id == d.c.subscriber_id)
            .outerjoin(memberships, sa.and_(memberships.c.list_id == editions.c.list_id,
                                            memberships.c.subscriber_id == d.c.subscriber_id))
            .outerjoin(suppressions, suppressions.c.email_key == subscribers.c.email_key)
            .where(d.c.edition_id == edition_id, due)
            .order_by(*order).limit(limit))
        if not self.is_sqlite:
            query = query.with_for_update(of=d, skip_locked=True)
        return query

    def _take(self, conn: Connection, edition_id: int, rows: list[Any], worker_id: str,
              now: datetime, lease: timedelta) -> list[Claim]:
        skipped: dict[str, list[int]] = defaultdict(list)
        fresh: list[int] = []
        lost: list[int] = []
        claims: list[Claim] = []
        for row in rows:
            if row.member_status != ACTIVE:
                skipped[row.member_status or "unsubscribed"].append(row.id)
                continue
            if row.suppressed is not None:
                skipped["suppressed"].append(row.id)
                continue
            reclaimed = row.status == "sending"
            (lost if reclaimed else fresh).append(row.id)
            claims.append(Claim(
                delivery_id=row.id, edition_id=edition_id, subscriber_id=row.subscriber_id,
                email=row.email, name=row.name,
                sections=frozenset(row.sections) if row.sections is not None else None,
                attributes=dict(row.attributes or {}),
                attempts=row.attempts + (1 if reclaimed else 0),
                first_attempt_at=row.first_attempt_at or now, message_id=row.message_id))
        for reason, ids in skipped.items():
            conn.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(
                status="skipped", reason=reason, finished_at=now, claimed_by=None,
                lease_until=None))
        taken = {
            "status": "sending", "claimed_by": worker_id, "lease_until": now + lease,
            "last_attempt_at": now,
            "first_attempt_at": sa.func.coalesce(deliveries.c.first_attempt_at, now),
        }
        if fresh:
            conn.execute(deliveries.update().where(deliveries.c.id.in_(fresh)).values(taken))
        if lost:
            conn.execute(deliveries.update().where(deliveries.c.id.in_(lost)).values(
                {**taken, "attempts": deliveries.c.attempts + 1,
                 "last_error": "the lease ran out before a result was recorded"}))
        return claims

    def _mark(self, delivery_id: int, now: datetime, **values: Any) -> bool:
        now = _utc(now)
        with self.write() as conn:
            result = conn.execute(deliveries.update().where(
                deliveries.c.id == delivery_id, deliveries.c.status == "sending",
            ).values(claimed_by=None, lease_until=None, **values))
            return bool(result.rowcount)

    @guarded
    def mark_sent(self, delivery_id: int, *, response: str, now: datetime) -> None:
        """Record the relay's 250 for a row still in "sending" (otherwise do nothing)."""
        self.mark_sent_many([(delivery_id, response)], now=now)

    @guarded
    def mark_sent_many(self, results: Sequence[tuple[int, str]], *, now: datetime) -> int:
        """:meth:`mark_sent` for many ``(delivery_id, response)`` pairs in one transaction
        (one commit instead of one per message); returns how many rows it ended."""
        if not results:
            return 0
        when = _utc(now)
        params = [{"b_id": d, "b_response": _clip(r), "b_now": when} for d, r in results]
        with self.write() as conn:
            return int(conn.execute(_SENT, params,
                                    execution_options={"preserve_rowcount": True}).rowcount)

    @guarded
    def mark_deferred(self, delivery_id: int, *, error: str, retry_at: datetime,
                      now: datetime) -> None:
        """Put a "sending" row back to "queued" until ``retry_at``, counting the attempt."""
        self._mark(delivery_id, now, status="queued", next_attempt_at=_utc(retry_at),
                   last_error=_clip(error), attempts=deliveries.c.attempts + 1)

    @guarded
    def mark_failed(self, delivery_id: int, *, code: int | None, error: str, suppress: bool,
                    now: datetime) -> None:
        """End a "sending" row as "failed"; with ``suppress`` the address is suppressed and
        its memberships become "bounced"."""
        now = _utc(now)
        with self.write() as conn:
            result = conn.execute(deliveries.update().where(
                deliveries.c.id == delivery_id, deliveries.c.status == "sending",
            ).values(status="failed", reason=f"smtp {code}" if code else "refused",
                     last_code=code, last_error=_clip(error), finished_at=now,
                     claimed_by=None, lease_until=None, attempts=deliveries.c.attempts + 1))
            if not result.rowcount or not suppress:
                return
            sub = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email_key)
                .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                .where(deliveries.c.id == delivery_id)).one()
            detail = f"{code} {error}" if code else error
            suppress_address(conn, sub.email_key, "bounced", detail, now)
            conn.execute(memberships.update().where(
                memberships.c.subscriber_id == sub.id,
                memberships.c.status.in_(("active", "pending")),
            ).values(status="bounced", changed_at=now))

    @guarded
    def mark_expired(self, delivery_id: int, *, error: str, now: datetime) -> None:
        """End a "sending" row as "expired": its retry window ran out."""
        self._mark(delivery_id, now, status="expired", reason="retries exhausted",
                   last_error=_clip(error), finished_at=_utc(now))

    @guarded
    def release_claims(self, worker_id: str) -> int:
        """Put every "sending" row of ``worker_id`` back to "queued"; returns how many."""
        with self.write() as conn:
            result = conn.execute(deliveries.update().where(
                deliveries.c.claimed_by == worker_id, deliveries.c.status == "sending",
            ).values(status="queued", claimed_by=None, lease_until=None))
            return int(result.rowcount)

    @guarded
    def delivery_summary(self, edition_id: int) -> dict[str, int]:
        """How many ledger rows of the edition are in each status."""
        query = (sa.select(deliveries.c.status, sa.func.count())
                 .where(deliveries.c.edition_id == edition_id).group_by(deliveries.c.status))
        with self.read() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    @guarded
    def delivery_reasons(self, edition_id: int) -> dict[str, dict[str, int]]:
        """Counts per status and reason ("" where a status has no reason, e.g. sent)."""
        query = (sa.select(deliveries.c.status, deliveries.c.reason, sa.func.count())
                 .where(deliveries.c.edition_id == edition_id)
                 .group_by(deliveries.c.status, deliveries.c.reason))
        out: dict[str, dict[str, int]] = defaultdict(dict)
        with self.read() as conn:
            for status, reason, n in conn.execute(query):
                out[status][reason or ""] = int(n)
        return dict(out)

    @guarded
    def next_wakeup(self, edition_id: int) -> datetime | None:
        """When a row of the edition next becomes claimable; None when all are terminal."""
        d = deliveries
        queued = sa.select(sa.func.min(d.c.next_attempt_at)).where(
            d.c.edition_id == edition_id, d.c.status == "queued")
        sending = sa.select(sa.func.min(d.c.lease_until)).where(
            d.c.edition_id == edition_id, d.c.status == "sending")
        with self.read() as conn:
            times = [conn.execute(queued).scalar(), conn.execute(sending).scalar()]
        found = [t for t in times if t is not None]
        return min(found) if found else None

    @guarded
    def get_delivery(self, delivery_id: int) -> dict[str, Any]:
        """Every column of one ledger row (for reports and tests)."""
        with self.read() as conn:
            row = conn.execute(sa.select(deliveries)
                               .where(deliveries.c.id == delivery_id)).mappings().first()
        if row is None:
            raise StoreError(f"The store has no delivery {delivery_id}; check the id.")
        return dict(row)
