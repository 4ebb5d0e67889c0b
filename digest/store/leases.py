"""Named leases in the database: one holder at a time, across processes, hosts and folders.

A lease is taken when it is free (never taken, released, or expired), renewed by its holder
before it expires (each renewal is a heartbeat), and released when the holder is done.
Times are the database's clock (PostgreSQL's ``now()``), so hosts with skewed clocks agree
on who holds what; SQLite is one machine, whose clock it uses. The pipeline builds the
scheduler lock and the per-list send lock on this (``digest.pipeline.locks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .engine import Database, guarded
from .schema import leases

__all__ = ["Lease", "LeasesMixin"]


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease row as read at ``now`` (the database's time, UTC).

    ``state`` is "held" (its holder renewed it and it has not expired), "expired" (the
    holder stopped renewing: crashed, hung or cut off) or "released" (the holder let go).
    """

    name: str
    holder: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    released_at: datetime | None
    now: datetime

    @property
    def state(self) -> str:
        if self.released_at is not None:
            return "released"
        return "held" if self.expires_at > self.now else "expired"

    @property
    def held(self) -> bool:
        """True while the holder keeps it."""
        return self.state == "held"

    @property
    def heartbeat_age(self) -> timedelta:
        """How long ago the holder last renewed it."""
        return max(timedelta(0), self.now - self.heartbeat_at)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class LeasesMixin(Database):
    """Store methods for named leases."""

    def _db_now(self, conn: Connection) -> datetime:
        if self.is_sqlite:
            return datetime.now(UTC)
        return _utc(conn.execute(sa.select(sa.func.timezone("UTC", sa.func.now()))).scalar_one())

    def _read_lease(self, conn: Connection, name: str, now: datetime) -> Lease | None:
        row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        if row is None:
            return None
        return Lease(row.name, row.holder, row.acquired_at, row.heartbeat_at, row.expires_at,
                     row.released_at, now)

    @guarded
    def acquire_lease(self, name: str, holder: str, *, ttl: timedelta) -> tuple[bool, Lease]:
        """Take lease ``name`` for ``holder`` for ``ttl`` if nobody holds it.

        A holder cannot take its own lease twice (use :meth:`renew_lease`), so threads of
        one process with one holder id exclude each other too.

        :returns: ``(taken, lease)``; when not taken, ``lease`` shows who holds it.
        """
        with self.write() as conn:
            now = self._db_now(conn)
            values = {"holder": holder, "acquired_at": now, "heartbeat_at": now,
                      "expires_at": now + ttl, "released_at": None}
            insert = (pg_insert if not self.is_sqlite else sqlite_insert)(leases)
            created = conn.execute(
                insert.values(name=name, **values).on_conflict_do_nothing(),
                execution_options={"preserve_rowcount": True}).rowcount
            taken = bool(created) or bool(conn.execute(
                leases.update().where(
                    leases.c.name == name,
                    sa.or_(leases.c.released_at.is_not(None), leases.c.expires_at <= now),
                ).values(**values), execution_options={"preserve_rowcount": True}).rowcount)
            lease = self._read_lease(conn, name, now)
            assert lease is not None
            return taken, lease

    @guarded
    def renew_lease(self, name: str, holder: str, *, ttl: timedelta) -> bool:
        """Extend ``holder``'s lease by ``ttl`` from now (a heartbeat).

        :returns: False when ``holder`` no longer has it (released, or taken over after it
            expired); the holder must then stop what the lease guards.
        """
        with self.write() as conn:
            now = self._db_now(conn)
            result = conn.execute(leases.update().where(
                leases.c.name == name, leases.c.holder == holder,
                leases.c.released_at.is_(None),
            ).values(heartbeat_at=now, expires_at=now + ttl))
            return bool(result.rowcount)

    @guarded
    def release_lease(self, name: str, holder: str) -> bool:
        """Let go of ``holder``'s lease (the row stays, showing who held it last and when).

        :returns: False when ``holder`` did not have it.
        """
        with self.write() as conn:
            now = self._db_now(conn)
            result = conn.execute(leases.update().where(
                leases.c.name == name, leases.c.holder == holder,
                leases.c.released_at.is_(None),
            ).values(released_at=now, expires_at=now))
            return bool(result.rowcount)

    @guarded
    def get_lease(self, name: str) -> Lease | None:
        """Lease ``name`` as it is now, or None when nobody ever took it."""
        with self.read() as conn:
            return self._read_lease(conn, name, self._db_now(conn))
