"""Store fixtures for both backends: SQLite always, PostgreSQL through DIGEST_TEST_DATABASE_URL.

Each PostgreSQL test gets a fresh schema (dropped afterwards) selected with ``search_path``,
so tests never see each other's rows. Under CI (``CI`` set) a missing or unreachable
PostgreSQL fails the test instead of skipping it.

Use in a test module::

    pytest_plugins = ["store_backends"]
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from digest.store import Store, open_store

__all__ = ["pg_admin_url", "store", "store_url"]

PG_ENV = "DIGEST_TEST_DATABASE_URL"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so PostgreSQL tests must run)")
    pytest.skip(reason)


def pg_admin_url() -> str:
    """The PostgreSQL URL from the environment, or skip (fail under CI) without one."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        _unavailable(f"{PG_ENV} is not set")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digest.db'}"
        return
    admin_url = pg_admin_url()
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        _unavailable(f"PostgreSQL at {PG_ENV} cannot be reached ({type(exc.orig).__name__})")
    url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, migrated store on each backend."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
