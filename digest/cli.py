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
from digest.cli_support import config_option, console, handle_errors, open_settings, stderr
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
        stderr.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


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

    console.print(f"[bold]{edition.list_name}[/] edition of {edition.date}: "
                  f"[italic]{edition.subject}[/]", highlight=False)
    if edition.lead:
        console.print(f"Lead ({edition.lead.section}): {edition.lead.headline}", highlight=False)
    table = Table("Section", "Teasers", "Newest")
    for sec in edition.sections:
        newest = sec.teasers[0].published_at if sec.teasers else None
        table.add_row(sec.name, str(len(sec.teasers)),
                      newest.strftime("%Y-%m-%d %H:%M") if newest else "—")
    console.print(table)
    for why, count in edition.excluded:
        console.print(f"left out: {count} {why}", highlight=False)
    for item in edition.skipped:
        where = f":{item.line}" if item.line else ""
        console.print(f"skipped: {item.source}{where}: {item.reason}", highlight=False)
