"""The long-running commands: ``schedule``, ``worker`` and ``serve``.

Each opens (and migrates) the store once before it starts, logs at INFO by default (one
line per event, see :mod:`digest.logs`), tells a service manager when it is ready, alive
and stopping (:mod:`digest.systemd`), and stops cleanly on SIGTERM or SIGINT: no new
claim, messages in flight finish and are recorded, the rest released, one line logged,
exit 0 (:mod:`digest.cli.stopping`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import click

from digest import pipeline
from digest.systemd import Notifier

from .stopping import stop_on_signals
from .support import config_option, console, handle_errors, open_settings

__all__ = ["schedule", "serve", "worker"]

log = logging.getLogger("digest.service")


@click.command()
@config_option
@click.option("--list-jobs", is_flag=True, help="Print each list's job and next run, then exit.")
@click.option("--standby", is_flag=True,
              help="If another scheduler holds this database's lock, wait and take over when "
                   "it stops or dies (without it: say so and exit 0).")
@handle_errors
def schedule(config_path: str | None, list_jobs: bool, standby: bool) -> None:
    """Run each list's daily edition at its send time, in its timezone, until SIGTERM or
    Ctrl-C (one scheduler per database; see `status`).

    \b
    Example:
      python run_digest.py schedule --list-jobs
      python run_digest.py schedule --standby
    """
    from datetime import UTC, datetime

    from digest.schedule import planned_jobs

    settings = open_settings(config_path)
    if list_jobs:
        for job in planned_jobs(settings.lists.values(), datetime.now(UTC)):
            nxt = job.next_run.isoformat() if job.next_run else "never"
            review = f"; draft for review at {job.review_at.isoformat()}" if job.review_at \
                else ""
            console.print(f"{job.list_name}: {job.trigger}; next {nxt}{review}",
                          highlight=False, markup=False, soft_wrap=True)
        return
    with stop_on_signals() as stop, pipeline.open_store_for(settings) as store:
        ended = pipeline.run_scheduler(settings, store, stop=stop, standby=standby,
                                       notifier=Notifier())
    if ended.state == "busy":
        console.print(ended.message, highlight=False, markup=False, soft_wrap=True)
    else:
        log.info("%s", ended.message)


@click.command()
@config_option
@click.option("--poll", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between looks for work.")
@click.option("--once", is_flag=True, help="Work through what is due now, then exit.")
@handle_errors
def worker(config_path: str | None, poll: float, once: bool) -> None:
    """Deliver ledger rows of every published edition, whatever its age (run one or more
    per host) until SIGTERM or Ctrl-C. Rows whose retry window ended are expired even if
    nobody claims them. With --once: one pass, then one line per edition it looked at
    (what it sent, failed and expired, what still waits and when the next retry is due).

    \b
    Example:
      DIGEST_DATABASE_URL=postgresql+psycopg://db/digest python run_digest.py worker
    """
    settings = open_settings(config_path)
    notifier = Notifier()
    me = pipeline.worker_id()
    with stop_on_signals() as stop, pipeline.open_store_for(settings) as store:
        log.info("worker %s started: delivering every list's published editions", me)
        notifier.ready(f"worker {me}")
        passes = asyncio.run(_watched(pipeline.run_worker(
            settings, store, poll=poll, once=once, progress=console.is_terminal, stop=stop),
            notifier))
        if once:
            for done in passes:
                console.print(done.text(), highlight=False, markup=False, soft_wrap=True)
            if not passes:
                console.print("no published edition has rows waiting", highlight=False)
        if stop.requested:
            notifier.stopping(f"stopping ({stop.reason})")
    if stop.requested:
        log.info("worker %s stopped on %s: messages in flight finished, its claims released",
                 me, stop.reason)


async def _watched(work: Coroutine[Any, Any, Any], notifier: Notifier) -> Any:
    """Run ``work`` while pinging the service manager's watchdog from the event loop;
    return its result."""
    interval = notifier.watchdog_interval
    if interval is None:
        return await work

    async def ping() -> None:
        while True:
            notifier.watchdog()
            await asyncio.sleep(interval)

    pinger = asyncio.create_task(ping())
    try:
        return await work
    finally:
        pinger.cancel()


@click.command()
@config_option
@click.option("--host", default=None, help="Address to listen on (default: [web] host).")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="Port (default: [web] port).")
@handle_errors
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Serve the archive, one-click unsubscribe, preferences and sign-up pages, and
    /healthz (503 when the scheduler's heartbeat is stale).

    Put it behind the https address configured as [web] base_url.

    \b
    Example:
      python run_digest.py serve --port 8080
    """
    from digest.web import serve as run_server

    settings = open_settings(config_path)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again with the
    # handlers it found: these, so the process exits 0 after its one line.
    with stop_on_signals() as stop:
        run_server(settings, host=host, port=port, notifier=Notifier())
    if stop.requested:
        log.info("serve stopped on %s", stop.reason)
