"""What the process tests share: a project folder (config, sources, subscriber files), a
recording SMTP server on its own thread, and `run_digest.py` started as a real process.

Use::

    with recording_server() as srv:
        config = write_project(tmp_path, relay=srv, lists={"daily": ListSpec(readers=50)})
        proc = start(config, "send")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from smtp_servers import FaultHandler, ServerInfo, smtp_server

__all__ = ["ISO_LINE", "ListSpec", "recording_server", "start", "wait_for", "write_project"]

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
#: A log line as digest writes it: ISO 8601 time with milliseconds and UTC offset.
ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                      r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


@dataclass(frozen=True)
class ListSpec:
    """One list of the test project: ``readers`` subscribers ``<name>NNNN@example.org``."""

    readers: int = 5
    send_time: str = "07:00"
    timezone: str = "UTC"


@contextlib.contextmanager
def recording_server(handler: FaultHandler | None = None) -> Iterator[ServerInfo]:
    """An aiosmtpd server (tests/smtp_servers.py) on 127.0.0.1, run by its own thread and
    event loop, so a test can block on processes while it records what arrives."""
    ready = threading.Event()
    done: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    info: list[ServerInfo] = []

    async def serve() -> None:
        nonlocal done, loop
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        async with smtp_server(handler or FaultHandler()) as srv:
            info.append(srv)
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the SMTP server did not start"
    try:
        yield info[0]
    finally:
        assert loop is not None and done is not None
        loop.call_soon_threadsafe(done.set)
        thread.join(10)


def write_project(folder: Path, *, lists: dict[str, ListSpec], relay: ServerInfo | None,
                  rate: float | None = None, pool: int = 4, work_dir: str = "var",
                  extra: str = "") -> Path:
    """A config in ``folder`` with its lists, each with a subscriber file and the sample
    front page as its source, sending through ``relay`` (rate-limited to ``rate``/s)."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = [f"""\
[digest]
work_dir = "{work_dir}"
templates_dir = "{REPO / 'templates'}"

[site]
name = "The Morning Ledger"
url = "https://news.example.org"
postal_address = "The Morning Ledger, 1 Press Row, Springfield 12345"
domain = "news.example.org"

[web]
base_url = "https://news.example.org/digest"

[delivery]
message_timeout = "5s"
first_retry = "1s"
max_retry_delay = "2s"

[scheduler]
heartbeat = "0.3s"
lease = "3s"
"""]
    if relay is not None:
        parts.append(f"""
[[relays]]
name = "test"
host = "{relay.host}"
port = {relay.port}
security = "none"
pool_size = {pool}
timeout = "5s"
""" + (f"rate_per_second = {rate}\n" if rate else ""))
    for name, spec in lists.items():
        csv = folder / f"{name}.csv"
        csv.write_text("email,name\n" + "".join(
            f"{name}{i:04d}@example.org,Reader {i}\n" for i in range(spec.readers)),
            encoding="utf-8")
        parts.append(f"""
[lists.{name}]
title = "List {name}"
sources = ["{REPO / 'content' / 'front-page.txt'}"]
timezone = "{spec.timezone}"
send_time = "{spec.send_time}"
from = "The Morning Ledger <{name}@news.example.org>"
subscribers_files = ["{csv}"]
""")
    path = folder / "digest.toml"
    path.write_text("".join(parts) + extra, encoding="utf-8")
    return path


def start(config: Path, *args: str, db_url: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python run_digest.py ARGS --config CONFIG`` as a child process (text pipes)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    environ.update(env or {})
    environ["DIGEST_SECRET_KEY"] = "test-secret-key-for-processes"
    if db_url is not None:
        environ["DIGEST_DATABASE_URL"] = db_url
    return subprocess.Popen([sys.executable, str(REPO / "run_digest.py"), *args, "--config",
                             str(config)], env=environ, cwd=config.parent, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition: Callable[[], object], timeout: float, what: str,
             proc: subprocess.Popen[str] | None = None) -> None:
    """Poll ``condition`` until true; fail naming ``what`` (and a dead process's stderr)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended ({proc.returncode}): "
                                 f"{proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
