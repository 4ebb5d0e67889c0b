"""kill -9 in the middle of a send, then `send` again: nobody skipped, and repeats no more
than the rows left "sending", nor two per connection (one on the wire, one whose "sent" was
waiting for its group commit)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from crash_sender import build
from smtp_servers import FaultHandler, smtp_server

from digest.config import DeliverySettings
from digest.deliver import deliver_edition
from digest.models import Edition, Story
from digest.store import open_store

HERE = Path(__file__).resolve().parent
POOL = 4
SUBSCRIBERS = 80


@pytest.mark.parametrize("resume_as", ["crash-worker", "another-worker"])
async def test_sigkill_mid_send_then_resume(tmp_path: Path, resume_as: str) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    emails = [f"reader{i:03d}@example.org" for i in range(SUBSCRIBERS)]
    with open_store(url) as store:
        for addr in emails:
            store.add_subscriber("daily", addr)
        record = store.record_edition(Edition(
            list_name="daily", date=date(2026, 3, 2), subject="Crash test", preheader="",
            lead=Story(id="l", section="Politics", headline="Lead", is_lead=True),
            sections=()))
        store.publish_edition(record.id, message_id_domain="news.example.org",
                              now=datetime.now(UTC))

    # The server stores each message, then holds its 250 for a while: at any instant up to
    # POOL messages are on the server without their result in the ledger, plus up to POOL
    # accepted ones whose "sent" is being group-committed.
    async with smtp_server(FaultHandler(hold=0.05)) as srv:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "crash_sender.py"), url, str(record.id), srv.host,
            str(srv.port), str(POOL), "2.0", env=env, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"ready"
        async with asyncio.timeout(30):
            while len(srv.handler.received) < SUBSCRIBERS // 3:
                await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        received_at_kill = len(srv.handler.received)

        with open_store(url) as store:
            at_kill = store.delivery_summary(record.id)
            assert at_kill.get("sent", 0) < SUBSCRIBERS  # it really died mid-send
            assert at_kill.get("sending", 0) >= 1
            delivery = DeliverySettings(message_timeout=5.0)
            report = await deliver_edition(record.id, store=store, build=build, relay=None,
                                           smtp_addr=srv.addr, delivery=delivery,
                                           worker_id=resume_as, pool_size=POOL,
                                           max_wait=10.0)
            assert store.delivery_summary(record.id) == {"sent": SUBSCRIBERS}
        await asyncio.sleep(0)

    copies = srv.handler.by_rcpt()
    assert set(copies) == set(emails), "a subscriber was skipped"
    repeats = sum(n - 1 for n in copies.values())
    assert repeats <= 2 * POOL, (repeats, received_at_kill, at_kill)
    assert repeats <= at_kill.get("sending", 0)
    assert report.sent == SUBSCRIBERS - at_kill.get("sent", 0)
    # A repeated message is the same message: same Message-ID in both copies.
    ids: Counter[str] = Counter()
    for r in srv.handler.received:
        ids[email.message_from_bytes(r.data, policy=email.policy.default)["Message-ID"]] += 1
    assert sorted(ids.values()) == sorted(copies.values())
    if resume_as == "another-worker":
        assert report.elapsed >= 0.5  # had to wait for the dead worker's lease
