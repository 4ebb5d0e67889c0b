"""Opening a fresh store from many processes at once, a migration killed half-way, and a
database left half-migrated by an older digest: every case ends at head, or in one sentence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from digest.errors import StoreError
from digest.store import open_store
from digest.store.engine import create_engine
from digest.store.migrate import current_revision, head_revision
from digest.store.schema import lists, metadata

pytest_plugins = ["store_backends"]

HERE = Path(__file__).resolve().parent


def _child(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    return subprocess.Popen([sys.executable, str(HERE / "store_opener.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _at_head(url: str) -> None:
    engine = create_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_many_processes_open_a_fresh_database_at_once(store_url: str) -> None:
    children = [_child(store_url) for _ in range(3)]
    results = [c.communicate(timeout=60) for c in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "opened"
        assert "Traceback" not in err
    _at_head(store_url)


def test_many_threads_open_a_fresh_database_at_once(store_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def opener() -> None:
        start.wait()
        try:
            open_store(store_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    _at_head(store_url)


def test_a_migration_killed_half_way_leaves_nothing_behind(store_url: str) -> None:
    child = _child(store_url, "3")  # dies as it creates the third table of revision 0001
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            left = set(sa.inspect(conn).get_table_names())
        assert current_revision(engine) is None
    finally:
        engine.dispose()
    assert not left & {t.name for t in metadata.sorted_tables}, left
    with open_store(store_url) as store:  # the next start migrates as if nothing happened
        store.ensure_list("daily", "Daily")
    _at_head(store_url)


def test_empty_tables_without_a_revision_are_rebuilt(store_url: str, caplog) -> None:
    engine = create_engine(store_url)
    with engine.begin() as conn:  # what digest before the one-transaction rule could leave
        metadata.create_all(conn, tables=[lists])
    engine.dispose()
    with open_store(store_url) as store:
        store.ensure_list("daily", "Daily")
    assert "interrupted first migration" in caplog.text
    _at_head(store_url)


def test_tables_with_rows_but_no_revision_are_refused_in_one_sentence(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[lists])
        conn.execute(lists.insert().values(name="daily", title="Daily",
                                           created_at=sa.func.current_timestamp()))
    engine.dispose()
    with pytest.raises(StoreError, match=r"rows in lists but no schema revision") as caught:
        open_store(store_url)
    assert "\n" not in str(caught.value)
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:  # nothing was dropped
            assert conn.execute(sa.select(sa.func.count()).select_from(lists)).scalar() == 1
    finally:
        engine.dispose()


def test_a_read_only_database_says_so_in_one_sentence(store_url: str) -> None:
    open_store(store_url).close()  # migrated while writable
    if store_url.startswith("sqlite"):
        store = open_store(store_url, migrate=False)
        sa.event.listen(store.engine, "connect",
                        lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA query_only=ON"))
        store.engine.dispose()
    else:  # what a hot standby, or a role set read-only, answers (SQLSTATE 25006)
        url = sa.engine.make_url(store_url)
        options = f"{url.query['options']} -cdefault_transaction_read_only=on"
        store = open_store(url.update_query_dict({"options": options}).render_as_string(
            hide_password=False), migrate=False)
    with store, pytest.raises(StoreError) as caught:
        store.add_subscriber("daily", "reader@example.org")
    message = str(caught.value)
    assert " is read-only (" in message and "writable server" in message, message
    assert "reader@example.org" not in message and "schema" not in message
