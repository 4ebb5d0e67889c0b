"""The long-running commands: ``schedule``, ``worker`` and ``serve``."""

from __future__ import annotations

import asyncio

import click

from digest import pipeline

from .support import config_option, console, handle_errors, open_settings

__all__ = ["schedule", "serve", "worker"]


@click.command()
@config_option
@click.option("--list-jobs", is_flag=True, help="Print each list's job and next run, then exit.")
@handle_errors
def schedule(config_path: str | None, list_jobs: bool) -> None:
    """Run each list's daily edition at its send time, in its timezone (Ctrl-C stops).

    \b
    Example:
      python run_digest.py schedule --list-jobs
    """
    from datetime import UTC, datetime

    from digest.schedule import make_scheduler, planned_jobs

    settings = open_settings(config_path)
    if list_jobs:
        for job in planned_jobs(settings.lists.values(), datetime.now(UTC)):
            nxt = job.next_run.isoformat() if job.next_run else "never"
            review = f"; draft for review at {job.review_at.isoformat()}" if job.review_at \
                else ""
            console.print(f"{job.list_name}: {job.trigger}; next {nxt}{review}",
                          highlight=False, markup=False, soft_wrap=True)
        return
    with pipeline.scheduler_lock(settings):
        started = datetime.now(UTC)
        scheduler = make_scheduler(
            settings.lists.values(),
            lambda name: pipeline.run_scheduled(settings, name, started_at=started),
            deliver_open=lambda: pipeline.run_open_deliveries(settings), now=started)
        console.print(f"Scheduling {len(settings.lists)} list(s); Ctrl-C stops.")
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            scheduler.shutdown(wait=False)


@click.command()
@config_option
@click.option("--poll", default=5.0, show_default=True, help="Seconds between looks for work.")
@click.option("--once", is_flag=True, help="Work through what is due now, then exit.")
@handle_errors
def worker(config_path: str | None, poll: float, once: bool) -> None:
    """Deliver ledger rows of every published edition (run one or more per host).

    \b
    Example:
      DIGEST_DATABASE_URL=postgresql+psycopg://db/digest python run_digest.py worker
    """
    settings = open_settings(config_path)
    with pipeline.open_store_for(settings) as store:
        asyncio.run(pipeline.run_worker(settings, store, poll=poll, once=once,
                                        progress=console.is_terminal))


@click.command()
@config_option
@click.option("--host", default=None, help="Address to listen on (default: [web] host).")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="Port (default: [web] port).")
@handle_errors
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Serve the archive, one-click unsubscribe, preferences and sign-up pages.

    Put it behind the https address configured as [web] base_url.

    \b
    Example:
      python run_digest.py serve --port 8080
    """
    from digest.web import serve as run_server

    run_server(open_settings(config_path), host=host, port=port)
