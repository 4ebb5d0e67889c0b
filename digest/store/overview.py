"""What an operator asks the store: which published editions still have rows waiting."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from .engine import Database, guarded
from .schema import NON_TERMINAL, deliveries, editions, lists

__all__ = ["EditionWaits", "LapsedClaims", "OpenEdition", "OverviewMixin"]


@dataclass(frozen=True, slots=True)
class OpenEdition:
    """A published edition with ledger rows not yet terminal; ``counts`` per status."""

    edition_id: int
    list_name: str
    date: date
    seq: int
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class LapsedClaims:
    """Rows a worker still holds as "sending" whose claim lease ran out (the worker
    crashed, was paused or lost the database): they come back to the next claim."""

    worker: str
    rows: int
    lease_until: datetime  # the earliest of their leases


@dataclass(frozen=True, slots=True)
class EditionWaits:
    """What an unfinished edition's waiting rows look like at ``now``: the next retry
    due (queued rows), the oldest claim still open and who holds it, the claims whose
    lease ran out per worker, and how many rows wait past their retry window (first
    attempt longer than ``retry_window`` ago: nobody has run the pass that ends them)."""

    next_retry_at: datetime | None = None
    oldest_claim_at: datetime | None = None
    oldest_claim_by: str | None = None
    lapsed: tuple[LapsedClaims, ...] = field(default_factory=tuple)
    overdue: int = 0


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class OverviewMixin(Database):
    """Store methods for ``status``."""

    @guarded
    def unfinished_editions(self, list_name: str | None = None) -> list[OpenEdition]:
        """Published editions (of ``list_name``, or all) with rows queued or sending,
        oldest first, with their rows counted per status. Each edition is looked up
        through the ledger's (edition_id, status, …) index, whatever its age."""
        waiting = sa.exists().where(deliveries.c.edition_id == editions.c.id,
                                    deliveries.c.status.in_(sorted(NON_TERMINAL)))
        query = (sa.select(editions.c.id, lists.c.name, editions.c.date, editions.c.seq)
                 .join(lists, lists.c.id == editions.c.list_id)
                 .where(editions.c.published_at.is_not(None), waiting)
                 .order_by(editions.c.date, editions.c.id))
        if list_name is not None:
            query = query.where(lists.c.name == list_name)
        with self.read() as conn:
            found = conn.execute(query).all()
            if not found:
                return []
            counts: dict[int, dict[str, int]] = defaultdict(dict)
            for edition_id, status, n in conn.execute(
                    sa.select(deliveries.c.edition_id, deliveries.c.status, sa.func.count())
                    .where(deliveries.c.edition_id.in_([r.id for r in found]))
                    .group_by(deliveries.c.edition_id, deliveries.c.status)):
                counts[edition_id][status] = int(n)
        return [OpenEdition(r.id, r.name, r.date, r.seq, dict(counts[r.id])) for r in found]

    @guarded
    def edition_waits(self, edition_id: int, *, now: datetime,
                      retry_window: timedelta) -> EditionWaits:
        """:class:`EditionWaits` of one edition, read through the ledger's claim index
        (edition_id, status, next_attempt_at, id)."""
        d = deliveries
        now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        cutoff = now - retry_window
        with self.read() as conn:
            next_retry = conn.execute(sa.select(sa.func.min(d.c.next_attempt_at)).where(
                d.c.edition_id == edition_id, d.c.status == "queued")).scalar()
            held = conn.execute(
                sa.select(d.c.claimed_by, d.c.last_attempt_at, d.c.lease_until)
                .where(d.c.edition_id == edition_id, d.c.status == "sending")
                .order_by(d.c.last_attempt_at, d.c.id)).all()
            overdue = conn.execute(sa.select(sa.func.count()).where(
                d.c.edition_id == edition_id, d.c.status.in_(sorted(NON_TERMINAL)),
                d.c.first_attempt_at <= cutoff)).scalar_one()
        lapsed: dict[str, list[datetime]] = defaultdict(list)
        for worker, _, lease_until in held:
            until = _aware(lease_until)
            if until is not None and until <= now:
                lapsed[worker or "?"].append(until)
        oldest = held[0] if held else None
        return EditionWaits(
            next_retry_at=_aware(next_retry),
            oldest_claim_at=_aware(oldest.last_attempt_at) if oldest else None,
            oldest_claim_by=oldest.claimed_by if oldest else None,
            lapsed=tuple(LapsedClaims(w, len(t), min(t)) for w, t in sorted(lapsed.items())),
            overdue=int(overdue))
