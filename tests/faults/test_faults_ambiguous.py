"""Ambiguous outcomes: the relay stores a message and then drops the connection without
answering the final dot (every time, for some readers), or answers only after the message
timeout (the first time, for others). A real `send` may repeat such a message only
``[delivery] max_ambiguous`` times: from the relay's log no reader gets more than
1 + max_ambiguous copies, a row whose every attempt dropped ends "sent_unconfirmed" (so the
send ends without waiting out the retry window) after exactly max_ambiguous retries, a
reader whose first reply came late is retried once and recorded "sent", and everyone else
gets exactly one copy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .fault_harness import Ledger, check_delivery, reader, write_config

pytestmark = pytest.mark.faults
pytest_plugins = ["store_backends"]

READERS = 60
DROP = r"^daily000[0-4]@"  # dropped after the final dot on every attempt
SLOW = r"^daily001[0-2]@"  # the first 250 comes 2.5 s late (the message timeout is 1 s)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("max_ambiguous", [None, 2], ids=["default", "max_ambiguous=2"])
def test_drop_after_the_final_dot_and_late_replies_are_capped(
        tmp_path: Path, store_url: str, db: Ledger, relay_factory, runner_factory,
        max_ambiguous: int | None) -> None:
    cap = max_ambiguous or 1  # the documented default
    relay = relay_factory("--drop-after-dot", DROP, "--slow-reply", SLOW, "--slow", "2.5",
                          "--slow-times", "1")
    extra = {"max_ambiguous": str(max_ambiguous)} if max_ambiguous else {}
    config = write_config(tmp_path, relay, readers=READERS, delivery=extra)
    send = runner_factory(config, store_url).run("send", timeout=90)
    assert send.popen.returncode == 0, send.describe()
    assert "Traceback" not in send.err()

    dropped = {reader(i) for i in range(READERS) if re.search(DROP, reader(i))}
    slow = {reader(i) for i in range(READERS) if re.search(SLOW, reader(i))}
    rows, copies = check_delivery(
        relay, db, READERS, max_copies=lambda a: 1 + cap if a in dropped | slow else 1)
    status = {r.email: r.status for r in rows}
    assert {status[a] for a in dropped} == {"sent_unconfirmed"}, status
    assert {copies[a] for a in dropped} == {1 + cap}  # retried max_ambiguous times, no more
    assert {status[a] for a in slow} == {"sent"} and {copies[a] for a in slow} == {2}
    assert {a for a, s in status.items() if s == "sent_unconfirmed"} <= dropped | slow
    assert {e.rcpt for e in relay.events("dropped")} == dropped
    assert "unconfirmed" in send.out().lower(), send.out()
