"""Lists and editions: what each list sent, kept so no story goes out twice and for the archive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import StoreError
from digest.models import Edition

from .carried import story_rows
from .engine import Database, guarded
from .schema import NON_TERMINAL, deliveries, edition_stories, editions, lists

__all__ = ["EditionRecord", "EditionsMixin", "edition_from_payload", "edition_payload"]


@dataclass(frozen=True, slots=True)
class EditionRecord:
    """An edition as stored: ``status`` is "built", "publishing" (ledger rows still open)
    or "published" (every ledger row terminal); ``payload`` is the edition as JSON."""

    id: int
    list_name: str
    date: date
    seq: int
    subject: str
    status: str
    payload: dict[str, Any]
    created_at: datetime
    published_at: datetime | None

    def edition(self) -> Edition:
        """The stored edition rebuilt as a :class:`digest.models.Edition`."""
        return edition_from_payload(self.payload)


def edition_payload(edition: Edition) -> dict[str, Any]:
    """The JSON stored for an edition (``Edition.to_json()``, which re-rendering reads back)."""
    return edition.to_json()


def edition_from_payload(data: dict[str, Any]) -> Edition:
    """Rebuild an :class:`Edition` from its stored JSON."""
    return Edition.from_json(data)


def list_id(conn: Connection, name: str, *, create: bool = False,
            title: str | None = None) -> int:
    """The id of list ``name``; created (titled ``title`` or the name) when ``create``.

    :raises StoreError: when the list does not exist and ``create`` is false.
    """
    found = conn.execute(sa.select(lists.c.id).where(lists.c.name == name)).scalar()
    if found is not None:
        return int(found)
    if not create:
        raise StoreError(f"The store has no list {name!r}; import or add a subscriber to it "
                         "first.")
    return int(conn.execute(lists.insert().values(
        name=name, title=title or name, created_at=datetime.now(UTC))).inserted_primary_key[0])


class EditionsMixin(Database):
    """Store methods for lists and editions."""

    @guarded
    def ensure_list(self, name: str, title: str) -> int:
        """Create list ``name`` (or update its title) and return its id."""
        with self.write() as conn:
            lid = list_id(conn, name, create=True, title=title)
            conn.execute(lists.update().where(lists.c.id == lid, lists.c.title != title)
                         .values(title=title))
            return lid

    @guarded
    def list_names(self) -> list[str]:
        """The names of every list in the store."""
        with self.read() as conn:
            return list(conn.execute(sa.select(lists.c.name).order_by(lists.c.id)).scalars())

    def _edition_query(self) -> sa.Select[Any]:
        open_rows = (sa.select(sa.literal(1)).where(
            deliveries.c.edition_id == editions.c.id,
            deliveries.c.status.in_(sorted(NON_TERMINAL))).exists())
        return (sa.select(editions, lists.c.name.label("list_name"),
                          open_rows.label("has_open"))
                .join(lists, lists.c.id == editions.c.list_id))

    @staticmethod
    def _record(row: Any) -> EditionRecord:
        if row.published_at is None:
            status = "built"
        else:
            status = "publishing" if row.has_open else "published"
        return EditionRecord(id=row.id, list_name=row.list_name, date=row.date, seq=row.seq,
                             subject=row.subject, status=status, payload=row.payload,
                             created_at=row.created_at, published_at=row.published_at)

    @guarded
    def find_edition(self, list_name: str, day: date) -> EditionRecord | None:
        """The newest edition of ``list_name`` for ``day``, or None."""
        query = (self._edition_query()
                 .where(lists.c.name == list_name, editions.c.date == day)
                 .order_by(editions.c.seq.desc()).limit(1))
        with self.read() as conn:
            row = conn.execute(query).first()
        return self._record(row) if row is not None else None

    @guarded
    def get_edition(self, edition_id: int) -> EditionRecord:
        """The edition with id ``edition_id``.

        :raises StoreError: when there is none.
        """
        with self.read() as conn:
            row = conn.execute(self._edition_query().where(editions.c.id == edition_id)).first()
        if row is None:
            raise StoreError(f"The store has no edition {edition_id}; check the edition id.")
        return self._record(row)

    @guarded
    def list_editions(self, list_name: str, *, limit: int = 50) -> list[EditionRecord]:
        """The newest ``limit`` editions of ``list_name``, newest first (for the archive)."""
        query = (self._edition_query().where(lists.c.name == list_name)
                 .order_by(editions.c.date.desc(), editions.c.seq.desc()).limit(limit))
        with self.read() as conn:
            return [self._record(row) for row in conn.execute(query)]

    @guarded
    def record_edition(self, edition: Edition, *, forced: bool = False) -> EditionRecord:
        """Store ``edition`` and its stories; an existing (list, date) edition is returned
        as is unless ``forced``, which stores a new one with the next ``seq``."""
        with self.write() as conn:
            lid = list_id(conn, edition.list_name, create=True)
            newest = conn.execute(
                sa.select(editions.c.id, editions.c.seq)
                .where(editions.c.list_id == lid, editions.c.date == edition.date)
                .order_by(editions.c.seq.desc()).limit(1)).first()
            if newest is not None and not forced:
                edition_id = newest.id
            else:
                seq = newest.seq + 1 if newest is not None else 1
                edition_id = conn.execute(editions.insert().values(
                    list_id=lid, date=edition.date, seq=seq, subject=edition.subject,
                    payload=edition_payload(edition), created_at=datetime.now(UTC),
                )).inserted_primary_key[0]
                rows = story_rows(edition_id, edition)
                if rows:
                    conn.execute(edition_stories.insert(), rows)
        return self.get_edition(edition_id)
