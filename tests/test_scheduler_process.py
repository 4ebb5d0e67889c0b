"""Real `schedule` processes against one database: three lists due in the same second on a
fresh database all go out; one scheduler per database (a second exits 0, a standby takes over
when the first dies, a scheduler that loses its lock pauses until it has it again); a clean
stop; the service manager is told READY, WATCHDOG and STOPPING; the log is one ISO-stamped
line per event."""

from __future__ import annotations

import signal
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner
from service_env import ISO_LINE, ListSpec, recording_server, start, wait_for, write_project

from digest.cli import main
from digest.store import Lease, open_store

pytest_plugins = ["store_backends"]


def _lease(url: str) -> Lease | None:
    with open_store(url, migrate=False) as store:
        return store.get_lease("scheduler")


def _holder(url: str) -> str | None:
    lease = _lease(url)
    return lease.holder if lease is not None and lease.held else None


@contextmanager
def _notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket in Linux's abstract namespace, as NOTIFY_SOCKET names it."""
    name = f"digest-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(30)
    try:
        yield "@" + name, sock
    finally:
        sock.close()


def _expect(sock: socket.socket, key: str) -> str:
    """The next datagram that carries ``key`` (e.g. "READY=1")."""
    while True:
        message = sock.recv(4096).decode()
        if key in message.split("\n"):
            return message


def test_three_lists_due_the_same_second_on_a_fresh_database_all_go_out(
        tmp_path: Path, store_url: str) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%H:%M:%S")
    names = ("alpha", "bravo", "charlie")
    with recording_server() as srv:
        config = write_project(tmp_path, relay=srv,
                               lists={n: ListSpec(readers=5, send_time=due) for n in names})
        proc = start(config, "schedule", db_url=store_url)
        wait_for(lambda: len(srv.handler.received) >= 15, 90, "three lists' editions", proc)
        with open_store(store_url, migrate=False) as store:  # the "sent" line is written last
            wait_for(lambda: all(not store.unfinished_editions(n) and store.list_editions(n)
                                 for n in names), 30, "the ledger")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert srv.handler.by_rcpt() == {f"{n}{i:04d}@example.org": 1 for n in names
                                     for i in range(5)}
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert all(ISO_LINE.match(ln) for ln in lines), lines
    assert sum("migrating the database schema from empty" in ln for ln in lines) == 1
    assert not any("Context impl" in ln or "Running upgrade" in ln for ln in lines)
    start_line = next(ln for ln in lines if "started: next runs:" in ln)
    assert all(f"{n} " in start_line for n in names) and "UTC (" in start_line
    for n in names:  # one line per edition event, the delivery with its counts
        delivered = [ln for ln in lines if f" list={n} delivered: " in ln]
        assert len(delivered) == 1, lines
        assert delivered[0].endswith("sent=5 unconfirmed=0 failed=0 waiting=0 skipped=0")
        moves = [ln.split(" -> ")[1].split(" ")[0] for ln in lines
                 if f" list={n} date=" in ln and " -> " in ln]
        assert moves == ["draft", "sending", "sent"], lines
    assert "stopped on SIGTERM" in lines[-1]
    assert not any(" ERROR " in ln or " WARNING " in ln for ln in lines), lines


def test_one_scheduler_per_database_across_work_dirs_with_standby_and_takeover(
        tmp_path: Path, store_url: str) -> None:
    later = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")  # nothing fires
    lists = {"daily": ListSpec(readers=1, send_time=later)}
    first = write_project(tmp_path / "one", lists=lists, relay=None)
    second = write_project(tmp_path / "two", lists=lists, relay=None)  # another work_dir
    open_store(store_url).close()
    with _notify_socket() as (path_a, sock_a), _notify_socket() as (path_c, sock_c):
        a = start(first, "schedule", db_url=store_url,
                  env={"NOTIFY_SOCKET": path_a, "WATCHDOG_USEC": "400000"})
        c = None
        try:
            assert "STATUS=scheduling 1 list(s) as " in _expect(sock_a, "READY=1")
            _expect(sock_a, "WATCHDOG=1")
            holder_a = _holder(store_url)
            assert holder_a is not None and holder_a.split(":")[1] == str(a.pid)

            b = start(second, "schedule", db_url=store_url)
            out, err = b.communicate(timeout=60)
            assert b.returncode == 0, err
            assert out.startswith("Another scheduler is running for this database (held by "
                                  f"{holder_a}, last heartbeat")
            assert out.strip().endswith("so this one exits; start it with --standby to wait "
                                        "and take over.")
            assert out.count(". ") == 0 and "Traceback" not in err  # one sentence

            c = start(second, "schedule", "--standby", db_url=store_url,
                      env={"NOTIFY_SOCKET": path_c})
            assert "STATUS=standby (held by " in _expect(sock_c, "READY=1")
            a.send_signal(signal.SIGKILL)  # dies holding the lock: it must expire first
            a.communicate(timeout=10)
            wait_for(lambda: _holder(store_url) not in (None, holder_a), 30, "the takeover", c)
            holder_c = _holder(store_url)
            assert holder_c is not None and holder_c.split(":")[1] == str(c.pid)

            # The standby becomes the scheduler; a lock taken from it (its heartbeats did not
            # reach the database for a lease) pauses it until it holds the lock again.
            engine = sa.create_engine(store_url)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE leases SET expires_at = :t WHERE name = "
                                     "'scheduler'"), {"t": datetime(2000, 1, 1)})
            engine.dispose()
            with open_store(store_url, migrate=False) as store:
                assert store.acquire_lease("scheduler", "intruder", ttl=timedelta(seconds=2))[0]
                wait_for(lambda: (lease := store.get_lease("scheduler")) is not None
                         and lease.holder == holder_c, 30, "the lock back", c)

            code, shown = _status(second, store_url)
            assert code == 0 and f"scheduler: alive ({holder_c}, last heartbeat" in shown

            c.send_signal(signal.SIGTERM)
            _, err_c = c.communicate(timeout=30)
            assert c.returncode == 0, err_c
        finally:
            for proc in (a, c):
                if proc is not None and proc.returncode is None:
                    proc.kill()
                    proc.communicate()
    lines = [ln for ln in err_c.splitlines() if ln.strip()]
    assert all(ISO_LINE.match(ln) for ln in lines), lines
    events = [ln.split(": ", 1)[1] for ln in lines]
    assert events[0].startswith("standby: the scheduler lock is held by " + holder_a)
    assert events[1] == f"took over the scheduler lock as {holder_c}"
    assert any(e.startswith("this scheduler lost the lock (held by intruder") for e in events)
    assert any(e.startswith("this scheduler holds the lock again") for e in events)
    assert events[-1].startswith(f"Scheduler {holder_c} stopped on SIGTERM")
    lease = _lease(store_url)
    assert lease is not None and lease.state == "released"
    code, shown = _status(second, store_url)
    assert f"scheduler: stopped ({holder_c} let go of the lock at" in shown


def test_the_service_manager_hears_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    later = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    config = write_project(tmp_path, lists={"daily": ListSpec(readers=1, send_time=later)},
                           relay=None)
    with _notify_socket() as (path, sock):
        proc = start(config, "schedule", db_url=url,
                     env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"})
        try:
            ready = _expect(sock, "READY=1")
            assert f"MAINPID={proc.pid}" in ready.split("\n")
            for _ in range(3):
                _expect(sock, "WATCHDOG=1")
            proc.send_signal(signal.SIGTERM)
            assert "STATUS=stopping (SIGTERM)" in _expect(sock, "STOPPING=1")
            proc.communicate(timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0


def _status(config: Path, url: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["status", "--config", str(config)],
                                env={"DIGEST_DATABASE_URL": url})
    return result.exit_code, result.stdout


def test_worker_and_serve_tell_the_service_manager_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    config = write_project(tmp_path, lists={"daily": ListSpec(readers=1)}, relay=None)
    port = _free_port()
    with _notify_socket() as (path_w, sock_w), _notify_socket() as (path_s, sock_s):
        env = {"WATCHDOG_USEC": "300000"}
        worker = start(config, "worker", "--poll", "0.2", db_url=url,
                       env={**env, "NOTIFY_SOCKET": path_w})
        serve = start(config, "serve", "--port", str(port), db_url=url,
                      env={**env, "NOTIFY_SOCKET": path_s})
        try:
            assert "STATUS=worker " in _expect(sock_w, "READY=1")
            _expect(sock_w, "WATCHDOG=1")
            assert f"STATUS=serving on 127.0.0.1:{port}" in _expect(sock_s, "READY=1")
            _expect(sock_s, "WATCHDOG=1")
            for proc, sock in ((worker, sock_w), (serve, sock_s)):
                proc.send_signal(signal.SIGTERM)
                _expect(sock, "STOPPING=1")
                _, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, err
                lines = [ln for ln in err.splitlines() if ln.strip()]
                assert lines and all(ISO_LINE.match(ln) for ln in lines), lines
        finally:
            for proc in (worker, serve):
                if proc.returncode is None:
                    proc.kill()
                    proc.communicate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
