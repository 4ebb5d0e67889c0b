"""Whole-command benchmark: ``send`` against raw aiosmtplib, alternately, in one run (issue 14
item 1).

Three kinds of child process, run in turn (raw, wire, send, then send, wire, raw, ... after
one unmeasured warm-up), against Postfix's ``smtp-sink`` on 127.0.0.1 (started here):

* **raw**: aiosmtplib alone. ``--pool`` ``aiosmtplib.SMTP`` clients share a counter and send
  ``sendmail(sender, [recipient], bytes)`` until N messages are out. The bytes are the real
  messages of 2,000 of the readers (``MessageFactory.for_claim``, built by this script
  before any run, the mix of variants of the whole list), cycled; the clock runs from the
  first connect to the last reply, so the child's start-up and loading are not counted.
* **wire**: the same, through digest's own client path (``SMTPConnection.send``): the
  same bytes on the wire, without the command around it (printed as send/wire, not gated).
* **send**: ``python run_digest.py send --list daily --as-of 2025-08-25T07:00``, the whole
  command and its whole wall time: start-up, configuration, the sync of the unchanged
  subscribers file, the edition build, publishing the ledger, delivery through ``--pool``
  connections, and the report.

Each pair gives send/raw (readers per second of the whole command over raw's messages per
second); the result is the median of the pairs, with their spread. Every send starts from
the same store with the readers already imported (SQLite: a copy of one file; PostgreSQL:
one schema whose edition rows are deleted and vacuumed between runs). The readers are
bench_send.py's mix of names and section preferences (7 variants, 14-34 KB messages).

PostgreSQL comes from ``--pg`` or ``DIGEST_BENCH_DATABASE_URL`` or
``DIGEST_TEST_DATABASE_URL``; each run of the bench works in a schema of its own, dropped at
the end. ``--profile DIR`` also runs one send per backend and size under cProfile (CPU clock,
not timed) and prints where its CPU goes, part by part.

Goal: send >= 0.85 x raw, at each size on SQLite (PostgreSQL is printed beside it). Exit
status 1 when a SQLite goal is missed.

    python bench/bench_command.py [--readers 10000,100000] [--pairs 2] [--pool 10]
                                  [--pg URL | --skip-pg] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_dkim import child_env, command, print_profile, write_config
from bench_dkim import run_send as run_whole_send
from bench_memory import write_readers
from bench_send import AS_OF, LIST, ROOT, start_sink

GOAL = 0.85
SAMPLE = 2000  # distinct pre-built messages raw cycles through


@dataclass
class Run:
    kind: str  # raw | send
    wall: float
    cpu: float  # the child's user + system CPU seconds
    delivery_rate: float = 0.0  # send: what its own report says for the delivery phase


# ----------------------------------------------------------------------------- raw child

class _RawClient:
    """aiosmtplib alone: ``sendmail`` with its own address parsing and DATA processing."""

    def __init__(self, port: int) -> None:
        import aiosmtplib

        self.smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False,
                                    start_tls=False, timeout=60)
        self.connect, self.quit = self.smtp.connect, self.smtp.quit

    async def send(self, sender: str, recipients: list[str], data: bytes) -> object:
        return await self.smtp.sendmail(sender, recipients, data)


def _wire_client(port: int, pool: int) -> object:
    """digest's own client path (``SMTPConnection``: aiosmtplib's execute_command with the
    paths and the DATA payload of digest.deliver.wire)."""
    from digest.deliver.pool import RelayTarget, SMTPConnection

    return SMTPConnection(RelayTarget.local("127.0.0.1", port, pool_size=pool, timeout=60))


async def _timed(kind: str, messages: list[tuple[str, str, bytes]], n: int, port: int,
                 pool: int) -> float:
    """Seconds for ``pool`` clients of ``kind`` ("raw" or "wire") sharing a counter to send
    ``n`` of ``messages`` (cycled), from the first connect to the last reply."""
    counter = itertools.count()

    async def task() -> None:
        client: Any = _RawClient(port) if kind == "raw" else _wire_client(port, pool)
        await client.connect()
        while (i := next(counter)) < n:
            sender, rcpt, data = messages[i % len(messages)]
            await client.send(sender, [rcpt], data)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(pool)))
    return time.perf_counter() - start


def raw_child(kind: str, path: str, n: int, port: int, pool: int) -> None:
    with open(path, "rb") as f:
        messages = pickle.load(f)
    print(f"{asyncio.run(_timed(kind, messages, n, port, pool)):.6f}")


# ----------------------------------------------------------------------------- driver

def prebuilt(tmp: Path, readers: Path) -> Path:
    """The messages of the first ``SAMPLE`` readers, as the send builds them, pickled."""
    from datetime import UTC

    sys.path.insert(0, str(ROOT))
    from bench_send import bench_settings, claims_for, subscribers, warm_factory

    from digest.pipeline import build_edition, parse_as_of

    settings, lst = bench_settings(tmp / "prebuilt")
    as_of = parse_as_of(AS_OF, lst)
    edition = asyncio.run(build_edition(settings, lst, store=None, as_of=as_of)).edition
    factory, _ = warm_factory(settings, lst, edition, as_of.astimezone(UTC))
    messages = [factory.for_claim(c) for c in claims_for(subscribers(SAMPLE),
                                                          settings.site.domain)]
    path = tmp / "prebuilt.pickle"
    with path.open("wb") as f:
        pickle.dump(messages, f)
    return path


def run_raw(messages: Path, n: int, port: int, pool: int, kind: str = "raw") -> Run:
    """``kind`` "raw": aiosmtplib's sendmail; "wire": digest's client path (SMTPConnection)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, __file__, "--raw-child", kind, str(messages), str(n),
                           str(port), str(pool)], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{kind} child failed: {done.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(kind, float(done.stdout.strip().splitlines()[-1]), cpu)


def run_send(config: Path, n: int, *, profile: Path | None = None) -> Run:
    """The whole ``send`` command, timed as bench_dkim times it (exits if it sent fewer)."""
    done = run_whole_send("send", config, n, profile=profile)
    return Run("send", done.wall, done.cpu, done.delivery_rate)


class Backend:
    """Where a send's store lives and how each run gets the same starting state."""

    name = "sqlite"

    def __init__(self, tmp: Path, readers: Path, port: int, pool: int, n: int) -> None:
        self.tmp, self.readers, self.port, self.pool, self.n = tmp, readers, port, pool, n
        self.base = tmp / f"{self.name}-{n}-base"
        self.base.mkdir()
        self.runs = 0

    def config(self, work: Path) -> Path:
        return write_config(work.with_suffix(".toml"), work, self.readers, self.port,
                            self.pool, "")

    def prepare(self) -> None:
        """Import the readers once (every send starts from this)."""
        done = subprocess.run(command(self.config(self.base), "subscribers", "import",
                                      str(self.readers), "--list", LIST), cwd=ROOT,
                              env=child_env(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"import failed: {done.stderr[-2000:]}")

    def fresh(self) -> Path:
        """A configuration whose store is as prepared."""
        self.runs += 1
        work = self.tmp / f"{self.name}-{self.n}-run{self.runs}"
        shutil.copytree(self.base, work)
        return self.config(work)

    def close(self) -> None:
        pass


class PostgresBackend(Backend):
    name = "postgresql"
    EDITION_TABLES = ("deliveries", "edition_stories", "edition_events", "editions", "leases")

    def __init__(self, url: str, *args: object) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        self.admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {self.schema}")
        self.url = make_url(url).update_query_dict(
            {"options": f"-csearch_path={self.schema}"}).render_as_string(hide_password=False)
        super().__init__(*args)  # type: ignore[arg-type]

    def config(self, work: Path) -> Path:
        path = super().config(work)
        text = path.read_text(encoding="utf-8").replace(
            'url = "sqlite:///digest.db"', f'url = "{self.url}"')
        path.write_text(text, encoding="utf-8")
        return path

    def fresh(self) -> Path:
        self.runs += 1
        with self.admin.connect() as conn:
            for table in self.EDITION_TABLES:
                conn.exec_driver_sql(f"DELETE FROM {self.schema}.{table}")
            for table in self.EDITION_TABLES:
                conn.exec_driver_sql(f"VACUUM ANALYZE {self.schema}.{table}")
        work = self.tmp / f"{self.name}-{self.n}-run{self.runs}"
        work.mkdir()
        return self.config(work)

    def close(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {self.schema} CASCADE")
        self.admin.dispose()


def bench(backend: Backend, messages: Path, pairs: int, profile: Path | None
          ) -> tuple[list[float], list[float]]:
    """send/raw and send/wire per pair (raw, wire and send alternately, in turned order)."""
    n, port, pool = backend.n, backend.port, backend.pool
    backend.prepare()
    run_raw(messages, min(n, 2000), port, pool)  # warm-up: page cache, sink; not counted
    if n <= 20000:  # a larger list's first pair is its own warm-up
        run_send(backend.fresh(), n)
    ratios, wire_ratios = [], []
    for pair in range(pairs):
        got: dict[str, Run] = {}
        order = ("raw", "wire", "send") if pair % 2 == 0 else ("send", "wire", "raw")
        for kind in order:
            got[kind] = (run_send(backend.fresh(), n) if kind == "send"
                         else run_raw(messages, n, port, pool, kind))
        raw, wire, send = got["raw"], got["wire"], got["send"]
        ratios.append(raw.wall / send.wall)
        wire_ratios.append(wire.wall / send.wall)
        load = os.getloadavg()[0]
        print(f"  {backend.name:<10} {n:>7,} pair {pair + 1}: raw {n / raw.wall:7.1f} msg/s "
              f"(CPU {raw.cpu / n * 1e3:.3f} ms/msg), wire {n / wire.wall:7.1f} msg/s "
              f"(CPU {wire.cpu / n * 1e3:.3f}), send {n / send.wall:7.1f} readers/s "
              f"(CPU {send.cpu / n * 1e3:.3f} ms/reader, delivery phase "
              f"{send.delivery_rate:.0f}/s): send/raw {ratios[-1]:.3f}, send/wire "
              f"{wire_ratios[-1]:.3f}  [load {load:.1f}]", flush=True)
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        path = profile / f"send-{backend.name}-{n}.prof"
        run_send(backend.fresh(), n, profile=path)
        print_profile(path, f"{backend.name}, {n} readers", n)
    return ratios, wire_ratios


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-child":
        raw_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                  int(sys.argv[6]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--pairs", type=int, default=2, help="raw/send pairs (at least 2)")
    parser.add_argument("--pool", type=int, default=10, help="SMTP connections")
    parser.add_argument("--pg", default=os.environ.get("DIGEST_BENCH_DATABASE_URL")
                        or os.environ.get("DIGEST_TEST_DATABASE_URL"))
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also profile one send per backend and size; .prof files here")
    args = parser.parse_args()
    if args.pairs < 2:
        parser.error("--pairs must be at least 2")
    sizes = [int(x) for x in args.readers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-command-"))
    sink = None
    results: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    try:
        sink, port, kind = start_sink()
        print(f"sink: {kind}; pool {args.pool}; {args.pairs} raw/send pairs per size and "
              "backend, alternating order", flush=True)
        readers_all = tmp / "readers.csv"
        messages = prebuilt(tmp, readers_all)
        for n in sizes:
            readers = tmp / f"readers-{n}.csv"
            write_readers(readers, n)
            backends: list[Backend] = [Backend(tmp, readers, port, args.pool, n)]
            if args.pg and not args.skip_pg:
                backends.append(PostgresBackend(args.pg, tmp, readers, port, args.pool, n))
            for backend in backends:
                try:
                    results[(backend.name, n)] = bench(backend, messages, args.pairs,
                                                       args.profile)
                finally:
                    backend.close()
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    ok = True
    print(f"\nsend/raw (whole command over raw aiosmtplib, pool {args.pool}; goal >= {GOAL} "
          "on SQLite), and send/wire (over digest's own client path, the same bytes: what the "
          "command around the SMTP conversations costs; not gated):")
    print(f"  {'readers':>9}  {'sqlite send/raw':<26} {'sqlite send/wire':<26} "
          f"{'postgresql send/raw':<26} postgresql send/wire")
    for n in sizes:
        cells = []
        for name in ("sqlite", "postgresql"):
            got = results.get((name, n))
            if got is None:
                cells += ["-", "-"]
                continue
            for which, ratios in enumerate(got):
                median = statistics.median(ratios)
                if name == "sqlite" and which == 0:
                    ok = ok and median >= GOAL
                cells.append(f"{median:.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
        print(f"  {n:>9,}  " + " ".join(f"{c:<26}" for c in cells[:3]) + f" {cells[3]}")
    print("goal (send >= 0.85 x raw on SQLite):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
