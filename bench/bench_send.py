"""Send benchmark: the real per-subscriber path through the pool vs pre-built bytes, same run.

The edition is the repo's own: ``digest.toml``'s ``daily`` list built from
``content/front-page.txt`` and ``content/newsroom.rss`` by ``digest.pipeline.build_edition``
(no store), with ``DIGEST_WORK_DIR`` in a temporary folder and a fixed
``DIGEST_SECRET_KEY`` unless one is set. Subscribers mix section preferences, so several
variants are rendered (once each). Against Postfix's ``smtp-sink`` on 127.0.0.1 (or an
aiosmtpd sink in another process when smtp-sink is missing), it measures:

* raw    — the SMTPPool sending pre-built bytes: every subscriber's own message, built
           before the clock starts, so sizes match the full path exactly;
* full   — ``MessageFactory.for_claim`` per subscriber (signed tokens, slot values, MIME
           bytes), then the same pool;
* ledger — ``deliver_edition`` over a SQLite ledger with ``MessageFactory.for_claim`` as
           the builder (claim, build, send, mark per row).

Raw and full run interleaved on one warm pool, in blocks of ``--block`` messages in ABBA
order, so a drift in the VM's speed (tens of percent within a minute here) falls on both;
the rate ratio is taken per round, then the median of the rounds. Each round builds a fresh
MessageFactory and renders its variants before the clock starts; that one-time cost
(Jinja2 + Premailer per variant) is reported on its own, and a rate that includes it too.

Per-subscriber CPU (performance research §3, goal 2: "all per-subscriber work ... no more
than 1/20 of aiosmtplib's CPU per message") is ``for_claim`` timed on its own after every
block, over that block's subscribers, against raw's client CPU per message in the same
blocks. Two more views are printed, not gated: ``for_claim`` timed inside the send loop
(where sending has just evicted its code and data from the caches: several times slower),
and full's total client CPU over raw's.

Goals: full >= 85 % of raw, per-subscriber CPU < 5 % of the send cost. Exit status 1 when a
goal is missed; the ledger ratio is reported, not gated.

    python bench/bench_send.py --subscribers 2000 --pool 10 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
from dataclasses import dataclass, field, replace
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
    blocks = await run_interleaved(port, pool_size, n, {"only": make}, block=n)
    return sum(blocks["only"].wall), sum(blocks["only"].cpu)


@dataclass
class Blocks:
    """One mode's blocks, in order: wall and process CPU seconds of each, and the seconds
    spent inside its builder (``make``) while sending."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    build: list[float] = field(default_factory=list)


async def run_interleaved(port: int, pool_size: int, n: int,
                          modes: dict[str, Callable[[int], tuple[str, str, bytes]]], *,
                          block: int, quiet: Callable[[int], object] | None = None,
                          ) -> dict[str, Blocks]:
    """Send messages 0..n-1 once per mode through one warm pool, in blocks of ``block``
    messages that alternate between the modes (ABBA order): the modes' blocks over the
    same messages run seconds apart, so they can be compared pair by pair. Each block runs
    ``pool_size`` concurrent tasks.

    :param quiet: also timed after every block, over the same messages but sending
        nothing (CPU only, under ``"quiet"``): a builder's own cost, next to the sends.
    """
    pool = SMTPPool(RelayTarget.local("127.0.0.1", port, pool_size=pool_size))
    # Warm the connections so connect cost is in no mode.
    await asyncio.gather(*(pool.send("b@news.example.org", ["warm@example.org"], b"x\r\n")
                           for _ in range(pool_size)))
    blocks = {mode: Blocks() for mode in modes}
    names = list(modes)
    for number, start in enumerate(range(0, n, block)):
        for mode in (names if number % 2 == 0 else names[::-1]):
            make, spent = modes[mode], [0.0]
            counter = iter(range(start, min(n, start + block)))

            async def task(make=make, spent=spent, counter=counter) -> None:  # type: ignore[no-untyped-def]
                for i in counter:
                    t = time.perf_counter()
                    sender, rcpt, data = make(i)
                    spent[0] += time.perf_counter() - t
                    await pool.send(sender, [rcpt], data, deadline=60)

            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(task() for _ in range(pool_size)))
            blocks[mode].wall.append(time.perf_counter() - wall)
            blocks[mode].cpu.append(time.process_time() - cpu)
            blocks[mode].build.append(spent[0])
        if quiet is not None:
            cpu = time.process_time()
            for i in range(start, min(n, start + block)):
                quiet(i)
            blocks.setdefault("quiet", Blocks()).cpu.append(time.process_time() - cpu)
    await pool.close()
    return blocks


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
    from cryptography.hazmat.primitives.asymmetric import rsa

    from digest.config import DkimKey, DkimSettings

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed = replace(settings, dkim=DkimSettings(settings.site.domain,
                                                 (DkimKey("rsa-sha256", "bench", key),)))
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=200,
                        help="messages per interleaved raw/full block (default 200)")
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
        raw_full: list[dict[str, Blocks]] = []
        ledger: list[tuple[float, float]] = []
        renders: list[float] = []
        asyncio.run(run_pool(port, k, min(n, 500), lambda i: prebuilt[i % len(prebuilt)]))
        for r in range(args.rounds):
            round_factory, render_s = warm_factory(settings, lst, edition, as_of)
            renders.append(render_s)
            # Raw and full interleaved block by block on one pool (see run_interleaved).
            build = functools.partial(lambda f, i: f.for_claim(claims[i]), round_factory)
            raw_full.append(asyncio.run(run_interleaved(port, k, n, {
                "raw": lambda i: prebuilt[i % len(prebuilt)], "full": build,
            }, block=args.block, quiet=build)))
            if not args.no_ledger:
                ledger.append(asyncio.run(run_ledger(port, k, n, round_factory, settings,
                                                     base_db, r)))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def pct(values: list[float]) -> str:
        return ", ".join(f"{x:.1%}" for x in values)

    def pairs(num: Callable[[dict[str, Blocks], int], float],
              den: Callable[[dict[str, Blocks], int], float]) -> list[list[float]]:
        """Per round, ``num/den`` for each block: both over the same messages, seconds
        apart (the VM's speed steps by up to 1.5x between blocks)."""
        return [[num(t, b) / den(t, b) for b in range(len(t["raw"].wall))] for t in raw_full]

    raw_cpu = [sum(t["raw"].cpu) / n for t in raw_full]  # the send cost: CPU per message
    raw_rates = [n / sum(t["raw"].wall) for t in raw_full]
    full_rates = [n / sum(t["full"].wall) for t in raw_full]
    # Full's rate over raw's, block pair by block pair; a round's figure is the median of its
    # blocks, the result the median of all blocks.
    ratio_blocks = pairs(lambda t, b: t["raw"].wall[b], lambda t, b: t["full"].wall[b])
    share_blocks = pairs(lambda t, b: t["quiet"].cpu[b], lambda t, b: t["raw"].cpu[b])
    hot_blocks = pairs(lambda t, b: t["full"].build[b], lambda t, b: t["raw"].cpu[b])
    extra_blocks = pairs(lambda t, b: t["full"].cpu[b] - t["raw"].cpu[b],
                         lambda t, b: t["raw"].cpu[b])
    ratio = med([x for r in ratio_blocks for x in r])
    share = med([x for r in share_blocks for x in r])
    quiet = med([sum(t["quiet"].cpu) / n for t in raw_full])
    hot = med([sum(t["full"].build) / n for t in raw_full])
    render = med(renders)
    full_wall = med([sum(t["full"].wall) for t in raw_full])

    print(f"sink: {sink_kind}; {n} subscribers x {args.rounds} rounds, pool {k}, raw and "
          f"full interleaved in blocks of {args.block}")
    print(f"edition: {len(edition.sections)} sections, {len(edition.stories)} stories; "
          f"{variants} variants; messages {min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KB "
          f"(mean {statistics.fmean(sizes) / 1024:.1f} KB)")
    print(f"one-time variant render ({variants} variants + MIME templates): first "
          f"{cold_render * 1e3:.0f} ms (cold), per round median {render * 1e3:.0f} ms")
    print(f"raw pre-built bytes    : {med(raw_rates):7.1f} msg/s  client CPU "
          f"{med(raw_cpu) * 1e3:.3f} ms/msg")
    print(f"full (for_claim + pool): {med(full_rates):7.1f} msg/s  client CPU "
          f"{med([sum(t['full'].cpu) / n for t in raw_full]) * 1e3:.3f} ms/msg")
    print(f"  full/raw rate: {ratio:.1%}, median of {sum(map(len, ratio_blocks))} block pairs "
          f"(rounds: {pct([med(r) for r in ratio_blocks])}; whole rounds: "
          f"{pct([f / r for f, r in zip(full_rates, raw_rates, strict=True)])}; "
          f"{n / (full_wall + render) / med(raw_rates):.1%} counting the round's variant "
          "render)")
    if ledger:
        led = med([n / wall for wall, _ in ledger])
        print(f"deliver_edition+SQLite : {led:7.1f} msg/s  client CPU "
              f"{med([c / n for _, c in ledger]) * 1e3:.3f} ms/msg  -> "
              f"{led / med(raw_rates):.1%} of raw (separate runs, not interleaved)")
    print(f"per-subscriber CPU (for_claim timed after each block): {quiet * 1e6:.1f} us = "
          f"{share:.2%} of the send cost, median of the blocks (rounds: "
          f"{pct([med(r) for r in share_blocks])})")
    print(f"  for_claim timed inside the send loop, caches cold: {hot * 1e6:.1f} us = "
          f"{med([x for r in hot_blocks for x in r]):.2%}; full's client CPU over raw's: "
          f"+{med([x for r in extra_blocks for x in r]):.1%} (rounds: "
          f"{pct([med(r) for r in extra_blocks])})")
    print(f"  parts timed alone ({reps} subscribers, before the rounds): tokens+links "
          f"{per_sub['links'] * 1e6:.1f} us, slot values {per_sub['slots'] * 1e6:.1f} us, "
          f"MIME render {per_sub['mime'] * 1e6:.1f} us")
    if dkim is not None:
        print(f"with DKIM (RSA-2048, relaxed/relaxed): {dkim * 1e3:.2f} ms per message "
              f"= {dkim / med(raw_cpu):.0%} of the send cost")
    ok = ratio >= 0.85 and share < 0.05
    print("goals (full >= 85% of raw, per-subscriber < 5%):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
