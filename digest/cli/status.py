"""The ``status`` command: is the scheduler alive, what goes out next, what is still waiting."""

from __future__ import annotations

import click

from digest import pipeline

from .support import config_option, console, handle_errors, list_option, open_settings

__all__ = ["status"]


@click.command()
@config_option
@list_option
@handle_errors
def status(config_path: str | None, list_name: str | None) -> None:
    """Show the scheduler's heartbeat (alive, stale or stopped, and which process holds its
    lock), each list's next run in its own zone and in UTC, every edition whose send time
    has passed and that is not sent (not built, a draft or approved: not sending, held,
    cancelled or missed), and every published edition whose deliveries are not finished:
    its rows counted by state, the next retry due, the oldest claim and its owner, and
    workers whose claim leases ran out.

    Reads only. Exit 0, or 3 when rows wait past their retry window (nothing is finishing
    them: start `schedule` or `worker`).

    \b
    Example:
      python run_digest.py status
      python run_digest.py status --list weekend
    """
    settings = open_settings(config_path)
    if list_name is not None:
        settings.get_list(list_name)
    with pipeline.open_store_for(settings) as store:
        report = pipeline.service_status(settings, store, list_name=list_name)
    for line in report.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if report.overdue:
        raise SystemExit(3)
