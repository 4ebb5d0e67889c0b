"""Fixtures of the crash-and-fault suite (``-m faults``); the harness is fault_harness.py,
the relay process relay_server.py. Scenario modules add ``pytest_plugins =
["store_backends"]`` for ``store_url`` (SQLite, or a fresh PostgreSQL schema)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import fault_harness
from .fault_harness import Ledger, Relay, Runner


@pytest.fixture
def relay_factory(tmp_path: Path) -> Iterator[Callable[..., Relay]]:
    """``relay_factory("--delay", "0.01", ..., folder=None)`` starts a relay process
    (relay_server.py) with those options, its log in ``folder`` (default: a new folder in
    tmp_path); every relay started is stopped at the end of the test."""
    yield from fault_harness.relay_factory(tmp_path)


@pytest.fixture
def runner_factory(tmp_path: Path) -> Iterator[Callable[[Path, str], Runner]]:
    """``runner_factory(config, db_url)``: a :class:`Runner` of `run_digest.py` processes;
    whatever still runs at the end of the test is killed."""
    yield from fault_harness.runner_factory(tmp_path)


@pytest.fixture
def db(store_url: str) -> Iterator[Ledger]:
    """The ledger of ``store_url`` (migrated), read through one open store."""
    yield from fault_harness.ledger_fixture(store_url)


@pytest.fixture
def pg_url() -> Iterator[str | None]:
    """A URL to a fresh PostgreSQL schema, as ``store_url``'s postgresql case gives, for a
    scenario that runs both backends side by side; None without PostgreSQL (under CI that
    fails the test instead, as every PostgreSQL test does)."""
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from store_backends import pg_admin_url  # a plugin by now: the module names it

    try:
        admin_url = pg_admin_url()
    except pytest.skip.Exception:  # not CI: the scenario runs on SQLite alone
        yield None
        return
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError:
        engine.dispose()
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at DIGEST_TEST_DATABASE_URL cannot be reached (CI is set, "
                        "so PostgreSQL tests must run)")
        yield None
        return
    url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()
