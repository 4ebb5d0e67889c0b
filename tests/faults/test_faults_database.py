"""The database fails under a running delivery: a full disk under a SQLite `send` (the
process may no longer grow any file: RLIMIT_FSIZE set on the running process, as a full
file system refuses new blocks), and a PostgreSQL failover to a read-only server under a
`worker` (its sessions are terminated and every new one is read-only). The process stops
with one sentence and no traceback; once the database takes writes again, a final
`worker --once` finishes the edition. From the relay's log: nobody lost, repeats no more
than twice the connections (messages in DATA and results waiting for their commit,
together: the DATA gate); every row ends terminal."""

from __future__ import annotations

import random
import resource
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .fault_harness import Ledger, check_delivery, publish, wait_until, write_config

pytestmark = pytest.mark.faults
pytest_plugins = ["store_backends"]

SEED = 20261130
POOL = 3


def _repeats_bound(copies: dict[str, int]) -> None:
    repeats = sum(n - 1 for n in copies.values())
    assert repeats <= 2 * POOL, sorted(copies.items(), key=lambda kv: -kv[1])[:10]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_disk_full_under_a_sqlite_send(tmp_path: Path, store_url: str, db: Ledger,
                                       relay_factory, runner_factory) -> None:
    readers = 240
    rng = random.Random(f"{SEED}:full")
    relay = relay_factory("--delay", "0.02")
    config = write_config(tmp_path, relay, readers=readers, pool=POOL)
    runner = runner_factory(config, store_url)
    send = runner.start("send", pipes=True)  # its output through pipes: only the db is a file
    at = rng.randint(20, 80)
    wait_until(lambda: relay.stored() >= at, 90, f"{at} messages", send)
    resource.prlimit(send.pid, resource.RLIMIT_FSIZE, (1, 1))  # no file of it may grow
    code = send.wait(60)
    err = send.err()
    assert code == 1, send.describe()
    assert "Traceback" not in err
    assert err.count("error: ") == 1, err
    assert "could not write to its files" in err or " is full " in err, err
    assert "free space" in err
    assert len(relay.copies()) < readers  # the fault stopped it half-way

    final = runner.run("worker", "--once", "--poll", "30", timeout=120)  # the disk has room
    assert final.popen.returncode == 0, final.describe()
    _, copies = check_delivery(relay, db, readers, max_copies=2)
    _repeats_bound(copies)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgresql_turns_read_only_under_a_worker(tmp_path: Path, store_url: str,
                                                   db: Ledger, relay_factory,
                                                   runner_factory) -> None:
    readers = 240
    rng = random.Random(f"{SEED}:readonly")
    relay = relay_factory("--delay", "0.02")
    config = write_config(tmp_path, relay, readers=readers, pool=POOL)
    publish(config, db, readers)  # what the `worker` delivers

    # The worker logs in as a role of its own, so the failover touches nobody else.
    role = f"faults_{uuid.uuid4().hex[:10]}"
    schema = make_url(store_url).query["options"].split("=", 1)[1]
    admin_url = make_url(store_url).difference_update_query(["options"])
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for sql in (f"CREATE ROLE {role} LOGIN",
                    f"GRANT USAGE ON SCHEMA {schema} TO {role}",
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO "
                    + role,
                    f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO "
                    + role):
            conn.exec_driver_sql(sql)
    try:
        as_role = make_url(store_url).set(username=role).render_as_string(hide_password=False)
        runner = runner_factory(config, as_role)
        worker = runner.start("worker", "--poll", "0.3")
        at = rng.randint(20, 80)
        wait_until(lambda: relay.stored() >= at, 90, f"{at} messages", worker)
        with admin.connect() as conn:  # the failover: sessions cut, the new server read-only
            conn.exec_driver_sql(f"ALTER ROLE {role} SET default_transaction_read_only = on")
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE usename = '{role}'")
        code = worker.wait(60)
        err = worker.err()
        assert code == 1, worker.describe()
        assert "Traceback" not in err
        assert err.count("error: ") == 1, err
        assert " is read-only (" in err and "writable server" in err, err
        assert len(relay.copies()) < readers

        with admin.connect() as conn:  # writable again
            conn.exec_driver_sql(f"ALTER ROLE {role} RESET default_transaction_read_only")
        final = runner.run("worker", "--once", "--poll", "30", timeout=120)
        assert final.popen.returncode == 0, final.describe()
        _, copies = check_delivery(relay, db, readers, max_copies=2)
        _repeats_bound(copies)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE usename = '{role}'")
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
