"""The command line (``python run_digest.py …`` and the ``digest`` console script).

Each command parses its options, calls one pipeline function, and prints; a
:class:`~digest.errors.DigestError` becomes one sentence on stderr with exit code 1
(2 for bad usage or configuration).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import click

from digest import __version__, pipeline
from rich.markup import escape

from digest.cli_support import config_option, console, handle_errors, open_settings, warn
from digest.config import ListSettings, Settings

__all__ = ["main"]


def _list_option(func):  # type: ignore[no-untyped-def]
    return click.option("--list", "list_name", metavar="L",
                        help="Which list (default: the first in the configuration).")(func)


def _source_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--source", "sources", multiple=True, metavar="PATH_OR_URL",
                        help="Read this source instead of the list's (repeatable).")(func)
    func = click.option("--as-of", "as_of", metavar="ISO",
                        help="'Now' for relative ages and the edition's date.")(func)
    return click.option("--force", is_flag=True,
                        help="Build even when the edition has nothing new.")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="digest")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="How much to log on stderr (one line per event).")
def main(log_level: str) -> None:
    """digest: turn a newsroom's lead story and teasers into a daily email and deliver it.

    \b
    Example:
      python run_digest.py build --json
      python run_digest.py preview --out preview/
      python run_digest.py send
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _context(config_path: str | None, list_name: str | None) -> tuple[Settings, ListSettings]:
    settings = open_settings(config_path)
    return settings, settings.get_list(list_name)


def _report_source_errors(errors: list[str]) -> None:
    for message in errors:
        warn(message)


@main.command()
@config_option
@_list_option
@_source_options
@click.option("--json", "as_json", is_flag=True, help="Print the edition as one JSON object.")
@handle_errors
def build(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
          as_of: str | None, force: bool, as_json: bool) -> None:
    """Gather the sources and assemble the edition, without sending or recording it.

    \b
    Example:
      python run_digest.py build --json --source content/front-page.txt --as-of 2025-08-23T12:00
    """
    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with pipeline.open_store_for(settings) as store:
        outcome = asyncio.run(pipeline.build_edition(
            settings, lst, store=store, source_override=list(sources) or None,
            as_of=moment, force=force))
    _report_source_errors(outcome.errors)
    edition = outcome.edition
    if as_json:
        click.echo(json.dumps(edition.to_json(), ensure_ascii=False, indent=2))
        return
    _print_edition(edition)


def _print_edition(edition) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    console.print(f"[bold]{escape(edition.list_name)}[/] edition of {edition.date}: "
                  f"[italic]{escape(edition.subject)}[/]", highlight=False)
    if edition.lead:
        console.print(f"Lead ({edition.lead.section}): {edition.lead.headline}",
                      highlight=False, markup=False)
    table = Table("Section", "Teasers", "Newest")
    for sec in edition.sections:
        newest = sec.teasers[0].published_at if sec.teasers else None
        table.add_row(escape(sec.name), str(len(sec.teasers)),
                      newest.strftime("%Y-%m-%d %H:%M") if newest else "—")
    console.print(table)
    for why, count in edition.excluded:
        console.print(f"left out: {count} {why}", highlight=False, markup=False)
    for item in edition.skipped:
        if item.line is None and item.source in item.reason:
            console.print(f"skipped: {item.reason}", highlight=False, markup=False)
            continue
        where = f":{item.line}" if item.line else ""
        console.print(f"skipped: {item.source}{where}: {item.reason}", highlight=False,
                      markup=False)


@main.command()
@config_option
@_list_option
@_source_options
@click.option("--subscriber", metavar="EMAIL",
              help="Preview as this subscriber sees it (name, sections, links).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for edition.html, edition.txt and edition.eml.")
@handle_errors
def preview(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
            as_of: str | None, force: bool, subscriber: str | None, out_dir: str) -> None:
    """Write the edition as a subscriber gets it: edition.html, edition.txt, edition.eml.

    \b
    Example:
      python run_digest.py preview --out preview/ && open preview/edition.html
    """
    from pathlib import Path

    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with pipeline.open_store_for(settings) as store:
        outcome = asyncio.run(pipeline.build_edition(
            settings, lst, store=store, source_override=list(sources) or None,
            as_of=moment, force=force))
        _report_source_errors(outcome.errors)
        files = pipeline.write_preview(settings, lst, outcome.edition, Path(out_dir),
                                       store=store, subscriber=subscriber, as_of=moment)
    for warning in files.warnings:
        warn(warning)
    for path in (files.html, files.text, files.eml):
        console.print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)", highlight=False,
                      markup=False)


@main.command()
@config_option
@_list_option
@_source_options
@click.option("--dry-run", is_flag=True, help="Build every message, send none.")
@click.option("--test-to", "test_to", multiple=True, metavar="EMAIL",
              help="Send a '[TEST]' copy to this address (repeatable); no ledger.")
@handle_errors
def send(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
         as_of: str | None, force: bool, dry_run: bool, test_to: tuple[str, ...]) -> None:
    """Publish today's edition and deliver it to every subscriber (resumes an unfinished one).

    Without a configured relay, an SMTP server on 127.0.0.1 stores the messages in the
    Maildir under the working folder.

    \b
    Example:
      python run_digest.py send --test-to editor@example.org
      python run_digest.py send
    """
    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with pipeline.open_store_for(settings) as store, pipeline.send_lock(settings, lst):
        outcome = asyncio.run(pipeline.send_edition(
            settings, lst, store=store, source_override=list(sources) or None, as_of=moment,
            force=force, dry_run=dry_run, test_to=test_to, progress=console.is_terminal))
    _report_source_errors(outcome.errors)
    _print_send(outcome, settings)


def _print_send(outcome: pipeline.SendOutcome, settings: Settings) -> None:
    from digest.subscribers_cli import format_report

    for path, report in outcome.imports:
        for line in format_report(report, outcome.edition.list_name if outcome.edition
                                  else "", path)[:1]:
            console.print(line, highlight=False, markup=False)
    if outcome.report is not None:
        outcome.report.render(console)  # type: ignore[attr-defined]
    console.print(outcome.message, highlight=False, markup=False)
    if outcome.status == "sent" and not settings.relays:
        console.print(f"Messages are in the Maildir {settings.maildir}.", highlight=False,
                      markup=False)
    report = outcome.report
    if report is not None and getattr(report, "stopped", None):
        from digest.cli_support import fail

        fail(f"The send stopped early: {report.stopped}.")  # type: ignore[attr-defined]


@main.command()
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
            console.print(f"{job.list_name}: {job.trigger}; next {nxt}", highlight=False,
                          markup=False)
        return
    with pipeline.scheduler_lock(settings):
        scheduler = make_scheduler(settings.lists.values(),
                                   lambda name: pipeline.run_scheduled(settings, name),
                                   deliver_open=lambda: pipeline.run_open_deliveries(settings))
        console.print(f"Scheduling {len(settings.lists)} list(s); Ctrl-C stops.")
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            scheduler.shutdown(wait=False)


@main.command()
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


@main.command()
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


def _register_subcommands() -> None:
    from digest.bounces_cli import bounces
    from digest.subscribers_cli import subscribers

    main.add_command(subscribers)
    main.add_command(bounces)


_register_subcommands()
