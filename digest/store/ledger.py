"""The delivery ledger: one row per (edition, subscriber), claimed by workers, ended once.

Rows are created when an edition is published (:meth:`PublishingMixin.publish_edition` in
``publishing.py``, which moves the edition to "sending" in the same transaction).

States: queued -> sending -> sent | sent_unconfirmed | failed | expired, or skipped at claim
time when the address unsubscribed, bounced, complained or was suppressed after the edition
was published.

Claims are fenced: every claim increments the row's ``claim_token``, and a :class:`Claim`
carries it with the claiming worker and its lease. Every mark (sent, deferred, failed,
expired, sent-unconfirmed) is conditional on the row still being "sending" under that worker
and token, so a worker whose lease ran out (stopped, paused, cut off) and whose row another
worker took over records nothing; what it learned is kept in ``delivery_events`` instead
(a late 250 is evidence, never a second "sent").
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import StoreError

from .consent import lower_everywhere
from .engine import Database, guarded, translate_error
from .ledger_sql import (
    LATE_EVENT,
    SENT_ROWS_PG,
    SQLiteLedger,
    claim_update,
    clip,
    due_query,
    fence_where,
    late_results,
)
from .schema import ACTIVE, deliveries, delivery_events, subscribers, suppressions

__all__ = ["Claim", "Fence", "LedgerMixin", "suppress_address"]

#: How often a claim looks for rows whose lease ran out while queued rows remain (a crashed
#: worker's rows come back at most this long after their lease, sooner when the queue ends).
LOST_CHECK = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Claim:
    """A ledger row a worker now owns: who to send to, and the stable Message-ID to use.

    ``sections`` is None for "every section"; ``attempts`` counts tries before this one
    (deferrals, permanent failures and leases that ran out). Pass the claim itself to the
    marks: ``worker_id`` and ``token`` fence them.
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
    #: The fence: who claimed the row, the row's claim counter after this claim, and when
    #: the claim's lease runs out (the worker sends nothing on it after that).
    worker_id: str = ""
    token: int = 0
    lease_until: datetime | None = None
    #: Ambiguous outcomes the row had before this claim (see ``[delivery] max_ambiguous``).
    ambiguous: int = 0


class Fence(Protocol):
    """What a mark needs of a claim (a :class:`Claim` is one)."""

    @property
    def delivery_id(self) -> int: ...
    @property
    def worker_id(self) -> str: ...
    @property
    def token(self) -> int: ...


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def suppress_address(conn: Connection, email_key: str, reason: str, detail: str | None,
                     now: datetime) -> None:
    """Add ``email_key`` to the suppression list unless it is there already."""
    exists = conn.execute(sa.select(suppressions.c.id)
                          .where(suppressions.c.email_key == email_key)).first()
    if exists is None:
        conn.execute(suppressions.insert().values(
            email_key=email_key, reason=reason, detail=detail[:500] if detail else None,
            created_at=now))


# The hot statements are built once: constructing one per call costs more than running it
# on SQLite. PostgreSQL runs them through SQLAlchemy (a group commit of "sent" is one
# statement over unnest'ed arrays, ``SENT_ROWS_PG``); SQLite runs the same statements,
# compiled once, on the DBAPI cursor (``SQLiteLedger``).
class LedgerMixin(Database):
    """Store methods for publishing an edition and moving its ledger rows."""

    @guarded
    def claim_deliveries(self, edition_id: int, *, worker_id: str, limit: int,
                         now: datetime, lease: timedelta) -> list[Claim]:
        """Move up to ``limit`` due rows to "sending" for ``worker_id`` and return them;
        rows whose address is no longer eligible become "skipped" instead."""
        now = _utc(now)
        if self.is_sqlite:
            return self._claim_sqlite(edition_id, worker_id, limit, now, lease)
        claims: list[Claim] = []
        params: dict[str, Any] = {"b_edition": edition_id, "b_now": now}
        with self.write() as conn:

            def update(kind: str, ids: list[int], values: dict[str, Any]) -> None:
                conn.execute(claim_update(kind), {"b_ids": ids, **values})

            for lost in self._claim_order(edition_id, now):
                query = due_query(lost, False)
                while len(claims) < limit:
                    want = limit - len(claims)
                    rows = conn.execute(query, {**params, "b_limit": want}).all()
                    claims.extend(_take(update, edition_id, rows, worker_id, now, lease))
                    if len(rows) < want:
                        break
        return claims

    def _claim_sqlite(self, edition_id: int, worker_id: str, limit: int, now: datetime,
                      lease: timedelta) -> list[Claim]:
        fast = self._sqlite_ledger()
        claims: list[Claim] = []
        now_s = fast.stamp(now)
        with self._raw_write() as cur:

            def update(kind: str, ids: list[int], values: dict[str, Any]) -> None:
                fast.update(cur, kind, ids, values)

            for lost in self._claim_order(edition_id, now):
                while len(claims) < limit:
                    want = limit - len(claims)
                    rows = fast.claim_rows(cur, lost, edition_id, now_s, want)
                    claims.extend(_take(update, edition_id, rows, worker_id, now, lease))
                    if len(rows) < want:
                        break
        return claims

    def _claim_order(self, edition_id: int, now: datetime) -> tuple[bool, bool]:
        """Which due query a claim runs first: rows whose lease ran out (True) when
        ``LOST_CHECK`` has passed since this store last looked for them in the edition,
        else queued rows, then lost ones only if the queue cannot fill the claim."""
        checked: dict[int, datetime] = self.__dict__.setdefault("_lost_checked", {})
        last = checked.get(edition_id)
        if last is None or now < last or now - last >= LOST_CHECK:
            checked[edition_id] = now
            return (True, False)
        return (False, True)

    def _sqlite_ledger(self) -> SQLiteLedger:
        fast: SQLiteLedger | None = self.__dict__.get("_sqlite_fast")
        if fast is None:
            fast = self.__dict__["_sqlite_fast"] = SQLiteLedger(self.engine.dialect)
        return fast

    @contextmanager
    def _raw_write(self, *, single: bool = False) -> Iterator[Any]:
        """A BEGIN IMMEDIATE transaction on a pooled SQLite DBAPI connection, committed on
        success; driver errors leave as :class:`StoreError`. With ``single`` the caller
        runs one statement, which SQLite makes a transaction of its own (one step less)."""
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if single:
                yield cur
                return
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(dbapi_error):
                    cur.execute("ROLLBACK")
                raise
        except dbapi_error as error:
            wrapped = sa.exc.DBAPIError.instance(None, None, error, dbapi_error)
            raise translate_error(wrapped, self.engine.url) from None
        finally:
            raw.close()

    def _late(self, conn: Connection, claim: Fence, kind: str, detail: str | None,
              now: datetime) -> None:
        """Keep what a worker learned after its claim was lost (``delivery_events``)."""
        exists = conn.execute(sa.select(deliveries.c.id)
                              .where(deliveries.c.id == claim.delivery_id)).first()
        if exists is not None:
            conn.execute(LATE_EVENT, {"b_id": claim.delivery_id, "b_kind": kind,
                                      "b_worker": claim.worker_id, "b_token": claim.token,
                                      "b_detail": clip(detail), "b_now": now})

    def _mark(self, claim: Fence, now: datetime, late: str, detail: str | None,
              **values: Any) -> bool:
        now = _utc(now)
        with self.write() as conn:
            result = conn.execute(deliveries.update().where(
                *fence_where(claim.delivery_id, claim.worker_id, claim.token),
            ).values(claimed_by=None, lease_until=None, **values))
            if result.rowcount:
                return True
            self._late(conn, claim, late, detail, now)
            return False

    @guarded
    def mark_sent(self, claim: Fence, *, response: str, now: datetime) -> bool:
        """Record the relay's 250 for a row still claimed by ``claim`` (its worker and
        token); otherwise keep it as a "late-sent" event and return False."""
        return self.mark_sent_many([(claim, response)], now=now) == 1

    @guarded
    def mark_sent_many(self, results: Sequence[tuple[Fence, str]], *, now: datetime) -> int:
        """:meth:`mark_sent` for many ``(claim, response)`` pairs in one transaction
        (one commit instead of one per message); returns how many rows it ended. Results
        whose claim was lost meanwhile become "late-sent" events (on SQLite written just
        after the update, which is a transaction of its own)."""
        if not results:
            return 0
        when = _utc(now)
        if self.is_sqlite:
            fast = self._sqlite_ledger()
            # One chunk is one statement, a transaction of its own; the rare late results
            # are looked up and kept after it (evidence only: a claim lost stays lost).
            with self._raw_write(single=len(results) <= fast.SENT_CHUNK) as cur:
                return fast.mark_sent(cur, results, when)[0]
        params = {"b_ids": [c.delivery_id for c, _ in results],
                  "b_tokens": [c.token for c, _ in results],
                  "b_workers": [c.worker_id for c, _ in results],
                  "b_responses": [clip(r) for _, r in results], "b_now": when}
        with self.write() as conn:
            ended = int(conn.execute(SENT_ROWS_PG, params).rowcount)
            if ended < len(results):
                rows = conn.execute(
                    sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.claim_token)
                    .where(deliveries.c.id.in_([c.delivery_id for c, _ in results]))).all()
                late = late_results(results, rows)
                if late:
                    conn.execute(LATE_EVENT, [
                        {"b_id": c.delivery_id, "b_kind": "late-sent", "b_worker": c.worker_id,
                         "b_token": c.token, "b_detail": clip(r), "b_now": when}
                        for c, r in late])
            return ended

    @guarded
    def mark_deferred(self, claim: Fence, *, error: str, retry_at: datetime, now: datetime,
                      ambiguous: bool = False) -> bool:
        """Put a row still claimed by ``claim`` back to "queued" until ``retry_at``,
        counting the attempt (and, with ``ambiguous``, the ambiguous outcome); False (and a
        "late-deferred" event) when the claim was lost."""
        extra = {"ambiguous": deliveries.c.ambiguous + 1} if ambiguous else {}
        return self._mark(claim, now, "late-deferred", error, status="queued",
                          next_attempt_at=_utc(retry_at), last_error=clip(error),
                          attempts=deliveries.c.attempts + 1, **extra)

    @guarded
    def mark_unconfirmed(self, claim: Fence, *, error: str, now: datetime) -> bool:
        """End a row still claimed by ``claim`` as "sent_unconfirmed": its last outcome was
        ambiguous (the relay may hold the message) and it had been retried ``max_ambiguous``
        times after ambiguous outcomes already."""
        return self._mark(claim, now, "late-unconfirmed", error, status="sent_unconfirmed",
                          reason="outcome unknown", last_error=clip(error),
                          finished_at=_utc(now), attempts=deliveries.c.attempts + 1,
                          ambiguous=deliveries.c.ambiguous + 1)

    @guarded
    def mark_failed(self, claim: Fence, *, code: int | None, error: str, suppress: bool,
                    now: datetime) -> bool:
        """End a row still claimed by ``claim`` as "failed"; with ``suppress`` the address
        is suppressed and its memberships become "bounced". False (and a "late-failed"
        event, nothing suppressed) when the claim was lost."""
        now = _utc(now)
        delivery_id = claim.delivery_id
        with self.write() as conn:
            result = conn.execute(deliveries.update().where(
                *fence_where(delivery_id, claim.worker_id, claim.token),
            ).values(status="failed", reason=f"smtp {code}" if code else "refused",
                     last_code=code, last_error=clip(error), finished_at=now,
                     claimed_by=None, lease_until=None, attempts=deliveries.c.attempts + 1))
            if not result.rowcount:
                self._late(conn, claim, "late-failed",
                           f"{code} {error}" if code else error, now)
                return False
            if not suppress:
                return True
            sub = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email_key)
                .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                .where(deliveries.c.id == delivery_id)).one()
            detail = f"{code} {error}" if code else error
            suppress_address(conn, sub.email_key, "bounced", detail, now)
            lower_everywhere(conn, sub.id, "bounced", actor="system", cause="delivery-refused",
                             detail={"delivery_id": delivery_id, "code": code,
                                     "reply": clip(error)}, now=now)
            return True

    @guarded
    def mark_expired(self, claim: Fence, *, error: str, now: datetime) -> bool:
        """End a row still claimed by ``claim`` as "expired": its retry window ran out."""
        return self._mark(claim, now, "late-expired", error, status="expired",
                          reason="retries exhausted", last_error=clip(error),
                          finished_at=_utc(now))

    @guarded
    def expire_overdue(self, edition_id: int, *, window: timedelta,
                       now: datetime) -> tuple[int, int]:
        """End the rows of the edition whose retry window (``window`` from their first
        attempt) ended before ``now`` and that nobody holds: queued rows, and "sending" rows
        whose lease ran out. A row that had an ambiguous outcome (the relay may hold a copy)
        ends "sent_unconfirmed", as the worker ends it when the window runs out under it;
        any other ends "expired" (a "sending" row a crashed process left is among these: its
        claim does not say whether DATA had begun). Returns (expired, unconfirmed). The
        scheduler's pass and ``worker`` call it for every unfinished edition, so a row ends
        even if nobody claims it again. Walks the claim index (edition_id, status, ...)."""
        now = _utc(now)
        d = deliveries
        cutoff = now - window
        overdue = (d.c.edition_id == edition_id,
                   sa.or_(d.c.status == "queued",
                          sa.and_(d.c.status == "sending", d.c.lease_until <= now)),
                   d.c.first_attempt_at <= cutoff)
        with self.write() as conn:
            unconfirmed = conn.execute(d.update().where(*overdue, d.c.ambiguous > 0).values(
                status="sent_unconfirmed", reason="outcome unknown", finished_at=now,
                claimed_by=None, lease_until=None,
                last_error=sa.func.coalesce(d.c.last_error, "retry window ran out"))).rowcount
            expired = conn.execute(d.update().where(*overdue).values(
                status="expired", reason="retries exhausted", finished_at=now,
                claimed_by=None, lease_until=None,
                last_error=sa.func.coalesce(d.c.last_error, "retry window ran out"))).rowcount
            return int(expired), int(unconfirmed)

    @guarded
    def release_claims(self, worker_id: str, *, edition_id: int | None = None) -> int:
        """Put the "sending" rows of ``worker_id`` (of one edition, if given) back to
        "queued", untouched; returns how many. Only the run that claimed them calls this:
        rows another process left behind come back when their lease runs out."""
        where = [deliveries.c.claimed_by == worker_id, deliveries.c.status == "sending"]
        if edition_id is not None:
            where.append(deliveries.c.edition_id == edition_id)
        with self.write() as conn:
            result = conn.execute(deliveries.update().where(*where).values(
                status="queued", claimed_by=None, lease_until=None))
            return int(result.rowcount)

    @guarded
    def late_replies(self, edition_id: int) -> list[dict[str, Any]]:
        """The edition's ``delivery_events`` (replies that came after their claim was lost),
        oldest first: delivery_id, kind, worker, claim_token, detail, created_at."""
        e = delivery_events
        query = (sa.select(e.c.delivery_id, e.c.kind, e.c.worker, e.c.claim_token,
                           e.c.detail, e.c.created_at)
                 .join(deliveries, deliveries.c.id == e.c.delivery_id)
                 .where(deliveries.c.edition_id == edition_id).order_by(e.c.id))
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

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


def _take(update: Callable[[str, list[int], dict[str, Any]], None], edition_id: int,
          rows: Sequence[Sequence[Any]], worker_id: str, now: datetime,
          lease: timedelta) -> list[Claim]:
    """Claims for the due ``rows`` (columns as ``due_query`` selects them): rows of
    addresses no longer eligible become "skipped", the others "sending" for ``worker_id``;
    ``update(kind, ids, values)`` runs ``claim_update(kind)`` for them."""
    skipped: dict[str, list[int]] = defaultdict(list)
    fresh: list[int] = []
    lost: list[int] = []
    claims: list[Claim] = []
    lease_until = now + lease
    for (id_, subscriber_id, status, attempts, first, message_id, email, name, attributes,
         member_status, sections, suppressed, token, ambiguous) in rows:
        if member_status != ACTIVE:
            skipped[member_status or "unsubscribed"].append(id_)
            continue
        if suppressed is not None:
            skipped["suppressed"].append(id_)
            continue
        reclaimed = status == "sending"
        (lost if reclaimed else fresh).append(id_)
        claims.append(Claim(
            delivery_id=id_, edition_id=edition_id, subscriber_id=subscriber_id,
            email=email, name=name,
            sections=frozenset(sections) if sections is not None else None,
            attributes=dict(attributes or {}), attempts=attempts + (1 if reclaimed else 0),
            first_attempt_at=first or now, message_id=message_id, worker_id=worker_id,
            token=token + 1, lease_until=lease_until, ambiguous=ambiguous))
    for reason, ids in skipped.items():
        update("skip", ids, {"b_reason": reason, "b_now": now})
    taken = {"b_worker": worker_id, "b_lease": lease_until, "b_now": now}
    if fresh:
        update("fresh", fresh, taken)
    if lost:
        update("lost", lost, taken)
    return claims
