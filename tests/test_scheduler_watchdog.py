"""The service manager's watchdog follows the scheduler's progress: WATCHDOG=1 only while the
scheduler's loop dispatches jobs, and the heartbeat in the store with it, so a hung scheduler
stops pinging (systemd restarts it) and looks stale to `status` and to a standby.

The scheduler runs in this process (a thread) with the real store, notify socket and
APScheduler; the test hangs the scheduler's loop by holding the lock its loop takes before
dispatching anything, which leaves the main thread (the one that pings) running."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from service_env import ListSpec, write_project

from digest.config import load_settings
from digest.deliver import StopRequest
from digest.pipeline import scheduler as scheduler_module
from digest.pipeline.scheduler import Liveness, run_scheduler
from digest.store import open_store
from digest.systemd import Notifier


@contextmanager
def _notify_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"digest-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield "@" + name, sock
    finally:
        sock.close()


def _pings(sock: socket.socket, seconds: float) -> int:
    """WATCHDOG=1 datagrams received within ``seconds``."""
    count = 0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        count += "WATCHDOG=1" in message.split("\n")
    return count


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


def test_liveness_goes_stale_without_runs_and_comes_back(caplog) -> None:
    now = [100.0]
    live = Liveness(stale_after=3.0, clock=lambda: now[0])
    assert live.check()
    now[0] += 2.9
    assert live.check()
    now[0] += 0.2
    assert not live.check() and not live.check()
    live.ran()
    assert live.check()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["the scheduler loop has not run for 3 s (hung); no watchdog ping and no "
                      "heartbeat until it runs again"]  # once per stall


def test_a_hung_scheduler_stops_pinging_the_watchdog_and_its_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_project(tmp_path, relay=None, lists={"daily": ListSpec(send_time="03:00")})
    settings = load_settings(config, env={"DIGEST_DATABASE_URL":
                                          f"sqlite:///{tmp_path / 'digest.db'}"})
    made = []
    real_make = scheduler_module._make

    def keep(*args, **kwargs):  # the real scheduler, kept so the test can hang its loop
        made.append(real_make(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(scheduler_module, "_make", keep)
    stop = StopRequest()
    with _notify_socket() as (path, sock), open_store(settings.database_url) as store:
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # 0.1 s
        ended: list[object] = []
        thread = threading.Thread(target=lambda: ended.append(run_scheduler(
            settings, store, stop=stop, notifier=notifier)), daemon=True)
        thread.start()
        try:
            assert _pings(sock, 1.0) >= 5  # running: a ping every 0.1 s
            scheduler = made[0]
            lease = store.get_lease("scheduler")
            assert lease is not None and lease.state == "held"
            with scheduler._jobstores_lock:  # the loop cannot dispatch: hung
                time.sleep(1.2)  # stale after max(3 ticks, 1 s)
                _drain(sock)  # pings sent before it went stale
                assert _pings(sock, 1.0) == 0
                beat = store.get_lease("scheduler").heartbeat_at
                time.sleep(0.7)  # two heartbeats (0.3 s) would have been written
                assert store.get_lease("scheduler").heartbeat_at == beat
            assert _pings(sock, 1.5) >= 5  # the loop runs again: pings resume
        finally:
            stop.request("SIGTERM")
            thread.join(30)
    assert ended and ended[0].state == "stopped"
