"""The edition commands: ``build``, ``preview`` and ``send``."""

from __future__ import annotations

import asyncio
import json

import click
from rich.markup import escape

from digest import pipeline
from digest.config import ListSettings, Settings

from .subscribers import format_report
from .support import (
    config_option,
    console,
    fail,
    handle_errors,
    list_option,
    open_settings,
    source_options,
    warn,
)

__all__ = ["build", "preview", "send"]


def _context(config_path: str | None, list_name: str | None) -> tuple[Settings, ListSettings]:
    settings = open_settings(config_path)
    return settings, settings.get_list(list_name)


def _report_source_errors(errors: list[str]) -> None:
    for message in errors:
        warn(message)


@click.command()
@config_option
@list_option
@source_options
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


@click.command()
@config_option
@list_option
@source_options
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


@click.command()
@config_option
@list_option
@source_options
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
    for line in outcome.warnings:  # what the size budget dropped, per variant
        warn(line)
    _print_send(outcome, settings)


def _print_send(outcome: pipeline.SendOutcome, settings: Settings) -> None:
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
        fail(f"The send stopped early: {report.stopped}.")  # type: ignore[attr-defined]
