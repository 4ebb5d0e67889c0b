"""Send benchmark: the real per-subscriber path through the pool vs pre-built bytes, same run.

The edition is the repo's own: ``digest.toml``'s ``daily`` list built from
``content/front-page.txt`` and ``content/newsroom.rss`` by ``digest.pipeline.build_edition``
(no store), with ``DIGEST_WORK_DIR`` in a temporary folder and a fixed
``DIGEST_SECRET_KEY`` unless one is set. Subscribers mix section preferences, so several
variants are rendered (once each). Against Postfix's ``smtp-sink`` on 127.0.0.1 (or an
aiosmtpd sink in another process when smtp-sink is missing), it measures:

* raw    — the SMTPPool sending pre-built bytes: every subscriber's own message, built
           before the clock starts, so sizes match the full path exactly;
* full   — ``MessageFactory.for_claim`` per subscriber (itsdangerous tokens, slot values,
           MessageTemplate.render), then the same pool;
* ledger — ``deliver_edition`` over a SQLite ledger with ``MessageFactory.for_claim`` as
           the builder (claim, build, send, mark per row).

Each round builds a fresh MessageFactory and renders its variants before the clock starts;
that one-time cost (Jinja2 + Premailer per variant) is reported on its own, and a rate that
includes it is shown too. Per-subscriber CPU is ``for_claim`` timed over N subscribers once
the variants are warm, with a breakdown (tokens/links, slot values, MIME render).

Goals (performance research §3): full >= 85 % of raw, per-subscriber CPU < 5 % of the client
CPU per message sent (raw). Rounds rotate the mode order to cancel machine drift; medians are
reported. Exit status 1 when a goal is missed; the ledger ratio is reported, not gated.

    python bench/bench_send.py --subscribers 2000 --pool 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's digest, whatever is installed

from digest.config import ListSettings, Settings, load_settings
from digest.deliver import deliver_edition
from digest.deliver.pool import RelayTarget, SMTPPool
from digest.mail import Recipient
from digest.models import Edition
from digest.pipeline import MessageFactory, build_edition, links_for, parse_as_of
from digest.store import Claim, open_store

CONFIG = ROOT / "digest.toml"
LIST = "daily"
AS_OF = "2025-08-25T07:00"  # the content's week, so page ages and feed dates stay in range
SINK = "/usr/sbin/smtp-sink"

# Section preferences and their share of subscribers: None is "every section"; the two
# Politics/World spellings must land on one variant (names compare case-insensitively).
PROFILES: tuple[tuple[frozenset[str] | None, int], ...] = (
    (None, 40),
    (frozenset({"Politics", "World"}), 12),
    (frozenset({"politics", "world"}), 3),
    (frozenset({"Business", "Technology"}), 10),
    (frozenset({"Sports"}), 10),
    (frozenset({"Health", "Lifestyle"}), 8),
    (frozenset({"Entertainment", "Lifestyle", "Sports"}), 7),
    (frozenset({"World", "Business", "Top Stories"}), 10),
)


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


def bench_settings(work_dir: Path) -> tuple[Settings, ListSettings]:
    """The repo's digest.toml with the work folder in ``work_dir`` and a signing key set."""
    env = dict(os.environ)
    env["DIGEST_WORK_DIR"] = str(work_dir)
    env.setdefault("DIGEST_SECRET_KEY", "bench-secret-key-" + "0" * 32)
    settings = load_settings(CONFIG, env=env)
    return settings, settings.get_list(LIST)


def subscribers(n: int) -> list[tuple[str, str | None, frozenset[str] | None]]:
    """``(email, name, sections)`` for n subscribers in the PROFILES mix; some have no name,
    some a non-ASCII one (RFC 2047 in ``To``)."""
    weights = [share for _, share in PROFILES]
    cycle = [prefs for (prefs, _), w in zip(PROFILES, weights, strict=True) for _ in range(w)]
    out = []
    for i in range(n):
        name = None if i % 5 == 0 else (f"Zoë Ångström {i}" if i % 7 == 0 else f"Reader {i}")
        # Spread the profiles over the list rather than in blocks.
        out.append((f"reader{i}@example.org", name, cycle[(i * 37) % len(cycle)]))
    return out


def claims_for(people: list[tuple[str, str | None, frozenset[str] | None]],
               domain: str) -> list[Claim]:
    """Ledger-shaped claims (stable Message-IDs like publish_edition makes) for the full path."""
    return [Claim(delivery_id=i + 1, edition_id=1, subscriber_id=i + 1, email=email, name=name,
                  sections=sections, attributes={}, attempts=0, first_attempt_at=None,
                  message_id=f"<e1.s{i + 1}.{secrets.token_hex(6)}@{domain}>")
            for i, (email, name, sections) in enumerate(people)]


def warm_factory(settings: Settings, lst: ListSettings, edition: Edition,
                 as_of: datetime) -> tuple[MessageFactory, float]:
    """A fresh factory with every profile's variant and MIME template built; (factory, s)."""
    t = time.perf_counter()
    factory = MessageFactory(settings, lst, edition, as_of=as_of)
    for sections, _ in PROFILES:
        factory.template(sections)
    return factory, time.perf_counter() - t


async def run_pool(port: int, pool_size: int, n: int,
                   make: Callable[[int], tuple[str, str, bytes]]) -> tuple[float, float]:
    """Send n messages with pool_size concurrent tasks; returns (wall s, CPU s)."""
    pool = SMTPPool(RelayTarget.local("127.0.0.1", port, pool_size=pool_size))
    # Warm the connections so connect cost is not in either mode.
    await asyncio.gather(*(pool.send("b@news.example.org", ["warm@example.org"], b"x\r\n")
                           for _ in range(pool_size)))
    counter = iter(range(n))

    async def task() -> None:
        for i in counter:
            sender, rcpt, data = make(i)
            await pool.send(sender, [rcpt], data, deadline=60)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task() for _ in range(pool_size)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await pool.close()
    return wall, cpu


def populate(db: Path, people: list[tuple[str, str | None, frozenset[str] | None]]) -> None:
    """A SQLite store with the list's subscribers (copied fresh for every ledger round)."""
    with open_store(f"sqlite:///{db}") as store:
        for email, name, sections in people:
            store.add_subscriber(LIST, email, name=name, sections=sections)


async def run_ledger(port: int, pool_size: int, n: int, factory: MessageFactory,
                     settings: Settings, base_db: Path, round_no: int) -> tuple[float, float]:
    db = base_db.with_name(f"round{round_no}.db")
    shutil.copyfile(base_db, db)
    with open_store(f"sqlite:///{db}") as store:
        record = store.record_edition(factory.edition)
        store.publish_edition(record.id, message_id_domain=settings.site.domain,
                              now=datetime.now(UTC))
        wall, cpu = time.perf_counter(), time.process_time()
        report = await deliver_edition(
            record.id, store=store, build=factory.for_claim, relay=None,
            smtp_addr=("127.0.0.1", port), delivery=settings.delivery, worker_id="bench",
            pool_size=pool_size)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert report.sent == n, report.to_json()
    return wall, cpu


def per_subscriber_cpu(factory: MessageFactory, claims: list[Claim], reps: int
                       ) -> dict[str, float]:
    """CPU seconds per subscriber (median of three passes over ``reps`` subscribers): all of
    ``for_claim``, and its parts timed on their own."""
    s, lst, ed = factory.settings, factory.lst, factory.edition
    picks = [claims[i % len(claims)] for i in range(reps)]

    def timed(fn: Callable[[Claim], object]) -> float:
        passes = []
        for _ in range(3):  # the median of three passes: VM noise is large
            t = time.process_time()
            for c in picks:
                fn(c)
            passes.append((time.process_time() - t) / reps)
        return statistics.median(passes)

    links = {c.subscriber_id: links_for(s, lst, ed, c.subscriber_id) for c in claims}
    values = {c.subscriber_id: factory.variant(c.sections).slot_values(factory.personalisation(
        c.email, c.name, links[c.subscriber_id])) for c in claims}

    def slots(c: Claim) -> object:
        return factory.variant(c.sections).slot_values(
            factory.personalisation(c.email, c.name, links[c.subscriber_id]))

    def mime(c: Claim) -> object:
        link = links[c.subscriber_id]
        html, text = values[c.subscriber_id]
        return factory.template(c.sections).render(Recipient(
            email=c.email, name=c.name, message_id=c.message_id,
            unsubscribe_url=link.unsubscribe_url, unsubscribe_mailto=link.unsubscribe_mailto,
            slot_values_html=html, slot_values_text=text))

    timed(factory.for_claim)  # warm-up pass
    return {"for_claim": timed(factory.for_claim),
            "links": timed(lambda c: links_for(s, lst, ed, c.subscriber_id)),
            "slots": timed(slots), "mime": timed(mime)}


def dkim_cost(settings: Settings, lst: ListSettings, edition: Edition, as_of: datetime,
              claims: list[Claim]) -> float:
    """CPU seconds per message for ``for_claim`` with DKIM (fresh RSA-2048 key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from digest.config import DkimSettings

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signed = replace(settings, dkim=DkimSettings(settings.site.domain, "bench", pem))
    factory, _ = warm_factory(signed, lst, edition, as_of)
    reps = 200
    t = time.process_time()
    for i in range(reps):
        factory.for_claim(claims[i % len(claims)])
    return (time.process_time() - t) / reps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-ledger", action="store_true", help="skip the ledger mode")
    parser.add_argument("--dkim", action="store_true", help="also time building with DKIM")
    args = parser.parse_args()
    n, k = args.subscribers, args.pool

    workdir = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    sink = None
    try:
        settings, lst = bench_settings(workdir / "var")
        as_of = parse_as_of(AS_OF, lst)
        assert as_of is not None
        outcome = asyncio.run(build_edition(settings, lst, store=None, as_of=as_of))
        edition = outcome.edition
        people = subscribers(n)
        claims = claims_for(people, settings.site.domain)

        factory, cold_render = warm_factory(settings, lst, edition, as_of)
        variants = len({factory.variant(sections).sections for sections, _ in PROFILES})
        # Raw mode's bytes: each subscriber's own message, built before any clock starts.
        prebuilt = [factory.for_claim(c) for c in claims[:5000]]
        sizes = [len(data) for _, _, data in prebuilt]

        reps = max(n, 5000)
        per_sub = per_subscriber_cpu(factory, claims, reps)
        dkim = dkim_cost(settings, lst, edition, as_of, claims) if args.dkim else None

        base_db = workdir / "base.db"
        if not args.no_ledger:
            populate(base_db, people)

        sink, port, sink_kind = start_sink()
        results: dict[str, list[tuple[float, float]]] = {"raw": [], "full": [], "ledger": []}
        renders: list[float] = []
        round_costs: list[float] = []
        asyncio.run(run_pool(port, k, min(n, 500), lambda i: prebuilt[i % len(prebuilt)]))
        for r in range(args.rounds):
            round_factory, render_s = warm_factory(settings, lst, edition, as_of)
            renders.append(render_s)
            modes: list[tuple[str, Callable[[], tuple[float, float]]]] = [
                ("raw", lambda: asyncio.run(run_pool(
                    port, k, n, lambda i: prebuilt[i % len(prebuilt)]))),
                ("full", lambda f=round_factory: asyncio.run(run_pool(  # type: ignore[misc]
                    port, k, n, lambda i: f.for_claim(claims[i])))),
            ]
            if not args.no_ledger:
                modes.append(("ledger", lambda r=r, f=round_factory: asyncio.run(  # type: ignore[misc]
                    run_ledger(port, k, n, f, settings, base_db, r))))
            shift = r % len(modes)  # rotate the order: no mode always runs first
            for mode, run in modes[shift:] + modes[:shift]:
                results[mode].append(run())
            # The per-subscriber CPU of this round, next to this round's raw send cost: the
            # VM's speed drifts by tens of percent, so a share is only fair within a round.
            t = time.process_time()
            for c in claims:
                round_factory.for_claim(c)
            round_costs.append((time.process_time() - t) / n)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    def rate(mode: str) -> float:
        return statistics.median(n / wall for wall, _ in results[mode])

    def cpu(mode: str) -> float:
        return statistics.median(c / n for _, c in results[mode])

    raw, full = rate("raw"), rate("full")
    render = statistics.median(renders)
    full_wall = statistics.median(wall for wall, _ in results["full"])
    # Ratios are taken round by round (same minute, same machine speed), then the median.
    ratio = statistics.median(rw / fw for (rw, _), (fw, _) in zip(results["raw"],
                                                                   results["full"],
                                                                   strict=True))
    shares = [cost_r / (raw_cpu / n) for cost_r, (_, raw_cpu) in zip(round_costs,
                                                                     results["raw"],
                                                                     strict=True)]
    share = statistics.median(shares)
    cost = statistics.median(round_costs)
    print(f"sink: {sink_kind}; {n} subscribers x {args.rounds} rounds, pool {k}")
    print(f"edition: {len(edition.sections)} sections, {len(edition.stories)} stories; "
          f"{variants} variants; messages {min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KB "
          f"(mean {statistics.fmean(sizes) / 1024:.1f} KB)")
    print(f"one-time variant render ({variants} variants + MIME templates): first "
          f"{cold_render * 1e3:.0f} ms (cold), per round median {render * 1e3:.0f} ms")
    print(f"raw pre-built bytes    : {raw:7.1f} msg/s  client CPU {cpu('raw') * 1e3:.2f} ms/msg")
    print(f"full (for_claim + pool): {full:7.1f} msg/s  client CPU {cpu('full') * 1e3:.2f} ms/msg"
          f"  -> {ratio:.1%} of raw, median of the rounds' ratios "
          f"({n / (full_wall + render) / raw:.1%} counting the round's variant render)")
    if results["ledger"]:
        led = rate("ledger")
        print(f"deliver_edition+SQLite : {led:7.1f} msg/s  client CPU "
              f"{cpu('ledger') * 1e3:.2f} ms/msg  -> {led / raw:.1%} of raw (ledger CPU "
              f"{(cpu('ledger') - cpu('full')) * 1e6:.0f} us/msg over full)")
    print(f"per-subscriber CPU (for_claim): {cost * 1e6:.1f} us = {share:.2%} of the send cost "
          f"(raw client CPU/msg, median of the rounds: "
          f"{', '.join(f'{x:.2%}' for x in shares)}); parts timed alone ({reps} subscribers, "
          f"measured before the rounds): tokens+links {per_sub['links'] * 1e6:.1f} "
          f"us, slot values {per_sub['slots'] * 1e6:.1f} us, MIME render "
          f"{per_sub['mime'] * 1e6:.1f} us")
    if dkim is not None:
        print(f"with DKIM (RSA-2048, relaxed/relaxed): {dkim * 1e3:.2f} ms per message "
              f"= {dkim / cpu('raw'):.0%} of the send cost")
    ok = ratio >= 0.85 and share < 0.05
    print("goals (full >= 85% of raw, per-subscriber < 5%):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
