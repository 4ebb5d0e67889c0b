"""SIGTERM and SIGINT during a rate-limited send of thousands of readers, with real `send`,
`worker` and `schedule` processes and a recording SMTP server: each stops within the
message timeout, exits 0 with one line, leaves every row terminal or queued, and the
restart sends exactly the rest (counted from what the server received)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from service_env import ISO_LINE, ListSpec, recording_server, start, wait_for, write_project
from smtp_servers import FaultHandler, ServerInfo

from digest import pipeline
from digest.config import load_settings
from digest.store import open_store

pytest_plugins = ["store_backends"]

RATE = 400  # messages per second through the relay: 2000 readers take 5 s


def _everyone(name: str, n: int) -> dict[str, int]:
    return {f"{name}{i:04d}@example.org": 1 for i in range(n)}


def _stop(proc: subprocess.Popen[str], sig: signal.Signals, srv: ServerInfo,
          after: int) -> tuple[str, str, float]:
    """Wait until the server has ``after`` messages, send ``sig``, wait for the exit."""
    wait_for(lambda: len(srv.handler.received) >= after, 60, f"{after} messages", proc)
    sent_at = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return out, err, time.monotonic() - sent_at


def _ledger(url: str) -> dict[str, int]:
    with open_store(url, migrate=False) as store:
        [edition] = store.list_editions("daily", limit=5)
        return store.delivery_summary(edition.id)


@pytest.mark.parametrize(("sig", "readers"), [(signal.SIGTERM, 2000), (signal.SIGINT, 800)],
                         ids=["SIGTERM", "SIGINT"])
def test_send_stops_cleanly_and_a_restart_sends_the_rest_once(
        tmp_path: Path, sig: signal.Signals, readers: int) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    # Each message spends 20 ms in DATA at the server: at the signal, some are in flight.
    with recording_server(FaultHandler(delay=0.02)) as srv:
        config = write_project(tmp_path, lists={"daily": ListSpec(readers=readers)},
                               relay=srv, rate=RATE)
        proc = start(config, "send", db_url=url)
        out, err, took = _stop(proc, sig, srv, after=300)
        assert proc.returncode == 0, err
        at_stop = srv.handler.by_rcpt()
        assert "Traceback" not in err
        assert f"Stopped on request ({sig.name})" in out
        assert took < 5.0  # the message timeout bounds it; in practice a few DATA phases
        ledger = _ledger(url)
        assert set(ledger) <= {"sent", "queued"}, ledger  # nothing left "sending"
        assert ledger["sent"] == sum(at_stop.values()) == len(at_stop)  # in DATA = recorded
        assert 300 <= ledger["sent"] < readers - 100

        again = start(config, "send", db_url=url)
        out2, err2 = again.communicate(timeout=60)
        assert again.returncode == 0, err2
        assert "was delivered" in out2
    assert srv.handler.by_rcpt() == _everyone("daily", readers)  # nothing lost, nothing twice
    assert _ledger(url) == {"sent": readers}


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_worker_stops_cleanly_on_sigterm_with_postgresql(tmp_path: Path, store_url: str) -> None:
    n = 600
    with recording_server(FaultHandler(delay=0.02)) as srv:
        config = write_project(tmp_path, lists={"daily": ListSpec(readers=n)}, relay=srv,
                               rate=RATE)
        settings = load_settings(config, env={"DIGEST_DATABASE_URL": store_url,
                                              "DIGEST_SECRET_KEY": "k" * 32})
        with open_store(store_url) as store:  # publish the edition the worker will deliver
            lst = settings.get_list("daily")
            pipeline.sync_subscriber_files(settings, lst, store)
            built = asyncio.run(pipeline.build_edition(settings, lst, store=store))
            record = store.record_edition(built.edition)
            assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                         now=datetime.now(UTC)) == n
        proc = start(config, "worker", "--poll", "0.5", db_url=store_url)
        _, err, took = _stop(proc, signal.SIGTERM, srv, after=150)
        assert proc.returncode == 0, err
        at_stop = srv.handler.by_rcpt()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert all(ISO_LINE.match(ln) for ln in lines), lines
        assert any("stopped on SIGTERM" in ln for ln in lines), lines
        assert took < 5.0
        ledger = _ledger(store_url)
        assert set(ledger) <= {"sent", "queued"} and ledger["sent"] == len(at_stop)

        again = start(config, "worker", "--once", db_url=store_url)
        _, err2 = again.communicate(timeout=60)
        assert again.returncode == 0, err2
    assert srv.handler.by_rcpt() == _everyone("daily", n)
    assert _ledger(store_url) == {"sent": n}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_schedule_stops_a_running_edition_cleanly_and_a_restart_finishes_it_once(
        tmp_path: Path, sig: signal.Signals) -> None:
    """A real `schedule` sending 2000 readers at 400/s is stopped by the signal systemd
    (SIGTERM) or a terminal (SIGINT) sends: exit 0, one line saying so, nothing left
    "sending"; a restarted `schedule` (what a service manager does) sends exactly the rest."""
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    n = 2000
    due = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%H:%M:%S")
    with recording_server(FaultHandler(delay=0.02)) as srv:
        config = write_project(tmp_path, relay=srv, rate=RATE,
                               lists={"daily": ListSpec(readers=n, send_time=due)})
        proc = start(config, "schedule", db_url=url)
        _, err, took = _stop(proc, sig, srv, after=300)
        assert proc.returncode == 0, err
        at_stop = srv.handler.by_rcpt()
        assert "Traceback" not in err and " ERROR " not in err, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert all(ISO_LINE.match(ln) for ln in lines), lines
        stopped = [ln for ln in lines if f"stopped on {sig.name}" in ln]
        assert len(stopped) == 1 and stopped[0] == lines[-1], lines  # one line, the last
        assert took < 5.0
        ledger = _ledger(url)
        assert set(ledger) <= {"sent", "queued"} and ledger["sent"] == len(at_stop), ledger
        assert 300 <= ledger["sent"] < n - 100

        again = start(config, "schedule", db_url=url)  # its start pass finishes the rows
        wait_for(lambda: len(srv.handler.received) >= n, 60, "the rest of the edition", again)
        with open_store(url, migrate=False) as store:
            wait_for(lambda: not store.unfinished_editions("daily"), 30, "the ledger")
        time.sleep(0.5)  # a second copy, if any, would arrive now
        again.send_signal(signal.SIGTERM)
        _, err2 = again.communicate(timeout=30)
        assert again.returncode == 0, err2
    assert srv.handler.by_rcpt() == _everyone("daily", n)  # nothing lost, nothing twice
    assert _ledger(url) == {"sent": n}
