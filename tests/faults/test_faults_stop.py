"""SIGSTOP past the lease (a frozen VM, Ctrl-Z, a long pause): a real `worker` on
PostgreSQL is stopped while it holds claims (some messages in DATA, the rest buffered),
another `worker` takes the edition over once those claims' lease ran out and finishes it,
then the first is continued. Fencing means the first can neither send its buffered claims
nor record anything: from the relay's log, every reader gets at most one copy more than
the messages that were in DATA at the moment of the stop (only those can arrive twice), the
first worker's late results are kept as events, and every row ends terminal."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.store.schema import delivery_events

from .fault_harness import Ledger, check_delivery, publish, wait_until, write_config

pytestmark = pytest.mark.faults
pytest_plugins = ["store_backends"]

SEED = 20261130
READERS = 60
POOL = 3
MARGIN = 0.2  # seconds for a DATA command written before the stop to reach the relay's log


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_sigstop_past_the_lease_sends_no_buffered_claim(
        tmp_path: Path, store_url: str, db: Ledger, relay_factory, runner_factory) -> None:
    rng = random.Random(f"{SEED}:sigstop")
    relay = relay_factory("--delay", "0.3")  # each 250 comes 0.3 s after the message
    config = write_config(tmp_path, relay, readers=READERS, pool=POOL)
    publish(config, db, READERS)
    runner = runner_factory(config, store_url)

    first = runner.start("worker", "--poll", "0.3")
    at = rng.randint(3, 20)
    wait_until(lambda: relay.stored() >= at and db.claims(first.pid) >= POOL, 60,
               f"{at} messages and claims in hand", first)
    time.sleep(rng.uniform(0, 0.3))
    first.popen.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    held = db.held_by(first.pid)
    in_data = {e.rcpt for e in relay.events("data") if e.at <= stopped_at + MARGIN} & held
    assert held - in_data, "the stopped worker held no buffered claim"
    assert len(in_data) <= 2 * POOL  # one on the wire, one waiting for its commit

    # Another worker finishes the edition: the queue at once, the held rows once their
    # lease (4 s) has run out.
    second = runner.run("worker", "--once", "--poll", "30", timeout=120)
    assert second.popen.returncode == 0, second.describe()
    assert db.summary().keys() <= {"sent", "sent_unconfirmed"}, db.summary()

    first.popen.send_signal(signal.SIGCONT)  # it wakes up with claims it no longer owns
    time.sleep(2.0)
    first.popen.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, first.describe()
    assert "Traceback" not in first.err()

    final = runner.run("worker", "--once", timeout=60)
    assert final.popen.returncode == 0, final.describe()
    rows, copies = check_delivery(relay, db, READERS,
                                  max_copies=lambda a: 1 + (a in in_data))
    assert set(copies) == {r.email for r in rows}
    with db.store.engine.connect() as conn:  # what the first worker learned too late
        late = conn.execute(sa.select(delivery_events.c.kind, delivery_events.c.worker)).all()
    assert all(f":{first.pid}:" in worker for _, worker in late), late
    assert all(kind.startswith("late-") for kind, _ in late), late
