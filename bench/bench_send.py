"""Send benchmark: personalised edition through the pool vs pre-built bytes, same run, same sink.

Measures, against Postfix's ``smtp-sink`` on 127.0.0.1 (or an aiosmtpd sink in another
process when smtp-sink is missing):

* raw   — the SMTPPool sending one pre-built message of the edition's size to N recipients;
* full  — per subscriber: HMAC unsubscribe token, slot values, MessageTemplate.render
          (headers + QP slots), then the same pool;
* ledger — deliver_edition over a SQLite ledger (claim, build, send, mark per row).

Goals (performance research §3): full ≥ 85 % of raw, per-subscriber CPU (token, slots,
headers) < 5 % of the client CPU per message sent. Rounds alternate the modes to cancel
machine drift; medians are reported. Exit status 1 when a goal is missed.

    python bench/bench_send.py --subscribers 2000 --pool 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from digest.config import DeliverySettings
from digest.deliver import deliver_edition
from digest.deliver.pool import RelayTarget, SMTPPool
from digest.mail import MessageTemplate, Recipient
from digest.models import Edition, Story
from digest.store import open_store

SECRET = b"bench-secret-key"
SINK = "/usr/sbin/smtp-sink"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int, str]:
    """smtp-sink if installed, else an aiosmtpd sink in another process."""
    port = free_port()
    if Path(SINK).exists():
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        proc = subprocess.Popen([SINK, *user, f"127.0.0.1:{port}", "256"])
        kind = "postfix smtp-sink"
    else:
        code = ("import asyncio,sys\nfrom aiosmtpd.smtp import SMTP\n"
                "class H:\n async def handle_DATA(s,a,b,e): return '250 OK'\n"
                "async def m():\n l=asyncio.get_running_loop()\n"
                f" await l.create_server(lambda: SMTP(H()),'127.0.0.1',{port})\n"
                " await asyncio.Event().wait()\nasyncio.run(m())")
        proc = subprocess.Popen([sys.executable, "-c", code])
        kind = "aiosmtpd sink (smtp-sink not installed)"
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, kind
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def edition_template(sections: int = 5, per_section: int = 6) -> MessageTemplate:
    """A digest-sized template: ~65 KB inlined HTML, ~15 KB text, name and links as slots."""
    style = ("font-family:Georgia,'Times New Roman',serif;font-size:16px;line-height:24px;"
             "color:#1a1a1a;margin:0 0 12px 0;padding:0;mso-line-height-rule:exactly")
    html: list[str | None] = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                       "<style>@media (max-width:600px){.col{width:100%!important}}</style>"
                       '</head><body style="margin:0;padding:0;background:#f4f1ea">'
                       f'<p style="{style}">Good morning, ']
    text: list[str | None] = ["Good morning, "]
    html_slots, text_slots = ["name"], ["name"]
    html.append(None)
    text.append(None)
    html.append(",</p>")
    text.append(",\n\n")
    for s in range(sections):
        html.append(f'<h2 style="{style};font-size:22px">Section {s} — Politics &amp; World</h2>')
        text.append(f"SECTION {s}\n{'=' * 40}\n\n")
        for a in range(per_section):
            url = f"https://news.example.org/{s}/{a}/a-rather-long-article-slug-for-realism"
            html.append(
                f'<table role="presentation" width="100%" style="border-collapse:collapse">'
                f'<tr><td class="col" style="{style}"><a href="{url}?utm_source=digest" '
                f'style="color:#0b3d91;text-decoration:none;font-weight:bold">Headline {s}.{a}'
                f" — Ministers agree a budget after a night of talks in Brüssel</a>"
                f'<p style="{style}">' + ("Summary text of the story, a couple of sentences "
                                          "long, with enough words to be realistic. ") * 6
                + "</p></td></tr></table>")
            text.append(f"Headline {s}.{a} — Ministers agree a budget after a night of talks "
                        f"in Brüssel\n{url}\n" + "Summary text of the story. " * 8 + "\n\n")
    html.append(f'<p style="{style}">You get this because you subscribed. '
                '<a href="')
    html_slots.append("unsubscribe_url")
    html.append(None)
    html.append('">Unsubscribe</a> · <a href="')
    html_slots.append("manage_url")
    html.append(None)
    html.append('">Manage sections</a></p></body></html>')
    text.append("Unsubscribe: ")
    text_slots.append("unsubscribe_url")
    text.append(None)
    text.append("\nManage: ")
    text_slots.append("manage_url")
    text.append(None)
    text.append("\n")
    return MessageTemplate.build(
        html_segments=_segments(html, html_slots), html_slots=tuple(html_slots),
        text_segments=_segments(text, text_slots), text_slots=tuple(text_slots),
        subject="Morning Briefing: Ministers agree a budget",
        from_header="The Morning Ledger <briefing@news.example.org>",
        list_id="Morning Briefing <daily.news.example.org>")


def _segments(pieces: list[str | None], slots: list[str]) -> tuple[str, ...]:
    """Join the pieces between slot markers: pieces[i] is None where a slot goes."""
    out: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if piece is None:
            out.append("".join(current))
            current = []
        else:
            current.append(piece)
    out.append("".join(current))
    assert len(out) == len(slots) + 1
    return tuple(out)


def recipient_for(i: int, email: str, name: str | None, message_id: str) -> Recipient:
    """The per-subscriber work the pipeline does: signed token, links, slot values."""
    token = hmac.new(SECRET, f"{i}:daily".encode(), hashlib.sha256).hexdigest()[:32]
    unsub = f"https://news.example.org/u/{i}.{token}"
    manage = f"https://news.example.org/m/{i}.{token}"
    shown = name or "reader"
    return Recipient(email=email, name=name, message_id=message_id, unsubscribe_url=unsub,
                     unsubscribe_mailto=f"mailto:unsubscribe+{i}.{token}@news.example.org",
                     slot_values_html={"name": shown.replace("&", "&amp;"),
                                       "unsubscribe_url": unsub, "manage_url": manage},
                     slot_values_text={"name": shown, "unsubscribe_url": unsub,
                                       "manage_url": manage})


async def run_pool(port: int, pool_size: int, n: int,
                   make: Callable[[int], tuple[str, bytes]]) -> tuple[float, float]:
    """Send n messages with pool_size concurrent tasks; returns (wall s, CPU s)."""
    pool = SMTPPool(RelayTarget.local("127.0.0.1", port, pool_size=pool_size))
    # Warm the connections so connect cost is not in either mode.
    await asyncio.gather(*(pool.send("b@news.example.org", ["warm@example.org"], b"x\r\n")
                           for _ in range(pool_size)))
    counter = iter(range(n))

    async def task() -> None:
        for i in counter:
            rcpt, data = make(i)
            await pool.send("bounces@news.example.org", [rcpt], data, deadline=60)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task() for _ in range(pool_size)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await pool.close()
    return wall, cpu


async def run_ledger(port: int, pool_size: int, n: int, template: MessageTemplate,
                     workdir: Path, round_no: int) -> tuple[float, float]:
    with open_store(f"sqlite:///{workdir / f'bench{round_no}.db'}") as store:
        for i in range(n):
            store.add_subscriber("daily", f"reader{i}@example.org", name=f"Reader {i}")
        record = store.record_edition(Edition(
            list_name="daily", date=date(2026, 3, 2), subject="x", preheader="",
            lead=Story(id="l", section="Politics", headline="Lead", is_lead=True),
            sections=()))
        store.publish_edition(record.id, message_id_domain="news.example.org",
                              now=datetime.now(UTC))

        def build(claim: Any) -> tuple[str, str, bytes]:
            r = recipient_for(claim.subscriber_id, claim.email, claim.name, claim.message_id)
            return "bounces@news.example.org", claim.email, template.render(r)

        wall, cpu = time.perf_counter(), time.process_time()
        report = await deliver_edition(
            record.id, store=store, build=build, relay=None, smtp_addr=("127.0.0.1", port),
            delivery=DeliverySettings(message_timeout=60, claim_batch=100),
            worker_id="bench", pool_size=pool_size)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert report.sent == n, report.to_json()
    return wall, cpu


def dkim_render_cost(template: MessageTemplate, emails: list[str], names: list[str]) -> float:
    """CPU seconds per message for render + DKIM signing with a fresh RSA-2048 key."""
    from dataclasses import replace

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from digest.config import DkimSettings

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signed = replace(template, dkim=DkimSettings("news.example.org", "bench", pem))
    reps = 200
    t = time.process_time()
    for i in range(reps):
        signed.render(recipient_for(i, emails[i % len(emails)], names[i % len(names)],
                                    f"<e1.s{i}.x@news.example.org>"))
    return (time.process_time() - t) / reps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-ledger", action="store_true", help="skip the ledger mode")
    parser.add_argument("--dkim", action="store_true", help="also time rendering + DKIM")
    args = parser.parse_args()
    n, k = args.subscribers, args.pool

    template = edition_template()
    sample = template.render(recipient_for(0, "reader0@example.org", "Reader 0",
                                           "<e1.s0.x@news.example.org>"))
    names = [f"Reader {i}" for i in range(n)]
    emails = [f"reader{i}@example.org" for i in range(n)]

    # Per-subscriber CPU: token + slot values + headers + QP slots + join, nothing else.
    reps = max(n, 5000)
    t = time.process_time()
    for i in range(reps):
        template.render(recipient_for(i, emails[i % n], names[i % n],
                                      f"<e1.s{i}.x@news.example.org>"))
    per_sub = (time.process_time() - t) / reps

    dkim_cost = dkim_render_cost(template, emails, names) if args.dkim else None

    sink, port, sink_kind = start_sink()
    workdir = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    results: dict[str, list[tuple[float, float]]] = {"raw": [], "full": [], "ledger": []}
    try:
        asyncio.run(run_pool(port, k, n // 4, lambda i: (emails[i], sample)))  # warm-up
        for r in range(args.rounds):
            modes: list[tuple[str, Callable[[], tuple[float, float]]]] = [
                ("raw", lambda: asyncio.run(run_pool(
                    port, k, n, lambda i: (emails[i], sample)))),
                ("full", lambda: asyncio.run(run_pool(
                    port, k, n, lambda i: (emails[i], template.render(recipient_for(
                        i, emails[i], names[i], f"<e1.s{i}.x@news.example.org>")))))),
            ]
            if not args.no_ledger:
                modes.append(("ledger", lambda r=r: asyncio.run(  # type: ignore[misc]
                    run_ledger(port, k, n, template, workdir, r))))
            shift = r % len(modes)  # rotate the order: no mode always runs first
            for mode, run in modes[shift:] + modes[:shift]:
                results[mode].append(run())
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    def rate(mode: str) -> float:
        return statistics.median(n / wall for wall, _ in results[mode])

    def cpu(mode: str) -> float:
        return statistics.median(c / n for _, c in results[mode])

    raw, full = rate("raw"), rate("full")
    share = per_sub / cpu("raw")
    print(f"sink: {sink_kind}; {n} subscribers x {args.rounds} rounds, pool {k}; message "
          f"{len(sample) / 1024:.1f} KB")
    print(f"raw pre-built bytes : {raw:8.1f} msg/s  client CPU {cpu('raw') * 1e3:.2f} ms/msg")
    print(f"full path (template): {full:8.1f} msg/s  client CPU {cpu('full') * 1e3:.2f} ms/msg"
          f"  -> {full / raw:.1%} of raw")
    if results["ledger"]:
        led = rate("ledger")
        print(f"deliver_edition+SQLite: {led:6.1f} msg/s  client CPU "
              f"{cpu('ledger') * 1e3:.2f} ms/msg  -> {led / raw:.1%} of raw (ledger CPU "
              f"{(cpu('ledger') - cpu('full')) * 1e6:.0f} us/msg)")
    print(f"per-subscriber CPU (token, slots, headers): {per_sub * 1e6:.1f} us "
          f"= {share:.2%} of the send cost")
    if dkim_cost is not None:
        print(f"with DKIM (RSA-2048, relaxed/relaxed): {dkim_cost * 1e3:.2f} ms per message "
              f"= {dkim_cost / cpu('raw'):.0%} of the send cost")
    ok = full / raw >= 0.85 and share < 0.05
    print("goals (full >= 85% of raw, per-subscriber < 5%):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
