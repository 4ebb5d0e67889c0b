"""The edition commands: ``build``, ``preview``, ``draft`` and ``send``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from digest import pipeline
from digest.config import ListSettings, Settings
from digest.models import Edition

from .stopping import stop_on_signals
from .subscribers import format_report, report_rows
from .support import (
    config_option,
    console,
    editor_option,
    fail,
    handle_errors,
    list_option,
    open_settings,
    source_options,
    stderr,
    warn,
)

if TYPE_CHECKING:
    from digest.deliver import StopRequest
    from digest.store import Store

__all__ = ["build", "draft", "preview", "send"]

log = logging.getLogger("digest.send")


def _context(config_path: str | None, list_name: str | None) -> tuple[Settings, ListSettings]:
    settings = open_settings(config_path)
    return settings, settings.get_list(list_name)


def _report_source_errors(errors: list[str], edition: Edition | None = None) -> None:
    """Every unreadable source, then every item a source skipped or repaired, on stderr."""
    for message in errors:
        warn(message)
    for item in edition.skipped if edition is not None else ():
        if item.reason in errors:
            continue  # an unreadable source, already said
        where = f":{item.line}" if item.line else ""
        warn(f"{item.source}{where}: {item.reason}")


def _note(message: str | None) -> None:
    """Which edition is shown, on stderr (stdout stays the edition itself, e.g. JSON)."""
    if message:
        stderr.print(message, highlight=False, markup=False, soft_wrap=True)


next_option = click.option(
    "--next", "next_edition", is_flag=True,
    help="Show the next edition (the one after today's stored edition), built now.")


@click.command()
@config_option
@list_option
@source_options
@next_option
@click.option("--json", "as_json", is_flag=True, help="Print the edition as one JSON object.")
@handle_errors
def build(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
          as_of: str | None, force: bool, next_edition: bool, as_json: bool) -> None:
    """Show today's edition: the stored one when there is one (it says so on stderr), else
    a fresh build from the sources; records nothing.

    \b
    Example:
      python run_digest.py build --json --source content/front-page.txt --as-of 2025-08-23T12:00
      python run_digest.py build --next
    """
    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with pipeline.open_store_for(settings) as store:
        shown = asyncio.run(pipeline.edition_to_show(
            settings, lst, store, source_override=list(sources) or None, as_of=moment,
            force=force, next_edition=next_edition))
    _note(shown.note)
    _report_source_errors(shown.errors, shown.edition if shown.record is None else None)
    edition = shown.edition
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


@click.command()
@config_option
@list_option
@source_options
@next_option
@click.option("--subscriber", metavar="EMAIL",
              help="Preview as this subscriber sees it (name, sections, links).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for edition.html, edition.txt and edition.eml.")
@handle_errors
def preview(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
            as_of: str | None, force: bool, next_edition: bool, subscriber: str | None,
            out_dir: str) -> None:
    """Write today's edition as a subscriber gets it: edition.html, edition.txt, edition.eml
    (the stored edition when there is one, as ``build`` shows it).

    \b
    Example:
      python run_digest.py preview --out preview/ && open preview/edition.html
      python run_digest.py preview --next --subscriber ana@example.org --out preview/
    """
    from pathlib import Path

    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with pipeline.open_store_for(settings) as store:
        if subscriber is not None and lst.subscribers_files \
                and store.get_membership(lst.name, subscriber) is None:
            pipeline.sync_subscriber_files(settings, lst, store)  # before the first send
        shown = asyncio.run(pipeline.edition_to_show(
            settings, lst, store, source_override=list(sources) or None, as_of=moment,
            force=force, next_edition=next_edition))
        _note(shown.note)
        _report_source_errors(shown.errors, shown.edition if shown.record is None else None)
        files = pipeline.write_preview(settings, lst, shown.edition, Path(out_dir),
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
@editor_option
@handle_errors
def draft(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
          as_of: str | None, force: bool, editor: str) -> None:
    """Build today's edition and store it as a draft, without publishing it.

    The scheduler sends a draft at send time (with review = "required", only once approved:
    `editions approve ID`). When today's edition is already stored, it is shown instead;
    --force stores a new draft in place of an unpublished one.

    \b
    Example:
      python run_digest.py draft --list daily && python run_digest.py editions list
    """
    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with pipeline.open_store_for(settings) as store:
        drafted = asyncio.run(pipeline.draft_edition(
            settings, lst, store, as_of=moment, source_override=list(sources) or None,
            force=force, editor=editor))
    record = drafted.record
    _report_source_errors(drafted.errors, record.edition() if drafted.created else None)
    if drafted.created:
        console.print(f"Stored edition {record.id} of {lst.name} for {record.date} as a draft.",
                      highlight=False, markup=False)
    else:
        _note(f"Today's {lst.name} edition is already stored as edition {record.id} "
              f"({record.status}); showing it. Cancel it (`editions cancel {record.id}`) or "
              "use --force to draft another.")
    _print_edition(record.edition())
    if record.status in ("draft", "held") and lst.review == "required":
        console.print(f"It needs an editor's approval: `editions approve {record.id}`.",
                      highlight=False, markup=False)


@click.command()
@config_option
@list_option
@source_options
@editor_option
@click.option("--dry-run", is_flag=True,
              help="Build every message, send none (not with --test-to).")
@click.option("--test-to", "test_to", multiple=True, metavar="EMAIL",
              help="Send a '[TEST]' copy to this address (repeatable); no ledger. Exits 1 "
                   "when one of them fails.")
@handle_errors
def send(config_path: str | None, list_name: str | None, sources: tuple[str, ...],
         as_of: str | None, force: bool, editor: str, dry_run: bool,
         test_to: tuple[str, ...]) -> None:
    """Publish today's edition and deliver it to every subscriber (resumes an unfinished one).

    Today's stored draft (or approved edition) is the one sent; without one, a fresh build.
    A held, missed or unapproved edition needs --force, which is recorded with your name.
    Without a configured relay, an SMTP server on 127.0.0.1 stores the messages in the
    Maildir under the working folder. SIGTERM or Ctrl-C stops cleanly: messages in flight
    finish and are recorded, the rest wait for the next run (exit 0).

    \b
    Example:
      python run_digest.py send --test-to editor@example.org
      python run_digest.py send
    """
    if dry_run and test_to:
        fail("Use either --dry-run (build every message, send none) or --test-to (send a "
             "test copy), not both.", code=2)
    settings, lst = _context(config_path, list_name)
    moment = pipeline.parse_as_of(as_of, lst)
    with stop_on_signals() as stop, pipeline.open_store_for(settings) as store, \
            _send_lock(settings, lst, store, stop, ledger=not (dry_run or test_to)):
        outcome = asyncio.run(pipeline.send_edition(
            settings, lst, store=store, source_override=list(sources) or None, as_of=moment,
            force=force, dry_run=dry_run, test_to=test_to, progress=console.is_terminal,
            editor=editor, stop=stop))
    if outcome.status == "stopped":
        log.info("send of %s stopped on %s", lst.name, stop.reason)
        if stop.reason not in ("SIGTERM", "SIGINT"):  # e.g. the send lock was lost
            _print_send(outcome, settings)
            fail(f"The send stopped early: {stop.reason}; run it again to finish.")
    _report_source_errors(outcome.errors, outcome.edition)
    for line in outcome.warnings:  # what the size budget dropped, per variant
        warn(line)
    _print_send(outcome, settings)


def _send_lock(settings: Settings, lst: ListSettings, store: Store, stop: StopRequest, *,
               ledger: bool) -> AbstractContextManager[object]:
    """The list's send lock for a send that touches the ledger; a dry run or a test send
    writes nothing and takes no lock (so it never delays the scheduled edition)."""
    if not ledger:
        return contextlib.nullcontext()
    return pipeline.send_lock(settings, lst, store=store, on_lost=stop.request)


def _print_send(outcome: pipeline.SendOutcome, settings: Settings) -> None:
    for path, imported in outcome.imports:
        # The summary on stdout; every row rejected or left to the reader on stderr, with
        # its file and line, as `subscribers import` reports them.
        console.print(format_report(imported, outcome.edition.list_name if outcome.edition
                                    else "", path)[0], highlight=False, markup=False)
        for line in report_rows(imported):
            warn(f"{path}: {line}")
    if outcome.status == "no-recipients":
        fail(outcome.message)
    if outcome.report is not None:
        outcome.report.render(console)
    console.print(outcome.message, highlight=False, markup=False)
    if outcome.status in ("sent", "waiting") and not settings.relays:
        console.print(f"Messages are in the Maildir {settings.maildir}.", highlight=False,
                      markup=False)
    report = outcome.report
    if report is not None and report.stopped:
        fail(f"The send stopped early: {report.stopped}.")
    failed = report.failed if report is not None and outcome.status == "test" else 0
    if failed:
        fail(f"{failed} of the test addresses did not get the test (the reasons are above); "
             "check them and the relay.")
