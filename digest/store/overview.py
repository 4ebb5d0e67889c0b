"""What an operator asks the store: which published editions still have rows waiting."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from .engine import Database, guarded
from .schema import NON_TERMINAL, deliveries, editions, lists

__all__ = ["OpenEdition", "OverviewMixin"]


@dataclass(frozen=True, slots=True)
class OpenEdition:
    """A published edition with ledger rows not yet terminal; ``counts`` per status."""

    edition_id: int
    list_name: str
    date: date
    seq: int
    counts: dict[str, int]


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
