"""A relay that misbehaves, with real `send` processes and a relay process that logs every
message it stores: greylisting (451 at RCPT on each first attempt), mailboxes that answer
450 until the retry window ends, and a relay that crashes and restarts in the middle of a
send. From the relay's log: nobody lost, repeats within the
messages that were in DATA when the relay died, one Message-ID per reader; every row ends
terminal and `send` exits 0."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from .fault_harness import Ledger, check_delivery, reader, write_config

pytestmark = pytest.mark.faults
pytest_plugins = ["store_backends"]

SEED = 20261130
POOL = 3


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_greylisting_and_a_mailbox_that_stays_busy(tmp_path: Path, store_url: str, db: Ledger,
                                                   relay_factory, runner_factory) -> None:
    """Greylisting (451 on each first attempt, 4 readers in 10) delays but never repeats;
    three mailboxes that answer 450 on every attempt do not hold `send` past `send_wait`
    (it returns, saying they wait, never "delivered"); `status` shows them waiting (exit 0),
    then past their retry window (exit 3), and the final pass expires them."""
    readers = 90
    busy = frozenset({reader(1), reader(2), reader(4)})
    relay = relay_factory("--greylist", r"[0369]@",
                          "--defer", "^(" + "|".join(re.escape(a) for a in busy) + ")$")
    config = write_config(tmp_path, relay, readers=readers, pool=POOL, delivery={
        "send_wait": '"2s"', "retry_window": '"12s"'})
    runner = runner_factory(config, store_url)
    send = runner.run("send", timeout=120)
    assert send.popen.returncode == 0, send.describe()
    assert "Traceback" not in send.err()
    out = " ".join(send.out().split())
    assert "is not finished" in out and "3 wait for a retry" in out, out
    assert "delivered" not in out.replace("Delivery report", "")
    at_return = {r.email: r.status for r in db.rows()}
    assert {a for a, s in at_return.items() if s == "queued"} == busy  # within their window
    status = runner.run("status", timeout=60)  # what an operator sees: rows wait, in time
    assert status.popen.returncode == 0, status.describe()
    assert "queued" in status.out(), status.out()

    # Past the window nobody has finished them yet: `status` says so with exit 3.
    first_try = min(e.at for e in relay.events("greylist") if e.rcpt in busy)
    time.sleep(max(0.0, first_try + 12.5 - time.time()))
    late = runner.run("status", timeout=60)
    assert late.popen.returncode == 3, late.describe()

    final = runner.run("worker", "--once", "--poll", "30", timeout=120)  # expires them
    assert final.popen.returncode == 0, final.describe()
    rows, _ = check_delivery(relay, db, readers, max_copies=1, expired=busy)
    greylisted = {reader(i) for i in range(readers) if i % 10 in (0, 3, 6, 9)}
    grey = [e.rcpt for e in relay.events("greylist") if e.rcpt not in busy]
    assert sorted(grey) == sorted(greylisted)  # each exactly once, then accepted
    assert {r.email for r in rows if r.attempts >= 1} >= greylisted | busy
    assert all(n > 1 for a, n in Counter(e.rcpt for e in relay.events("greylist")).items()
               if a in busy)  # retried until the window ended


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_relay_crashes_and_restarts_mid_send(tmp_path: Path, store_url: str, db: Ledger,
                                             relay_factory, runner_factory) -> None:
    """Three restarts at seeded random points: the relay crashes once the final dot of one
    reader's message has arrived but before storing it (the client wrote the whole message
    and never hears back: nobody has it), crashes once it has stored another's but before
    its 250 (the reader has it), and is killed (SIGKILL) once more at a random moment."""
    readers = 240
    rng = random.Random(f"{SEED}:restart")
    before, after = (reader(i) for i in rng.sample(range(20, readers - 60), 2))
    kill_at = rng.randint(20, readers - 60)
    relay = relay_factory("--delay", "0.05",  # each 250 comes 50 ms after the message
                          "--crash-before-store", f"^{re.escape(before)}$",
                          "--crash-after-store", f"^{re.escape(after)}$")
    config = write_config(tmp_path, relay, readers=readers, pool=POOL)
    send = runner_factory(config, store_url).start("send")
    killed = False
    while send.alive():
        if relay.dead():
            relay.restart(down=rng.uniform(0.3, 1.5))
        elif not killed and relay.stored() >= kill_at:
            relay.restart(down=rng.uniform(0.3, 1.5))
            killed = True
        time.sleep(0.01)
    assert send.wait(5) == 0, send.describe()
    assert "Traceback" not in send.err()
    assert relay.restarts == 3 and killed
    assert [e.rcpt for e in relay.events("crash")] == sorted([before, after], key=lambda a: (
        [e.rcpt for e in relay.events("crash")].index(a)))

    # Only a message stored but not answered when the relay died can arrive twice: at most
    # one per connection per restart. The one that never reached the relay's store must be
    # sent again: its reader has nothing, whatever the ledger says.
    answered = {(e.session, e.message_id) for e in relay.events("replied")}
    unanswered = {e.rcpt for e in relay.events("stored")
                  if (e.session, e.message_id) not in answered}
    rows, copies = check_delivery(relay, db, readers,
                                  max_copies=lambda a: 1 + (a in unanswered))
    repeats = sum(n - 1 for n in copies.values())
    assert repeats <= POOL * relay.restarts, copies.most_common(8)
    assert copies[before] == 1 and {r.status for r in rows if r.email == before} == {"sent"}
    assert after in unanswered and copies[after] <= 2
