"""Schema versions: bring a database to the newest revision with Alembic, configured in code.

A migration is one transaction, serialised against every other process and thread:

- PostgreSQL: ``pg_advisory_xact_lock`` is the transaction's first statement, so a second
  process waits for the first to commit, then reads the revision again and finds it at head.
  PostgreSQL's DDL is transactional.
- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the revision is read;
  SQLite's DDL is transactional too, and Alembic is handed the open transaction so it never
  commits half-way (its SQLite default would commit after each revision). Foreign keys are
  switched off for the migration and checked before the commit, the procedure SQLite's
  documentation gives for schema changes (https://www.sqlite.org/lang_altertable.html,
  "Making Other Kinds Of Table Schema Changes"), so a batch-mode table rebuild never
  cascades a delete.
- Inside one process a lock serialises Alembic itself, whose ``context`` and ``op`` proxies
  are process-wide globals.

A killed migration therefore leaves the database as it was. A database with digest's tables
but no ``alembic_version`` (left by versions before this rule) is rebuilt when those tables
are empty, and refused with one sentence when they hold rows.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS", "MIGRATION_LOCK_KEY", "current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
#: pg_advisory_xact_lock key serialising migrations of one PostgreSQL database.
MIGRATION_LOCK_KEY = 7243511

log = logging.getLogger("digest.store")
_ALEMBIC = threading.Lock()


# Alembic (about a tenth of a command's start-up) is imported only when a database is not at
# the head revision: the usual open compares the newest revision in the migration files, read
# as text, with the one in ``alembic_version``, and goes on when they agree.
_REVISION = re.compile(r"""^revision\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def _head_from_files() -> str | None:
    """The one revision no migration file names as its ``down_revision`` (None when the
    files do not give exactly one, e.g. a merge: Alembic decides then)."""
    revisions, downs = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            return None
        revisions.add(found.group(1))
        downs.update(_DOWN_REVISION.findall(text))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def _at(engine: Engine, head: str) -> bool:
    """True when ``alembic_version`` holds exactly ``head`` (read without Alembic)."""
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except sa.exc.DBAPIError:  # no such table yet, or unreadable: Alembic decides
        return False
    return [r[0] for r in rows] == [head]


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest revision this version of digest knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: head) in one serialised transaction,
    keeping every row. Returns at once when the database is already there.

    :raises StoreError: the database is at a revision this digest does not know, or has
        digest's tables with rows but no revision.
    """
    if revision == "head":
        head = _head_from_files()
        if head is not None and _at(engine, head):  # the usual case: Alembic not loaded
            return
    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:  # the usual case: no lock, no transaction
        return
    with _ALEMBIC, engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # outside any transaction: SQLite ignores this pragma inside one
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys=OFF")
        try:
            conn = conn.execution_options(immediate=True)  # BEGIN IMMEDIATE on SQLite
            with conn.begin():
                if not sqlite:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
                _migrate_locked(conn, target, revision, sqlite)
        finally:
            if sqlite and not conn.invalidated:
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys=ON")


def _migrate_locked(conn: Connection, target: str, revision: str, sqlite: bool) -> None:
    current = _revision(conn)
    if current == target:  # another process migrated while this one waited for the lock
        return
    if current is not None and not _known(current):
        raise StoreError(f"The database is at schema revision {current!r}, which this "
                         "version of digest does not know (it was made by a newer one); "
                         "upgrade digest or point database.url at another database.")
    if current is None:
        _clear_leftover_tables(conn)
    log.info("migrating the database schema from %s to %s", current or "empty", target)
    from alembic import command

    cfg = _config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    if sqlite:
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
        if broken is not None:
            raise StoreError(f"Migrating the database to {target} would break a foreign key "
                             f"in table {broken[0]}; nothing was changed. Report this with "
                             "the digest version.")


def _clear_leftover_tables(conn: Connection) -> None:
    """Drop digest's tables when a database has them without a revision and they are empty
    (a first migration interrupted by a digest older than the one-transaction rule)."""
    from .schema import metadata

    present = set(sa.inspect(conn).get_table_names())
    ours = [t for t in metadata.sorted_tables if t.name in present]
    if not ours:
        return
    with_rows = [t.name for t in ours
                 if conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first()]
    if with_rows:
        raise StoreError(
            f"The database has digest's tables ({', '.join(t.name for t in ours)}) with rows "
            f"in {', '.join(with_rows)} but no schema revision (no alembic_version table), so "
            "digest cannot tell which migrations it needs; restore it from a backup, or "
            "export what you need and point database.url at a new database.")
    log.warning("the database had digest's tables but no schema revision and no rows (an "
                "interrupted first migration); recreating them")
    for table in reversed(ours):
        table.drop(conn)
