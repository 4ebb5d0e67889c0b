"""Memory benchmark: peak RSS of whole commands over a small list and a large one (issue 14
item 3).

Each command is ``python run_digest.py ...`` in a child process, on SQLite, with the
repository's ``digest.toml`` pointed at a temporary folder, the readers' CSV file (written
here, in the temporary folder: bench_send.py's mix of names and section preferences) and a
``[[relays]]`` entry for Postfix's ``smtp-sink`` on 127.0.0.1 (started here). The peak
resident set of each child is read from ``os.wait4`` (``ru_maxrss`` of that one child).

For each list size it runs, in this order, on one store:

* ``subscribers import FILE`` (the first import of every reader: not gated, printed);
* ``send --dry-run`` (the file's sync read-only, the edition build, every message built);
* ``send`` (the sync of the unchanged file, build, publish, deliver, report) when the size
  is at most ``--send-max``.

Goal: the large list's peak RSS within 50 MB of the small list's, for ``send --dry-run``
over ``--big`` (1,000,000) readers and ``send`` over ``--send`` (200,000) readers, both
against ``--small`` (2,000). Exit status 1 when a goal is missed.

    python bench/bench_memory.py [--small 2000] [--big 1000000] [--send 200000] [--pool 10]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_dkim import child_env, command, write_config
from bench_send import LIST, PROFILES, ROOT, start_sink

GOAL_MB = 50.0
AS_OF = "2025-08-25T07:00"


@dataclass
class Measure:
    what: str
    readers: int
    peak_mb: float
    wall: float
    out: str


def write_readers(path: Path, n: int) -> None:
    """bench_send's readers (names, section preferences), streamed to the file."""
    weights = [share for _, share in PROFILES]
    cycle = [prefs for (prefs, _), w in zip(PROFILES, weights, strict=True) for _ in range(w)]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["email", "name", "sections"])
        for i in range(n):
            name = "" if i % 5 == 0 else (f"Zoë Ångström {i}" if i % 7 == 0 else f"Reader {i}")
            sections = cycle[(i * 37) % len(cycle)]
            out.writerow([f"reader{i}@example.org", name, ";".join(sorted(sections or ()))])


def run(what: str, n: int, cmd: list[str]) -> Measure:
    """Run ``cmd``; its peak RSS in MB (Linux ``ru_maxrss`` is in KiB) and wall time."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{what} over {n} readers failed (exit {proc.returncode}):\n"
                 f"{errors[-3000:] or text[-3000:]}")
    m = Measure(what, n, usage.ru_maxrss / 1024, wall, text)
    print(f"  {what:<22} {n:>9,} readers: peak RSS {m.peak_mb:7.1f} MB, {wall:7.1f} s",
          flush=True)
    return m


def measure(tmp: Path, n: int, port: int, pool: int, *, send: bool) -> dict[str, Measure]:
    folder = tmp / f"n{n}"
    work = folder / "work"
    work.mkdir(parents=True)
    readers = folder / "readers.csv"
    write_readers(readers, n)
    config = write_config(folder / "digest.toml", work, readers, port, pool, "")
    found = {"import": run("subscribers import", n, command(
        config, "subscribers", "import", str(readers), "--list", LIST))}
    found["dry-run"] = run("send --dry-run", n, command(
        config, "send", "--list", LIST, "--as-of", AS_OF, "--dry-run"))
    if not re.search(rf"built {n} messages", found["dry-run"].out):
        sys.exit(f"send --dry-run over {n} readers did not build {n} messages:\n"
                 f"{found['dry-run'].out[-2000:]}")
    if send:
        found["send"] = run("send", n, command(config, "send", "--list", LIST,
                                               "--as-of", AS_OF))
        if not re.search(rf"\b{n} sent in ", found["send"].out):
            sys.exit(f"send over {n} readers did not send {n} messages:\n"
                     f"{found['send'].out[-2000:]}")
    shutil.rmtree(folder, ignore_errors=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--big", type=int, default=1_000_000, help="readers for the dry run")
    parser.add_argument("--send", type=int, default=200_000, help="readers for the real send")
    parser.add_argument("--pool", type=int, default=10, help="SMTP connections")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-memory-"))
    sink = None
    try:
        sink, port, kind = start_sink()
        print(f"sink: {kind}; SQLite; pool {args.pool}")
        small = measure(tmp, args.small, port, args.pool, send=True)
        sent = measure(tmp, args.send, port, args.pool, send=True)
        big = measure(tmp, args.big, port, args.pool, send=False)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    ok = True
    print(f"\npeak RSS, large list over {args.small:,} readers (goal: within {GOAL_MB:.0f} MB "
          "for send --dry-run and send):")
    for what, large in (("import", sent), ("import", big), ("dry-run", sent),
                        ("dry-run", big), ("send", sent)):
        base, other = small[what], large[what]
        grew = other.peak_mb - base.peak_mb
        gated = (what, other.readers) in (("dry-run", args.big), ("send", args.send))
        verdict = ("" if not gated else "  MET" if grew <= GOAL_MB else "  MISSED")
        ok = ok and (not gated or grew <= GOAL_MB)
        print(f"  {other.what:<20} {base.peak_mb:7.1f} MB at {base.readers:,} -> "
              f"{other.peak_mb:7.1f} MB at {other.readers:,}: {grew:+7.1f} MB{verdict}")
    print("goal (flat memory):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
