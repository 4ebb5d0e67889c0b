"""The crash-and-fault suite's harness (fixtures in conftest.py): a recording SMTP relay *process*
(``relay_server.py``), a project folder whose config points at it, real ``run_digest.py``
processes (their output in files, so a killed or stopped process never blocks on a pipe),
and the checks every scenario ends with (:func:`check_delivery`).

The relay's log is the truth about what readers received: a line per stored message,
written before any reply. The ledger is read with the store's own engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from digest.store import open_store
from digest.store.schema import DELIVERED, NON_TERMINAL, deliveries, subscribers

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SERVER = HERE / "relay_server.py"


# -- the relay process ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Event:
    """One line of the relay's log (see relay_server.py)."""

    kind: str
    rcpt: str
    message_id: str
    session: str
    at: float
    pid: int


@dataclass
class Relay:
    """``relay_server.py`` in its own process; :meth:`restart` kills it (SIGKILL) and starts
    a new one on the same port, appending to the same log."""

    folder: Path
    options: list[str]
    port: int = 0
    proc: subprocess.Popen[str] | None = None
    restarts: int = 0
    _seen: list[Event] = field(default_factory=list)  # the log read so far, in order
    _offset: int = 0
    _stored: int = 0

    @property
    def log_path(self) -> Path:
        return self.folder / "relay.log"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> Relay:
        cmd = [sys.executable, str(SERVER), "--log", str(self.log_path), "--port",
               str(self.port), *self.options]
        with open(self.folder / "relay.err", "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, stderr=err)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.stdout.close()
        assert line.startswith("ready "), f"the relay did not start: {line!r}"
        self.port = int(line.split()[1])
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, down: float) -> None:
        """SIGKILL the relay (mid-conversation) unless it died already, stay down ``down``
        seconds, start again on the same port."""
        self.kill()
        time.sleep(down)
        for _ in range(50):  # the port may need a moment before it can be bound again
            try:
                self.start()
                break
            except AssertionError:
                time.sleep(0.1)
        else:
            raise AssertionError("the relay could not listen on its port again")
        self.restarts += 1

    def fast(self) -> None:
        """No more ``--delay`` before each 250 (SIGUSR1)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)

    def dead(self) -> bool:
        """The relay process has exited (a ``--crash-*`` fault, or killed)."""
        return self.proc is None or self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def _read(self) -> None:
        """Parse the lines appended since the last look (only whole lines)."""
        if not self.log_path.exists():
            return
        with open(self.log_path, "rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].decode("utf-8").splitlines():
            kind, rcpt, mid, session, at, pid = line.split("\t")
            self._seen.append(Event(kind, rcpt, mid, session, float(at), int(pid)))
            self._stored += kind == "stored"

    def events(self, *kinds: str) -> list[Event]:
        """The log's lines so far (those of ``kinds``, if given), in order."""
        self._read()
        return [e for e in self._seen if not kinds or e.kind in kinds]

    def stored(self) -> int:
        """How many messages the relay has stored so far."""
        self._read()
        return self._stored

    def copies(self) -> Counter[str]:
        """How many copies each recipient got (stored, whatever the reply)."""
        return Counter(e.rcpt for e in self.events("stored"))


def relay_factory(tmp_path: Path) -> Iterator[Callable[..., Relay]]:
    """``relay_factory("--delay", "0.01", ...)`` starts a relay process with those options;
    every relay started is stopped at the end of the test."""
    started: list[Relay] = []

    def make(*options: str, folder: Path | None = None) -> Relay:
        folder = folder or tmp_path / f"relay{len(started)}"
        folder.mkdir()
        relay = Relay(folder, list(options)).start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.stop()


# -- the project and its processes ---------------------------------------------------------

def reader(i: int) -> str:
    return f"daily{i:04d}@example.org"


def write_config(folder: Path, relay: Relay, *, readers: int, pool: int = 3,
                 rate: float | None = None, delivery: dict[str, str] | None = None) -> Path:
    """``digest.toml`` for one list ``daily`` of ``readers`` readers (``daily0000@...``),
    sending through ``relay`` over ``pool`` connections; ``delivery`` overrides the short
    timings of ``[delivery]`` (values are TOML literals): a message may take 1 s, a claim
    is held 4 s (a dead process's rows come back after that), retries after 0.5-1 s."""
    timings = {"message_timeout": '"1s"', "claim_lease": '"4s"', "first_retry": '"0.5s"',
               "max_retry_delay": '"1s"', "retry_window": '"90s"', **(delivery or {})}
    csv = folder / "daily.csv"
    csv.write_text("email,name\n" + "".join(f"{reader(i)},Reader {i}\n"
                                            for i in range(readers)), encoding="utf-8")
    body = f"""\
[digest]
work_dir = "var"
templates_dir = "{REPO / 'templates'}"

[site]
name = "The Morning Ledger"
url = "https://news.example.org"
postal_address = "The Morning Ledger, 1 Press Row, Springfield 12345"
domain = "news.example.org"

[web]
base_url = "https://news.example.org/digest"

[delivery]
{"".join(f"{k} = {v}{chr(10)}" for k, v in timings.items())}
[scheduler]
heartbeat = "0.3s"
lease = "3s"

[[relays]]
name = "faulty"
host = "{relay.host}"
port = {relay.port}
security = "none"
pool_size = {pool}
timeout = "5s"
{f"rate_per_second = {rate}" if rate else ""}

[lists.daily]
title = "The Daily"
sources = ["{REPO / 'content' / 'front-page.txt'}"]
timezone = "UTC"
send_time = "07:00"
from = "The Morning Ledger <daily@news.example.org>"
subscribers_files = ["{csv}"]
"""
    path = folder / "digest.toml"
    path.write_text(body, encoding="utf-8")
    return path


def publish(config: Path, db: Ledger, readers: int) -> int:
    """Build and publish today's edition of ``daily`` in this process (what `send` does
    before it delivers), for scenarios where only `worker` processes deliver; its id."""
    import asyncio
    from datetime import UTC, datetime

    from digest import pipeline
    from digest.config import load_settings

    settings = load_settings(config, env={"DIGEST_DATABASE_URL": db.url,
                                          "DIGEST_SECRET_KEY": "fault-suite-secret-key"})
    lst = settings.get_list("daily")
    pipeline.sync_subscriber_files(settings, lst, db.store)
    built = asyncio.run(pipeline.build_edition(settings, lst, store=db.store))
    record = db.store.record_edition(built.edition)
    published = db.store.publish_edition(record.id, message_id_domain="news.example.org",
                                         now=datetime.now(UTC))
    assert published == readers, published
    return record.id


@dataclass
class Proc:
    """A ``run_digest.py`` process; stdout and stderr go to files."""

    args: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    copiers: list[threading.Thread] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def wait(self, timeout: float) -> int:
        """The exit code; fails (killing the process) when it runs past ``timeout``."""
        try:
            code = self.popen.wait(timeout)
            for thread in self.copiers:
                thread.join(10)
            return code
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{' '.join(self.args)} still ran after {timeout} s; "
                                 f"stderr: {self.err()[-2000:]}") from None

    def describe(self) -> str:
        return (f"{' '.join(self.args)} (exit {self.popen.returncode}): stdout "
                f"{self.out()[-1500:]!r}, stderr {self.err()[-2500:]!r}")


class Runner:
    """Starts ``python run_digest.py ARGS --config CONFIG`` against ``db_url``; every process
    still running at the end of the test is killed."""

    def __init__(self, folder: Path, config: Path, db_url: str) -> None:
        self.folder = folder
        self.config = config
        self.db_url = db_url
        self.procs: list[Proc] = []

    def start(self, *args: str, env: dict[str, str] | None = None, pipes: bool = False) -> Proc:
        """Start a process; its output goes to files, or with ``pipes`` through pipes that
        this process copies to those files (so the child writes no file of its own: a
        full-disk fault made with RLIMIT_FSIZE then hits only its database)."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        environ.update(DIGEST_SECRET_KEY="fault-suite-secret-key", DIGEST_DATABASE_URL=self.db_url,
                       **(env or {}))
        n = len(self.procs)
        out, err = self.folder / f"proc{n}.out", self.folder / f"proc{n}.err"
        cmd = [sys.executable, str(REPO / "run_digest.py"), *args, "--config", str(self.config)]
        if pipes:
            popen = subprocess.Popen(cmd, env=environ, cwd=self.config.parent,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            copiers = [threading.Thread(target=_copy, args=(pipe, path), daemon=True)
                       for pipe, path in ((popen.stdout, out), (popen.stderr, err))]
            for thread in copiers:
                thread.start()
        else:
            copiers = []
            with open(out, "wb") as o, open(err, "wb") as e:
                popen = subprocess.Popen(cmd, env=environ, cwd=self.config.parent, stdout=o,
                                         stderr=e)
        proc = Proc(args, popen, out, err, copiers)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 90) -> Proc:
        """Start a process and wait for its exit."""
        proc = self.start(*args)
        proc.wait(timeout)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.popen.send_signal(signal.SIGCONT)  # a stopped process dies at once
                proc.kill()


def ledger_fixture(db_url: str) -> Iterator[Ledger]:
    db = Ledger(db_url)
    try:
        yield db
    finally:
        db.close()


def _copy(pipe: Any, path: Path) -> None:
    with pipe, open(path, "ab") as out:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            out.write(chunk)
            out.flush()


def runner_factory(tmp_path: Path) -> Iterator[Callable[[Path, str], Runner]]:
    made: list[Runner] = []

    def make(config: Path, db_url: str) -> Runner:
        runner = Runner(config.parent, config, db_url)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               proc: Proc | None = None) -> None:
    """Poll ``condition`` until true; fail naming ``what`` (and a dead process's output)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and not proc.alive():
            raise AssertionError(f"{what}: the process ended: {proc.describe()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# -- the ledger ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    id: int
    email: str
    status: str
    claimed_by: str | None
    attempts: int
    message_id: str
    reason: str | None


class Ledger:
    """The ledger of the test's database, read through one open store."""

    def __init__(self, db_url: str) -> None:
        self.url = db_url
        self.store = open_store(db_url)  # the processes find the schema migrated

    def close(self) -> None:
        self.store.close()

    def rows(self) -> list[Row]:
        """Every delivery row with its reader's address."""
        query = (sa.select(deliveries.c.id, subscribers.c.email, deliveries.c.status,
                           deliveries.c.claimed_by, deliveries.c.attempts,
                           deliveries.c.message_id, deliveries.c.reason)
                 .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                 .order_by(deliveries.c.id))
        with self.store.engine.connect() as conn:
            return [Row(*r) for r in conn.execute(query)]

    def claims(self, pid: int) -> int:
        """How many rows process ``pid`` holds "sending" (worker ids are host:pid:random)."""
        query = sa.select(sa.func.count()).where(
            deliveries.c.status == "sending", deliveries.c.claimed_by.like(f"%:{pid}:%"))
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def held_by(self, pid: int) -> set[str]:
        """Addresses whose rows process ``pid`` holds "sending"."""
        return {r.email for r in self.rows()
                if r.status == "sending" and r.claimed_by and f":{pid}:" in r.claimed_by}

    def summary(self) -> Counter[str]:
        return summary(self.rows())


def summary(rows: list[Row]) -> Counter[str]:
    return Counter(r.status for r in rows)


def check_delivery(relay: Relay, db: Ledger, readers: int, *,
                   max_copies: int | Callable[[str], int] = 2,
                   expired: frozenset[str] = frozenset()) -> tuple[list[Row], Counter[str]]:
    """The checks every scenario ends with:

    - every row is terminal (nothing queued or sending after the final pass);
    - nobody was lost: every reader has a row that ended delivered and at least one copy in
      the relay's log, and the ledger's "sent" rows are exactly the readers the relay has;
    - every copy a reader got carries the row's one stable Message-ID;
    - no reader got more than ``max_copies`` (a number, or a bound per address);
    - the readers in ``expired`` (whom the relay refused with a 4xx every time) got nothing
      and their rows ended "expired", none other did.
    """
    rows = db.rows()
    copies = relay.copies()
    everyone = {reader(i) for i in range(readers)}
    states = summary(rows)
    assert not NON_TERMINAL & set(states), f"rows left unfinished: {dict(states)}"
    assert {r.email for r in rows} == everyone, "a reader has no ledger row"
    undelivered = {r.email: (r.status, r.reason) for r in rows
                   if r.status not in DELIVERED and r.email not in expired}
    assert not undelivered, f"readers whose row did not end delivered: {undelivered}"
    assert {r.email for r in rows if r.status == "expired"} == expired
    missing = everyone - expired - set(copies)
    assert not missing, f"{len(missing)} readers never got the edition: {sorted(missing)[:10]}"
    assert set(copies) == everyone - expired, set(copies) ^ (everyone - expired)
    by_rcpt: dict[str, set[str]] = defaultdict(set)
    for e in relay.events("stored"):
        by_rcpt[e.rcpt].add(e.message_id)
    expected = {r.email: r.message_id if r.message_id.startswith("<") else f"<{r.message_id}>"
                for r in rows}
    wrong = {a: ids for a, ids in by_rcpt.items() if ids != {expected[a]}}
    assert not wrong, f"copies with another Message-ID than the row's: {list(wrong.items())[:5]}"
    bound = max_copies if callable(max_copies) else (lambda _a: max_copies)
    over = {a: n for a, n in copies.items() if n > bound(a)}
    assert not over, f"readers over the repeat bound: {over}"
    return rows, copies
