"""The store's schema: migrations match the tables, upgrades keep rows, errors hide addresses."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from digest.errors import StoreError
from digest.store import Store, open_store
from digest.store.engine import create_engine, guarded
from digest.store.migrate import current_revision, head_revision, upgrade
from digest.store.schema import metadata, subscribers

SECRET_ADDRESS = "very.private.person@example.org"

pytest_plugins = ["store_backends"]


def test_migrations_create_exactly_the_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []
    assert current_revision(store.engine) == head_revision() == "0007_scale"


def test_upgrade_from_0001_keeps_rows(store_url: str) -> None:
    engine = create_engine(store_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        assert not sa.inspect(conn).has_table("deliveries")
        conn.execute(sa.text("INSERT INTO lists (id, name, title, created_at) "
                             "VALUES (1, 'daily', 'Daily', :t)"), {"t": datetime(2026, 1, 1)})
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, email_key, name, attributes, created_at, "
            "updated_at) VALUES (1, 'Ann@example.org', 'ann@example.org', 'Ann', '{\"city\": "
            "\"Lyon\"}', :t, :t)"), {"t": datetime(2026, 1, 1)})
        conn.execute(sa.text(
            "INSERT INTO memberships (list_id, subscriber_id, status, sections, source, "
            "created_at, changed_at) VALUES (1, 1, 'unsubscribed', '[\"World\"]', 'import', "
            ":t, :t)"), {"t": datetime(2026, 1, 2)})
    engine.dispose()

    with open_store(store_url) as opened:
        member = opened.get_membership("daily", "ann@example.org")
        assert current_revision(opened.engine) == head_revision()
        assert opened.delivery_summary(1) == {}
    assert member is not None
    assert (member.email, member.name, member.status) == ("Ann@example.org", "Ann",
                                                          "unsubscribed")
    assert member.sections == frozenset({"World"})
    assert member.attributes == {"city": "Lyon"}


def test_reopening_at_head_is_quick_and_safe(store_url: str) -> None:
    with open_store(store_url) as first:
        first.add_subscriber("daily", "ann@example.org")
    with open_store(store_url) as second:
        assert second.count_members("daily") == {"active": 1}
    with open_store(store_url, migrate=False) as third:
        assert third.count_members("daily") == {"active": 1}


def test_opening_a_store_at_head_does_not_load_alembic(store_url: str) -> None:
    import subprocess
    import sys

    from digest.store.migrate import _head_from_files

    assert _head_from_files() == head_revision()
    code = ("import sys\nfrom digest.store import open_store\n"
            "open_store(sys.argv[1]).close()\nprint('alembic' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code, store_url], capture_output=True,
                           text=True, check=True).stdout.strip() for _ in range(2)]
    assert runs == ["True", "False"]  # the first open migrates; the second finds the head


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'sub' / 'digest.db'}") as opened:
        with opened.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        with pytest.raises(StoreError), opened.write() as conn:
            guarded(lambda _s: conn.execute(sa.text(
                "INSERT INTO memberships (list_id, subscriber_id, status, source, created_at, "
                "changed_at) VALUES (99, 99, 'active', 'x', '2026-01-01', '2026-01-01')")))(opened)


def test_database_errors_never_show_addresses(store: Store, caplog) -> None:
    store.add_subscriber("daily", SECRET_ADDRESS, name="Secret Person")
    caplog.set_level(logging.DEBUG)

    def duplicate(self: Store) -> None:
        with self.write() as conn:
            conn.execute(subscribers.insert().values(
                email=SECRET_ADDRESS, email_key=SECRET_ADDRESS, name="Secret Person",
                attributes={}, created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1)))

    with pytest.raises(StoreError) as caught:
        guarded(duplicate)(store)
    text = str(caught.value)
    assert "constraint" in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE memberships CASCADE" if not store.is_sqlite
                             else "DROP TABLE memberships"))
    with pytest.raises(StoreError) as missing:
        store.set_status("daily", SECRET_ADDRESS, "unsubscribed")
    for shown in (text, str(missing.value), caplog.text):
        assert "very.private" not in shown
        assert "Secret Person" not in shown


def test_bad_urls_are_store_errors_without_passwords() -> None:
    with pytest.raises(StoreError, match="sqlite:/// and postgresql"):
        open_store("mysql://u:p@localhost/db")
    with pytest.raises(StoreError, match="cannot be parsed"):
        open_store("not a url")
    with pytest.raises(StoreError) as caught:
        open_store("postgresql+psycopg://digest:s3cr3t-pw@127.0.0.1:1/digest")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "could not complete" in str(caught.value)


def test_a_database_from_a_newer_digest_is_one_clear_error(tmp_path) -> None:
    import sqlalchemy as sa

    from digest.errors import StoreError
    from digest.store import open_store

    url = f"sqlite:///{tmp_path / 'newer.db'}"
    open_store(url).close()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(StoreError, match="revision '0999'.*newer"):
        open_store(url)
