"""Worker benchmark: 1, 2 and 4 ``worker`` processes sharing one edition on PostgreSQL (issue 14
item 4).

One schema of the PostgreSQL database (``--pg``, ``DIGEST_BENCH_DATABASE_URL`` or
``DIGEST_TEST_DATABASE_URL``; dropped at the end) gets ``--readers`` readers (bench_send.py's
mix of names and section preferences). For each round, the edition rows of the last round
are deleted, today's edition is built, recorded and published here, and then K processes
``python run_digest.py worker --once`` start together, each with a pool of ``--pool``
connections to Postfix's ``smtp-sink`` on 127.0.0.1 (started here). They share the edition
through their claims until every row is sent.

Printed per round: the edition's rate (rows sent over the span from the first row's
"sent" to the last one's, from the ledger), each worker's own rate (its log line: rows it
sent over its delivery time), the scaling factor over one worker (median rates), and the
CPU each process used: every worker (``os.wait4``), smtp-sink (``/proc``), and the whole
machine's busy share of its cores over the round (``/proc/stat``), which says what bounds
the rate: the workers' CPU, the sink's, or the cores themselves (other processes too).

    python bench/bench_workers.py [--readers 40000] [--workers 1,2,4] [--rounds 2]
                                  [--pool 10] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_command import PostgresBackend
from bench_dkim import child_env, command
from bench_memory import write_readers
from bench_send import AS_OF, LIST, ROOT, start_sink

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    workers: int
    rate: float  # the edition's rows per second (ledger span)
    wall: float  # first start to last exit
    own: list[float] = field(default_factory=list)  # each worker's rate
    sent: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # each worker's CPU seconds
    sink_cpu: float = 0.0
    busy: float = 0.0  # share of the machine's cores busy (0..1) over the round


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK


def machine() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def publish(config: Path) -> int:
    """Build, record and publish today's edition; returns its ledger rows."""
    sys.path.insert(0, str(ROOT))
    from datetime import UTC, datetime

    from digest.config import load_settings
    from digest.pipeline import build_edition, parse_as_of
    from digest.store import open_store

    settings = load_settings(config, env=child_env())
    lst = settings.get_list(LIST)
    as_of = parse_as_of(AS_OF, lst)
    with open_store(settings.database_url) as store:
        outcome = asyncio.run(build_edition(settings, lst, store=store, as_of=as_of))
        record = store.record_edition(outcome.edition)
        return store.publish_edition(record.id, message_id_domain=settings.site.domain,
                                     now=datetime.now(UTC))


def ledger_rate(backend: PostgresBackend) -> tuple[float, int]:
    with backend.admin.connect() as conn:
        first, last, n = conn.exec_driver_sql(
            f"SELECT min(finished_at), max(finished_at), count(*) FROM "
            f"{backend.schema}.deliveries WHERE status = 'sent'").one()
    span = (last - first).total_seconds()
    return (n - 1) / span if span > 0 else 0.0, int(n)


def run_round(backend: PostgresBackend, k: int, n: int, sink_pid: int) -> Round:
    config = backend.fresh()
    created = publish(config)
    if created != n:
        sys.exit(f"published {created} rows, expected {n}")
    cmd = command(config, "worker", "--once", "--poll", "2")
    cmd.insert(2, "--log-level")
    cmd.insert(3, "info")
    sink0, (busy0, total0) = proc_cpu(sink_pid), machine()
    start = time.perf_counter()
    procs = []
    for i in range(k):
        err = tempfile.TemporaryFile()
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=child_env(),
                                       stdout=subprocess.DEVNULL, stderr=err), err))
    result = Round(k, 0.0, 0.0)
    for proc, err in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        text = err.read().decode(errors="replace")
        err.close()
        if os.environ.get("BENCH_DEBUG"):
            print(text[-3000:])
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"worker failed: {text[-2000:]}")
        done = re.findall(r"delivered: sent=(\d+) .* in ([\d.]+) s", text)
        sent = sum(int(n) for n, _ in done)
        spent = sum(float(t) for _, t in done)
        result.sent.append(sent)
        result.own.append(sent / spent if spent else 0.0)
        result.cpu.append(usage.ru_utime + usage.ru_stime)
    result.wall = time.perf_counter() - start
    busy1, total1 = machine()
    result.sink_cpu = proc_cpu(sink_pid) - sink0
    result.busy = (busy1 - busy0) / (total1 - total0)
    result.rate, sent = ledger_rate(backend)
    if sent != n or sum(result.sent) != n:
        sys.exit(f"{k} workers: {sent} rows sent in the ledger, {sum(result.sent)} by the "
                 f"workers' own count, of {n}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=40000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=10, help="SMTP connections per worker")
    parser.add_argument("--pg", default=os.environ.get("DIGEST_BENCH_DATABASE_URL")
                        or os.environ.get("DIGEST_TEST_DATABASE_URL"))
    args = parser.parse_args()
    if not args.pg:
        parser.error("needs PostgreSQL: --pg URL or DIGEST_BENCH_DATABASE_URL")
    counts = [int(x) for x in args.workers.split(",")]
    n = args.readers
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-workers-"))
    sink = backend = None
    rounds: list[Round] = []
    try:
        sink, port, kind = start_sink()
        readers = tmp / "readers.csv"
        write_readers(readers, n)
        backend = PostgresBackend(args.pg, tmp, readers, port, args.pool, n)
        backend.prepare()
        print(f"sink: {kind}; PostgreSQL; {n:,} readers; pool {args.pool} per worker; "
              f"{os.cpu_count()} cores", flush=True)
        order = [k for r in range(args.rounds) for k in (counts if r % 2 == 0
                                                          else counts[::-1])]
        for k in order:
            got = run_round(backend, k, n, sink.pid)
            rounds.append(got)
            print(f"  {k} worker(s): edition {got.rate:7.1f} msg/s (wall {got.wall:5.1f} s); "
                  f"each {', '.join(f'{r:.0f}' for r in got.own)} msg/s, sent "
                  f"{', '.join(str(s) for s in got.sent)}; CPU per message: workers "
                  f"{sum(got.cpu) / n * 1e3:.3f} ms, sink {got.sink_cpu / n * 1e3:.3f} ms; "
                  f"CPU-bound share: workers {sum(got.cpu) / got.wall:.2f} cores, sink "
                  f"{got.sink_cpu / got.wall:.2f}, machine {got.busy:.0%} busy "
                  f"[load {os.getloadavg()[0]:.1f}]", flush=True)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        if backend is not None:
            backend.close()
        shutil.rmtree(tmp, ignore_errors=True)

    one = statistics.median([r.rate for r in rounds if r.workers == counts[0]])
    print(f"\n{'workers':>8} {'edition msg/s (runs)':<30} {'scaling':>8} {'per worker':>11} "
          f"{'worker cores':>13} {'sink cores':>11} {'machine busy':>13}")
    for k in counts:
        group = [r for r in rounds if r.workers == k]
        rate = statistics.median([r.rate for r in group])
        runs = ", ".join(f"{r.rate:.0f}" for r in group)
        print(f"{k:>8} {rate:>8.1f} ({runs}){'':<{max(0, 20 - len(runs))}} "
              f"{rate / one:>8.2f} {rate / k:>11.1f} "
              f"{statistics.median([sum(r.cpu) / r.wall for r in group]):>13.2f} "
              f"{statistics.median([r.sink_cpu / r.wall for r in group]):>11.2f} "
              f"{statistics.median([r.busy for r in group]):>13.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
