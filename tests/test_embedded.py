"""The embedded SMTP server: real SMTP on 127.0.0.1 into a Maildir, in-process and alone."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from digest.config import DeliverySettings
from digest.deliver import deliver_edition, embedded_smtp_server, send_test
from digest.deliver.pool import RelayTarget, SMTPPool
from digest.mail import MessageTemplate, Recipient
from digest.models import Edition, Story
from digest.store import open_store

TEMPLATE = MessageTemplate.build(
    html_segments=("<h1>Morning</h1><p>Hi ", "</p>"), html_slots=("name",),
    text_segments=("Morning\nHi ", "\n"), text_slots=("name",), subject="Édition du matin",
    from_header="The Morning Ledger <briefing@news.example.org>",
    list_id="Morning <daily.news.example.org>")


def message(addr: str, name: str, i: int) -> bytes:
    return TEMPLATE.render(Recipient(
        email=addr, name=name, message_id=f"<e1.s{i}.x@news.example.org>",
        unsubscribe_url=f"https://news.example.org/u/{i}",
        unsubscribe_mailto="mailto:unsub@news.example.org",
        slot_values_html={"name": name}, slot_values_text={"name": name}))


def stored(maildir: Path) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(maildir, create=False)
    return [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)
            for k in box.keys()]  # type: ignore[misc]


async def test_deliver_edition_into_the_maildir(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    with open_store(f"sqlite:///{tmp_path / 'd.db'}") as store:
        for i in range(12):
            store.add_subscriber("daily", f"reader{i}@example.org", name=f"Reader {i}")
        record = store.record_edition(Edition(
            list_name="daily", date=date(2026, 3, 2), subject="x", preheader="",
            lead=Story(id="l", section="Politics", headline="Lead", is_lead=True),
            sections=()))
        store.publish_edition(record.id, message_id_domain="news.example.org",
                              now=datetime.now(UTC))

        def build(claim: object) -> tuple[str, str, bytes]:
            c = claim  # type: ignore[assignment]
            return ("bounces@news.example.org", c.email,  # type: ignore[attr-defined]
                    message(c.email, c.name, c.subscriber_id))  # type: ignore[attr-defined]

        async with embedded_smtp_server(maildir) as addr:
            assert addr[0] == "127.0.0.1" and addr[1] > 0
            report = await deliver_edition(record.id, store=store, build=build, relay=None,
                                           smtp_addr=addr, delivery=DeliverySettings(),
                                           worker_id="w1")
        assert report.sent == 12 and store.delivery_summary(record.id) == {"sent": 12}
    msgs = stored(maildir)
    assert len(msgs) == 12
    to = sorted(m["To"].addresses[0].addr_spec for m in msgs)
    assert to == sorted(f"reader{i}@example.org" for i in range(12))
    for m in msgs:
        assert m["Delivered-To"] == m["To"].addresses[0].addr_spec
        assert m["Return-Path"] == "<bounces@news.example.org>"
        assert m["Subject"] == "Édition du matin"
        text, html = (p.get_content() for p in m.iter_parts())
        assert text.startswith("Morning") and "<h1>Morning</h1>" in html


async def test_send_test_to_the_embedded_server(tmp_path: Path) -> None:
    async with embedded_smtp_server(tmp_path / "md") as addr:
        report = await send_test([("b@news.example.org", "editor@example.net",
                                   message("editor@example.net", "Ed", 1))],
                                 relay=None, smtp_addr=addr, delivery=DeliverySettings())
    assert report.sent == 1
    [m] = stored(tmp_path / "md")
    assert m["To"].addresses[0].addr_spec == "editor@example.net"


async def test_runs_standalone(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "digest.deliver.embedded",
                             str(tmp_path / "alone"), "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert f"127.0.0.1:{port}" in line
        pool = SMTPPool(RelayTarget.local("127.0.0.1", port, pool_size=1))
        await pool.send("b@news.example.org", ["x@example.org"],
                        message("x@example.org", "X", 2), deadline=5)
        await pool.close()
        deadline = time.monotonic() + 5
        while not list((tmp_path / "alone" / "new").iterdir()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()
    [m] = stored(tmp_path / "alone")
    assert m["To"].addresses[0].addr_spec == "x@example.org"
