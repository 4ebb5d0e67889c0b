"""DKIM benchmark: the whole `send` command with DKIM on and off, alternately, in one run.

Each run is ``python run_digest.py send --config F --list daily --as-of 2025-08-25T07:00`` in
a child process: start-up, configuration (the DKIM keys are parsed there), the import of an
unchanged subscribers file, the edition build, publishing the ledger, delivery through a pool
of ``--pool`` connections to Postfix's ``smtp-sink`` on 127.0.0.1 (started here), and the
report. Every run starts from a copy of the same store (the readers already imported), so
the two modes do the same work but for the signatures. Runs go in ABBA order (off, on, on,
off, ...) after one unmeasured warm-up, so a drift in this VM's speed falls on both modes;
each pair's ratio is on/off of the readers per second of the whole command, and the result
is the median of the pairs (their spread is printed too).

The configuration is the repository's ``digest.toml`` with a ``[[relays]]`` entry for the
sink and, for "on", ``[dkim]`` with fresh keys: RSA-2048 by default, ``--algorithms`` for
Ed25519 beside it (or alone). The readers use bench_send.py's mix of section preferences and names.

Goal (issue 14, item 2): DKIM-on >= 0.6 x DKIM-off. Exit status 1 when it is missed.
``--profile DIR`` also runs one "off" and one "on" send under cProfile with a CPU clock (not
timed) and prints where their CPU time goes, part by part.

    python bench/bench_dkim.py [--readers 10000] [--pairs 3] [--pool 10]
                               [--algorithms rsa-sha256,ed25519-sha256] [--profile DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_send import AS_OF, CONFIG, LIST, ROOT, start_sink, subscribers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

GOAL = 0.6
SECRET = "bench-secret-key-" + "0" * 32


@dataclass
class Run:
    mode: str
    wall: float  # seconds, the whole command
    cpu: float  # seconds of the child's CPU (user + system)
    sent: int
    delivery_rate: float  # what the command's own report says for its delivery phase


def write_readers(path: Path, n: int) -> None:
    """The subscribers file: bench_send's readers (names, section preferences)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["email", "name", "sections"])
        for email, name, sections in subscribers(n):
            out.writerow([email, name or "", ";".join(sorted(sections or ()))])


def write_keys(folder: Path, algorithms: list[str]) -> str:
    """Fresh keys in ``folder``; returns the ``[dkim]`` configuration text that uses them."""
    make = {"rsa-sha256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ed25519-sha256": ed25519.Ed25519PrivateKey.generate}
    listed = ", ".join(f'"{name}"' for name in algorithms)
    text = ["\n[dkim]", f"algorithms = [{listed}]"]
    for name in algorithms:
        path = folder / f"dkim-{name}.pem"
        path.write_bytes(make[name]().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        text += [f"[dkim.{name}]", f'selector = "bench-{name[:3]}"',
                 f'private_key_file = "{path}"']
    return "\n".join(text) + "\n"


def write_config(path: Path, work_dir: Path, readers: Path, port: int, pool: int,
                 dkim: str) -> Path:
    """The repository's digest.toml, pointed at ``work_dir``, the readers and the sink."""
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace('work_dir = "var"', f'work_dir = "{work_dir}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{ROOT / "templates"}"')
    for rel in ("content/front-page.txt", "content/newsroom.rss"):
        text = text.replace(f'"{rel}"', f'"{ROOT / rel}"')
    text = text.replace('"subscribers/sample.csv"', f'"{readers}"')
    text += (f'\n[[relays]]\nname = "sink"\nhost = "127.0.0.1"\nport = {port}\n'
             f'security = "none"\npool_size = {pool}\n' + dkim)
    path.write_text(text, encoding="utf-8")
    return path


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_digest.py"), *args, "--config", str(config)]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_SECRET_KEY"] = os.environ.get("DIGEST_SECRET_KEY", SECRET)
    return env


def run_send(mode: str, config: Path, n: int, *, profile: Path | None = None) -> Run:
    args = ["send", "--list", LIST, "--as-of", AS_OF]
    cmd = command(config, *args)
    if profile is not None:
        cmd = [sys.executable, "-c", PROFILER, str(profile), *cmd[1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"send ({mode}) failed with exit code {done.returncode}: "
                 f"{done.stderr.strip() or done.stdout.strip()}")
    found = re.search(r"(\d+) sent in ([\d.]+) s \((\d+)/s\)", done.stdout)
    sent = int(found.group(1)) if found else 0
    if sent != n:
        sys.exit(f"send ({mode}) sent {sent} of {n} messages:\n{done.stdout}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(mode, wall, cpu, sent, float(found.group(3)) if found else 0.0)


# Where CPU time goes, by part of the command: (label, does this (file, function) belong).
GROUPS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("DKIM signature (OpenSSL via cryptography)",
     lambda f, n: "of 'cryptography" in n and n.startswith("<method 'sign'")),
    ("DKIM canonicalization, body and header hashes, fields",
     lambda f, n: f.endswith("mail/signing.py") or "site-packages/dkim/" in f),
    ("message build (tokens, slot values, MIME bytes)",
     lambda f, n: any(p in f for p in ("digest/mail/", "pipeline/messages.py", "digest/tokens.py",
                                      "digest/render/"))),
    ("SMTP client (aiosmtplib, asyncio, sockets)",
     lambda f, n: any(p in f for p in ("aiosmtplib", "asyncio", "selectors.py", "socket.py",
                                      "digest/deliver/pool.py"))),
    ("ledger and store (digest/store, SQLAlchemy, sqlite3)",
     lambda f, n: any(p in f for p in ("digest/store", "sqlalchemy", "sqlite3"))),
    ("delivery worker (claims, marks, report)", lambda f, n: "digest/deliver/" in f),
)


def _group(file: str, name: str) -> str:
    return next((label for label, belongs in GROUPS if belongs(file, name)),
                "start-up, subscriber file sync, edition build, other")


def print_profile(path: Path, label: str, n: int) -> None:
    """CPU seconds per part (a built-in's time goes to the part of each caller)."""
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    parts: dict[str, float] = {}
    for (file, _line, name), (_, _, own, _, callers) in raw.items():
        group = _group(file, name)
        if file == "~" and group.startswith("start-up") and callers:
            for (cfile, _cl, cname), (_, _, ctt, _) in callers.items():
                g = _group(cfile, cname)
                parts[g] = parts.get(g, 0.0) + ctt
            continue
        parts[group] = parts.get(group, 0.0) + own
    print(f"\nCPU profile of one `send` with DKIM {label} (cProfile with a CPU clock, "
          f"{total:.2f} s in all, profiler overhead included):")
    for group, spent in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {spent:7.2f} s {spent / total:6.1%}  {spent / n * 1e3:7.3f} ms/reader  {group}")


PROFILER = """
import cProfile, runpy, sys, time
out, script = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
profile.disable()
profile.dump_stats(out)
sys.exit(code)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=3, help="off/on pairs (at least 2)")
    parser.add_argument("--pool", type=int, default=10, help="SMTP connections")
    parser.add_argument("--algorithms", default="rsa-sha256",
                        help="comma-separated, signed in this order when DKIM is on "
                             "(default rsa-sha256; e.g. rsa-sha256,ed25519-sha256)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also profile one send of each mode; keep the .prof files here")
    args = parser.parse_args()
    if args.pairs < 2:
        parser.error("--pairs must be at least 2")
    algorithms = args.algorithms.split(",")
    if not algorithms or not set(algorithms) <= {"rsa-sha256", "ed25519-sha256"}:
        parser.error("--algorithms takes rsa-sha256 and/or ed25519-sha256")
    n = args.readers

    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-dkim-"))
    sink = None
    runs: list[Run] = []
    try:
        sink, port, sink_kind = start_sink()
        readers = tmp / "readers.csv"
        write_readers(readers, n)
        dkim_text = write_keys(tmp, algorithms)
        # One store with the readers imported; every run starts from a copy of it.
        base = tmp / "base"
        base.mkdir()
        base_config = write_config(tmp / "base.toml", base, readers, port, args.pool, "")
        subprocess.run(command(base_config, "subscribers", "import", str(readers), "--list",
                               LIST), cwd=ROOT, env=child_env(), check=True,
                       capture_output=True)

        def fresh(mode: str, number: int) -> Path:
            work = tmp / f"{mode}{number}"
            shutil.copytree(base, work)
            return write_config(tmp / f"{mode}{number}.toml", work, readers, port, args.pool,
                                dkim_text if mode == "on" else "")

        run_send("off", fresh("off", 0), n)  # warm-up: caches, imports; not counted
        for pair in range(args.pairs):
            for mode in (("off", "on") if pair % 2 == 0 else ("on", "off")):
                run = run_send(mode, fresh(mode, pair + 1), n)
                runs.append(run)
                print(f"  pair {pair + 1} {mode:>3}: {run.wall:6.2f} s = {n / run.wall:6.1f} "
                      f"readers/s, CPU {run.cpu / n * 1e3:.3f} ms/reader, delivery phase "
                      f"{run.delivery_rate:.0f}/s", flush=True)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiles = {mode: args.profile / f"send-dkim-{mode}.prof" for mode in ("off", "on")}
            for mode, path in profiles.items():
                run_send(mode, fresh(mode, 99), n, profile=path)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    off = [r for r in runs if r.mode == "off"]
    on = [r for r in runs if r.mode == "on"]
    ratios = [f.wall / o.wall for f, o in zip(off, on, strict=True)]  # on/off rates
    delivery = [o.delivery_rate / f.delivery_rate for f, o in zip(off, on, strict=True)]
    ratio = statistics.median(ratios)
    signing = " + ".join(f"{a} (2048 bits)" if a == "rsa-sha256" else a for a in algorithms)
    print(f"sink: {sink_kind}; {n} readers, pool {args.pool}, {args.pairs} pairs in ABBA "
          f"order; DKIM on = {signing}, relaxed/relaxed")
    for label, group in (("DKIM off", off), ("DKIM on ", on)):
        rates = [n / r.wall for r in group]
        print(f"{label}: {statistics.median(rates):7.1f} readers/s (runs "
              f"{', '.join(f'{x:.1f}' for x in rates)}), whole command; CPU "
              f"{statistics.median([r.cpu / n for r in group]) * 1e3:.3f} ms/reader")
    spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
    if len(ratios) > 1:
        spread += f", stdev {statistics.stdev(ratios):.3f}"
    print(f"DKIM on / off: {ratio:.3f} (median of {len(ratios)} pairs: "
          f"{', '.join(f'{x:.3f}' for x in ratios)}; range {spread}); delivery phase alone "
          f"{statistics.median(delivery):.3f}")
    cpu_on, cpu_off = (statistics.median([r.cpu for r in group]) for group in (on, off))
    print(f"DKIM's CPU per message (on - off, medians): {(cpu_on - cpu_off) / n * 1e3:.3f} ms;"
          f" CPU per reader off / on: {cpu_off / cpu_on:.3f} (what the rate ratio tends to "
          "when the machine's cores are busy with other work)")
    if args.profile is not None:
        for mode in ("off", "on"):
            print_profile(args.profile / f"send-dkim-{mode}.prof", mode, n)
    ok = ratio >= GOAL
    print(f"goal (DKIM on >= {GOAL} x off, whole `send`):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
