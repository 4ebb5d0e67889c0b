"""SIGKILL at random moments: a real `send`, then one `worker` process after another, each
killed at a seeded random point of its delivery (its successor already starting), on
SQLite and on PostgreSQL; a final `worker --once` finishes what the
dead left once their leases run out. The relay answers each message 0.3 s after storing it,
so a kill usually finds messages stored but unanswered.

From the relay's log: nobody lost, one Message-ID per reader, and every repeat belongs to a
row a killed process held "sending" (at most one repeat per kill that held it, and no more
than two per connection of that process: one on the wire, one waiting for its commit);
every row ends terminal. Both backends run side by side."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .fault_harness import Ledger, Proc, Relay, Runner, check_delivery, wait_until, write_config

pytestmark = pytest.mark.faults
pytest_plugins = ["store_backends"]

SEED = 20261130
KILLS = 10  # per backend, plus the last worker of each: 22 in all
READERS = 400
POOL = 3


def _delivering(db: Ledger, proc: Proc) -> bool:
    return db.claims(proc.pid) > 0


def _kill_loop(runner: Runner, relay: Relay, db: Ledger, rng: random.Random,
               kills: int) -> list[tuple[int, set[str]]]:
    """Kill ``kills`` processes at random points of their delivery; returns each victim's
    pid and the addresses it held "sending" when it died."""
    held: list[tuple[int, set[str]]] = []
    current = runner.start("send")
    while True:
        wait_until(lambda c=current: _delivering(db, c), 90, "the victim's first claim",
                   current)
        if len(held) == kills:
            break
        successor = runner.start("worker", "--poll", "0.2")  # starts while the victim works
        # The victim dies after a random number of further messages (1 to 12: a few
        # seconds' work at most, whatever the machine's load) and a random part of a
        # message's time.
        target = relay.stored() + rng.randint(1, 12)
        wait_until(lambda t=target: relay.stored() >= t, 60, f"{target} messages", current)
        time.sleep(rng.uniform(0, 0.3))
        current.kill()
        held.append((current.pid, db.held_by(current.pid)))
        current = successor
    current.kill()  # the last one too: its rows wait for their lease
    held.append((current.pid, db.held_by(current.pid)))
    return held


def _scenario(folder: Path, db_url: str, relay_factory: Any, runner_factory: Any) -> str:
    """The kills and the final pass on one backend; a line saying what happened."""
    folder.mkdir()
    rng = random.Random(f"{SEED}:{db_url.split(':')[0]}")
    relay = relay_factory("--delay", "0.3", folder=folder / "relay")
    config = write_config(folder, relay, readers=READERS, pool=POOL)
    db = Ledger(db_url)
    try:
        runner = runner_factory(config, db_url)
        started = time.monotonic()
        held = _kill_loop(runner, relay, db, rng, KILLS)
        loop_took = time.monotonic() - started
        assert len(relay.copies()) < READERS, "the kills came too late: everyone was reached"
        assert sum(bool(addrs) for _, addrs in held) >= KILLS, "most kills found no claim"

        relay.fast()  # the final pass need not wait 0.3 s per message
        final = runner.run("worker", "--once", "--poll", "30", timeout=120)
        assert final.popen.returncode == 0, final.describe()
        assert "Traceback" not in final.err()

        times_held: Counter[str] = Counter(a for _, addrs in held for a in addrs)
        _, copies = check_delivery(relay, db, READERS, max_copies=lambda a: 1 + times_held[a])
        repeats = sum(n - 1 for n in copies.values())
        assert repeats <= sum(min(len(addrs), 2 * POOL) for _, addrs in held), (repeats, held)
        return (f"{len(held)} kills in {loop_took:.1f} s; {repeats} repeats; "
                f"{len(times_held)} rows held by the dead")
    finally:
        db.close()


def test_sigkill_at_random_moments_loses_nobody(tmp_path: Path, pg_url: str | None,
                                                relay_factory, runner_factory) -> None:
    """SQLite and PostgreSQL side by side (two threads, each with its own relay and
    processes): a process's start is mostly one busy core, so two backends take hardly
    longer than one on a two-core machine. Without PostgreSQL (never under CI), SQLite
    alone."""
    backends = {"sqlite": f"sqlite:///{tmp_path / 'sqlite' / 'digest.db'}"}
    if pg_url is not None:
        backends["postgresql"] = pg_url
    results: dict[str, str | BaseException] = {}

    def run(name: str, url: str) -> None:
        try:
            results[name] = _scenario(tmp_path / name, url, relay_factory, runner_factory)
        except BaseException as exc:  # noqa: BLE001 - reported below, with its backend
            results[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in backends.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, result in results.items():
        if isinstance(result, BaseException):
            result.add_note(f"(on {name})")
            raise result
        print(f"{name}: {result}")
