"""Lists and editions: what each list sent, kept so no story goes out twice and for the archive.

An edition's status and its events are described in ``lifecycle.py``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import StoreError
from digest.models import Edition

from .carried import story_rows
from .engine import Database, guarded
from .publishing import PublishingMixin
from .schema import NON_TERMINAL, deliveries, edition_stories, editions, lists

__all__ = ["EditionRecord", "EditionsMixin", "edition_from_payload", "edition_payload"]


@dataclass(frozen=True, slots=True)
class EditionRecord:
    """An edition as stored: ``status`` is one of ``EDITION_STATUSES`` (draft, approved,
    sending, sent, held, cancelled, missed; see ``lifecycle.py``), read with the ledger so
    that "sending" means rows are still open and "sent" that every row ended; ``payload``
    is the edition as JSON; ``published_at`` is set once ledger rows exist."""

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

    @property
    def published(self) -> bool:
        """True once ledger rows exist (status "sending" or "sent")."""
        return self.published_at is not None

    @property
    def has_stories(self) -> bool:
        """False for the placeholder of an edition that was never built (missed)."""
        return bool(self.payload.get("lead")) or any(
            sec.get("teasers") for sec in self.payload.get("sections", ()))


def edition_payload(edition: Edition) -> dict[str, Any]:
    """The JSON stored for an edition (``Edition.to_json()``, which re-rendering reads back)."""
    return edition.to_json()


def edition_from_payload(data: dict[str, Any]) -> Edition:
    """Rebuild an :class:`Edition` from its stored JSON."""
    return Edition.from_json(data)


def inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key an INSERT of one row created."""
    key = result.inserted_primary_key
    assert key is not None, "an INSERT of one row has a primary key"
    return int(key[0])


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
    return inserted_id(conn.execute(lists.insert().values(
        name=name, title=title or name, created_at=datetime.now(UTC))))


class EditionsMixin(PublishingMixin, Database):
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
        status = row.status
        if status == "sending" and not row.has_open:
            status = "sent"  # the ledger ended it; settle_editions records the move
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
    def list_editions(self, list_name: str | None, *, limit: int = 50,
                      statuses: Collection[str] | None = None) -> list[EditionRecord]:
        """The newest ``limit`` editions of ``list_name`` (None: every list), newest first;
        with ``statuses``, only editions whose stored status is one of them."""
        query = self._edition_query()
        if list_name is not None:
            query = query.where(lists.c.name == list_name)
        if statuses is not None:
            query = query.where(editions.c.status.in_(sorted(statuses)))
        query = query.order_by(editions.c.date.desc(), editions.c.seq.desc(),
                               editions.c.id.desc()).limit(limit)
        with self.read() as conn:
            return [self._record(row) for row in conn.execute(query)]

    @guarded
    def record_edition(self, edition: Edition, *, forced: bool = False,
                       actor: str = "send command", cause: str | None = None,
                       detail: dict[str, Any] | None = None,
                       status: str = "draft") -> EditionRecord:
        """Store ``edition`` and its stories as a draft (event: created by ``actor``).

        An existing live edition of that list and date (any status but cancelled or missed)
        is returned as it is, unless ``forced``, which stores a new one with the next ``seq``
        and cancels older unpublished ones of that date ("superseded").
        ``status`` "missed" records the placeholder of an edition that was never built.
        """
        now = datetime.now(UTC)
        with self.write() as conn:
            lid = list_id(conn, edition.list_name, create=True)
            newest = conn.execute(
                sa.select(editions.c.id, editions.c.seq, editions.c.status)
                .where(editions.c.list_id == lid, editions.c.date == edition.date)
                .order_by(editions.c.seq.desc()).limit(1)).first()
            if newest is not None and newest.status not in ("cancelled", "missed") \
                    and not forced:
                edition_id = newest.id
                logged = []
            else:
                seq = newest.seq + 1 if newest is not None else 1
                edition_id = inserted_id(conn.execute(editions.insert().values(
                    list_id=lid, date=edition.date, seq=seq, subject=edition.subject,
                    payload=edition_payload(edition), created_at=now, status=status,
                )))
                rows = story_rows(edition_id, edition)
                if rows:
                    conn.execute(edition_stories.insert(), rows)
                logged = self._record_created(
                    conn, edition_id, status, actor=actor,
                    cause=cause or ("built" if status == "draft" else None),
                    detail=detail, now=now, supersede=forced)
        self._log_events(logged)
        return self.get_edition(edition_id)
