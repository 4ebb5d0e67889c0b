"""Database engines and transactions: SQLite (WAL, foreign keys, BEGIN IMMEDIATE) or PostgreSQL.

Every error SQLAlchemy raises is turned into :class:`~digest.errors.StoreError` here, with a
message that never carries bound parameters (subscriber addresses) or the URL's password.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from digest.errors import StoreError

__all__ = ["MAX_ROW_ID", "Database", "create_engine", "describe_url", "guarded",
           "translate_error"]

F = TypeVar("F", bound=Callable[..., Any])
BUSY_TIMEOUT_MS = 30_000
#: The largest row id every backend holds: ids are INTEGER columns, 32 bits on PostgreSQL
#: (64 on SQLite). A larger number names no row; callers that take an id from a person (a
#: URL, an argument) refuse it before asking the store.
MAX_ROW_ID = 2**31 - 1


def describe_url(url: URL) -> str:
    """The URL without its password, for messages."""
    return url.render_as_string(hide_password=True)


def create_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    :raises StoreError: for a URL that is not SQLite or PostgreSQL, or a missing driver.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise StoreError("The database URL cannot be parsed; check database.url or "
                         "DIGEST_DATABASE_URL.") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = sa.create_engine(parsed, hide_parameters=True, pool_pre_ping=True,
                                      future=True)
        except ImportError:
            raise StoreError("PostgreSQL needs the psycopg driver; install digest[postgres] "
                             "(pip install 'psycopg[binary]').") from None
        event.listen(engine, "connect", _pg_session)
        return engine
    raise StoreError(f"The database URL names {backend!r}; digest supports sqlite:/// and "
                     "postgresql+psycopg:// URLs.")


#: A PostgreSQL session that sits in an open transaction this long is ended by the server
#: (``idle_in_transaction_session_timeout``), unless the URL's ``options`` set another
#: value: a process paused mid-transaction (SIGSTOP, a VM pause) then stops holding row
#: locks, so the claims it held can be taken over once their lease runs out. Every
#: transaction digest opens is short and never waits on anything but the database.
IDLE_IN_TRANSACTION = "15s"


def _pg_session(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("SELECT current_setting('idle_in_transaction_session_timeout')")
        (current,) = cur.fetchone()
        if str(current) in ("0", "0ms"):
            cur.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")
    finally:
        cur.close()
    dbapi_conn.commit()


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:")
    if not memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "hide_parameters": True,
        "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    }
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit
        # (the SQLAlchemy "pysqlite serializable" recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A transaction that will write takes the write lock up front: a deferred one
        # that upgrades later gets SQLITE_BUSY at once instead of waiting its turn.
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


#: Conditions of the database itself, whatever the statement: PostgreSQL SQLSTATEs
#: (Appendix A of its manual) and SQLite primary result codes (sqlite.org/rescode.html).
_PG_STATES = {"25006": "read-only", "53100": "full", "42501": "privilege"}
_SQLITE_CODES = {8: "read-only", 13: "full", 10: "io"}  # READONLY, FULL, IOERR


def _condition(orig: object) -> str | None:
    """"read-only", "full", "io" or "privilege" when the driver error says so, else None."""
    state = getattr(orig, "sqlstate", None)
    if state in _PG_STATES:
        return _PG_STATES[state]
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_CODES.get(code & 0xFF)
    return None


def translate_error(error: exc.SQLAlchemyError, url: URL | None = None) -> StoreError:
    """A :class:`StoreError` for ``error`` whose text names no parameter, address or password.

    A database that takes no writes says which condition and what to do: read-only (a
    PostgreSQL standby or ``default_transaction_read_only``, SQLSTATE 25006; a SQLite file
    opened read-only), full (SQLSTATE 53100; SQLITE_FULL), a failed write to a SQLite file
    (SQLITE_IOERR, e.g. no room for the write-ahead log) or a login without the right to
    change the tables (SQLSTATE 42501).
    """
    where = f" ({describe_url(url)})" if url is not None else ""
    orig = getattr(error, "orig", None)
    kind = type(orig).__name__ if orig is not None else type(error).__name__
    condition = _condition(orig)
    if condition == "read-only":
        return StoreError(f"The database{where} is read-only ({kind}): it takes no changes; "
                          "point database.url at a writable server (the primary) or make the "
                          "file writable, then run the command again.")
    if condition in ("full", "io"):
        what = "is full" if condition == "full" else "could not write to its files"
        return StoreError(f"The database{where} {what} ({kind}); free space on its disk (and "
                          "check the disk works), then run the command again.")
    if condition == "privilege":
        return StoreError(f"The database{where} refused this login a change ({kind}); grant "
                          "the login in database.url the right to change digest's tables, "
                          "then run the command again.")
    if isinstance(error, exc.OperationalError):
        # Driver messages for connection failures and locks carry hosts and table names,
        # never parameters; PostgreSQL DETAIL lines can carry values, so keep line one only.
        first = str(orig).strip().splitlines()[0] if orig is not None and str(orig) else kind
        if "@" in first:
            first = kind
        return StoreError(f"The database{where} could not complete the operation ({first}); "
                          "check that it is reachable and not locked, then try again.")
    if isinstance(error, exc.IntegrityError):
        return StoreError(f"The database{where} refused a change that breaks a constraint "
                          f"({kind}); run the command again, and report it if it repeats.")
    if isinstance(error, exc.DataError):
        return StoreError(f"The database{where} refused a value it cannot hold ({kind}), such "
                          f"as an id above {MAX_ROW_ID}; check the number given.")
    if isinstance(error, exc.ProgrammingError | exc.InternalError):
        return StoreError(f"The database{where} rejected a statement ({kind}); the schema may "
                          "be from another version of digest: upgrade it by opening the store.")
    return StoreError(f"The database{where} failed ({kind}); check database.url and that the "
                      "database is running.")


def guarded(func: F) -> F:
    """Decorate a store method so SQLAlchemy errors leave it as :class:`StoreError` (and
    a number too large for the driver, which SQLite's raises as :class:`OverflowError`)."""

    @functools.wraps(func)
    def wrapper(self: Database, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(self, *args, **kwargs)
        except exc.SQLAlchemyError as error:
            raise translate_error(error, self.engine.url) from None
        except OverflowError:
            raise StoreError(f"A number given to the database is larger than it can hold "
                             f"(ids go up to {MAX_ROW_ID}); check the number.") from None

    return wrapper  # type: ignore[return-value]


class Database:
    """An engine plus the two kinds of transaction the store uses: reading and writing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite, False for PostgreSQL."""
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A short read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(immediate=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
