"""The ``subscribers`` commands: import, export, add, remove and list a list's subscribers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.markup import escape

from digest.config import ListSettings, Settings
from digest.store import ImportReport, Store, open_store
from digest.store.importer import SECTION_SEPARATOR
from digest.store.schema import INACTIVE, MEMBERSHIP_STATUSES
from digest.store.subscribers import clean_sections
from digest.tokens import confirm_url, make_confirm_token

from .support import config_option, console, fail, handle_errors, list_option, open_settings

__all__ = ["format_report", "subscribers"]


def _status_option(func):  # type: ignore[no-untyped-def]
    return click.option("--status", type=click.Choice(MEMBERSHIP_STATUSES), default=None,
                        help="Only members with this status.")(func)


@contextmanager
def _open(config_path: str | None, list_name: str | None) -> Iterator[
        tuple[Settings, ListSettings, Store]]:
    settings = open_settings(config_path)
    lst = settings.get_list(list_name)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        store.ensure_list(lst.name, lst.title)
        yield settings, lst, store


def _known(lst: ListSettings) -> tuple[str, ...] | None:
    return lst.sections or None


def format_report(report: ImportReport, list_name: str, source: str) -> list[str]:
    """The lines ``subscribers import`` prints for ``report``."""
    summary = (f"{source} → {list_name}: {report.accepted} new, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.kept_inactive} kept inactive "
               f"(unsubscribed, bounced or complained), {len(report.rejected)} rejected.")
    lines = [summary]
    if not report.changed:
        lines.append("Nothing new.")
    lines += [f"rejected line {r.line}: {r.reason}" for r in report.rejected]
    lines += [f"warning line {w.line}: {w.reason}" for w in report.warnings]
    return lines


@click.group("subscribers")
def subscribers() -> None:
    """Import, export, add, remove and list subscribers (never deletes history).

    \b
    Example:
      python run_digest.py subscribers import subscribers/sample.csv --list daily
      python run_digest.py subscribers export --list daily > daily.csv
    """


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@list_option
@click.option("--confirmed/--pending", default=True, show_default=True,
              help="Rows without a status become active (--confirmed) or wait for a "
                   "confirmation (--pending).")
@config_option
@handle_errors
def import_command(file: str, list_name: str | None, confirmed: bool,
                   config_path: str | None) -> None:
    """Import a CSV file (header: email,name,sections,status,...; sections split by ";").

    Re-importing a file changes nothing; an address that unsubscribed, bounced or complained
    stays that way. Every rejected row is reported with its line number.
    """
    with _open(config_path, list_name) as (settings, lst, store):
        source = sys.stdin.buffer if file == "-" else Path(file)
        report = store.import_csv(lst.name, source, known_sections=_known(lst),
                                  confirmed=confirmed, allow_smtputf8=settings.allow_smtputf8)
    for line in format_report(report, lst.name, "stdin" if file == "-" else file):
        console.print(escape(line), highlight=False, soft_wrap=True)


@subscribers.command("export")
@list_option
@_status_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of stdout.")
@config_option
@handle_errors
def export_command(list_name: str | None, status: str | None, out_path: str | None,
                   config_path: str | None) -> None:
    """Write the list as CSV (email,name,sections,status, then attributes) to stdout."""
    with _open(config_path, list_name) as (_settings, lst, store):
        if out_path is None:
            store.export_csv(lst.name, sys.stdout, status=status)
            return
        try:
            with open(out_path, "w", encoding="utf-8", newline="") as out:
                store.export_csv(lst.name, out, status=status)
        except OSError as exc:
            fail(f"Cannot write {out_path} ({exc.strerror}); check the path.")


def _sections(value: str | None, lst: ListSettings) -> list[str] | None:
    if value is None:
        return None
    parts = value.replace(SECTION_SEPARATOR, ",").split(",")
    chosen, unknown = clean_sections(parts, _known(lst))
    if unknown:
        fail(f"Unknown section {unknown[0]!r} for list {lst.name}; choose from: "
             f"{', '.join(lst.sections)}.", code=2)
    return chosen or []


@subscribers.command("add")
@click.argument("email")
@list_option
@click.option("--name", default=None, help="Display name.")
@click.option("--sections", default=None, metavar="A,B",
              help="Only these sections (comma-separated; default every section).")
@click.option("--confirm", is_flag=True,
              help="Double opt-in: keep the address pending and print its confirmation link.")
@config_option
@handle_errors
def add_command(email: str, list_name: str | None, name: str | None, sections: str | None,
                confirm: bool, config_path: str | None) -> None:
    """Add one address (active, or pending with --confirm); never re-activates an address
    that unsubscribed, bounced or complained."""
    with _open(config_path, list_name) as (settings, lst, store):
        chosen = _sections(sections, lst)
        if confirm:
            member = store.request_subscription(lst.name, email, name=name, sections=chosen,
                                                source="cli",
                                                allow_smtputf8=settings.allow_smtputf8)
            if member.status == "active":
                console.print(f"{escape(member.email)} is already active on {lst.name}.",
                              highlight=False, soft_wrap=True)
                return
            token = make_confirm_token(settings.web.secret_keys, member.subscriber_id, lst.name)
            console.print(f"{escape(member.email)} is pending on {lst.name} until confirmed "
                          f"(link valid {settings.web.confirm_max_age.days} days):",
                          highlight=False, soft_wrap=True)
            click.echo(confirm_url(settings.web.base_url, token))
            return
        store.add_subscriber(lst.name, email, name=name, sections=chosen, source="cli",
                             allow_smtputf8=settings.allow_smtputf8)
        member = store.get_membership(lst.name, email)
        assert member is not None
        if member.status in INACTIVE:
            console.print(f"{escape(member.email)} stays {member.status} on {lst.name}: only "
                          "their own confirmed request can bring it back.", highlight=False, soft_wrap=True)
        else:
            console.print(f"{escape(member.email)} is {member.status} on {lst.name}.",
                          highlight=False, soft_wrap=True)


@subscribers.command("remove")
@click.argument("email")
@list_option
@config_option
@handle_errors
def remove_command(email: str, list_name: str | None, config_path: str | None) -> None:
    """Unsubscribe an address from the list (its history is kept)."""
    with _open(config_path, list_name) as (_settings, lst, store):
        before = store.get_membership(lst.name, email)
        member = store.set_status(lst.name, email, "unsubscribed") if (
            before is None or before.status not in INACTIVE) else before
    if before is not None and before.status in INACTIVE:
        console.print(f"{escape(member.email)} was already {member.status} on {lst.name}.",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"{escape(member.email)} is unsubscribed from {lst.name}.",
                      highlight=False, soft_wrap=True)


@subscribers.command("list")
@list_option
@_status_option
@config_option
@handle_errors
def list_command(list_name: str | None, status: str | None, config_path: str | None) -> None:
    """Print the list's members (email, status, name, sections), one per line."""
    with _open(config_path, list_name) as (_settings, lst, store):
        count = 0
        for member in store.iter_members(lst.name, status=status):
            sections = ";".join(sorted(member.sections)) if member.sections else "(all)"
            click.echo(f"{member.email}\t{member.status}\t{member.name or ''}\t{sections}")
            count += 1
        totals = store.count_members(lst.name)
    summary = ", ".join(f"{totals[s]} {s}" for s in MEMBERSHIP_STATUSES if s in totals)
    click.echo(f"{count} shown; {lst.name} has {summary or 'no members'}.", err=True)
