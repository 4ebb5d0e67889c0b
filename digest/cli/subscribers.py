"""The ``subscribers`` commands: import, export, add, remove, list and history."""

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


#: Rows an import left to the reader that are printed one by one; the rest are counted.
KEPT_SHOWN = 20


def format_report(report: ImportReport, list_name: str, source: str) -> list[str]:
    """The lines ``subscribers import`` prints for ``report`` (the first is the summary)."""
    if report.unchanged_since is not None:
        return [(f"{'Dry run: ' if report.dry_run else ''}{source} → {list_name}: unchanged "
                 f"since its import at {report.unchanged_since.isoformat(timespec='seconds')} "
                 f"({report.rows} rows, {len(report.rejected)} rejected then); not read "
                 "again."), *report_rows(report)]
    kept = f", {len(report.kept)} left as the readers set them" if report.kept else ""
    summary = (f"{'Dry run: ' if report.dry_run else ''}{source} → {list_name}: "
               f"{report.accepted} new, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.kept_inactive} kept inactive "
               f"(unsubscribed, bounced or complained), {len(report.rejected)} rejected"
               f"{kept}{'; nothing was written' if report.dry_run else ''}.")
    lines = [summary]
    if not report.changed:
        lines.append("Nothing new.")
    return lines + report_rows(report)


def report_rows(report: ImportReport) -> list[str]:
    """One line per row an import rejected, warned about or left to the reader (line and
    reason; the kept ones up to :data:`KEPT_SHOWN`, then a count)."""
    lines = [f"rejected line {r.line}: {r.reason}" for r in report.rejected]
    lines += [f"warning line {w.line}: {w.reason}" for w in report.warnings]
    lines += [f"kept line {k.line}: {k.reason}" for k in report.kept[:KEPT_SHOWN]]
    if len(report.kept) > KEPT_SHOWN:
        lines.append(f"... and {len(report.kept) - KEPT_SHOWN} more rows left as the readers "
                     "set them.")
    return lines


@click.group("subscribers")
def subscribers() -> None:
    """Import, export, add, remove and list subscribers, and show why each is in their
    state (never deletes history).

    Readers own their consent and sections: an import or `add` adds readers and updates
    names and attributes, but never makes an existing member active and never overwrites
    sections a reader chose; only the reader's confirmation (or `add --confirmed`) does.

    \b
    Example:
      python run_digest.py subscribers import subscribers/sample.csv --list daily
      python run_digest.py subscribers export --list daily > daily.csv
      python run_digest.py subscribers history reader@example.org
    """


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@list_option
@click.option("--confirmed/--pending", default=True, show_default=True,
              help="New rows without a status become active (--confirmed) or wait for a "
                   "confirmation (--pending). Existing members are never made active.")
@config_option
@handle_errors
def import_command(file: str, list_name: str | None, confirmed: bool,
                   config_path: str | None) -> None:
    """Import a CSV file (header: email,name,sections,status,...; sections split by ";").

    Re-importing a file changes nothing; an address that unsubscribed, bounced or complained
    stays that way, a pending one waits for its confirmation, and sections a reader chose
    on the preferences page are kept. Every rejected or kept row is reported with its line.
    """
    with _open(config_path, list_name) as (settings, lst, store):
        if file == "-":
            report = store.import_csv(lst.name, sys.stdin.buffer, known_sections=_known(lst),
                                      confirmed=confirmed,
                                      allow_smtputf8=settings.allow_smtputf8)
        else:  # always read; its digest is recorded, so `send` skips it while unchanged
            report = store.import_file(lst.name, Path(file), known_sections=_known(lst),
                                       confirmed=confirmed, skip_unchanged=False,
                                       allow_smtputf8=settings.allow_smtputf8)
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
    """Write the list as CSV (email,name,sections,status,confirmed_at,consent_source, then
    attributes) to stdout; import reads it back (ignoring the two consent columns)."""
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
              help="Only these sections (comma-separated; default every section). Sections "
                   "the reader chose themselves are kept.")
@click.option("--confirm", is_flag=True,
              help="Double opt-in: keep the address pending and print its confirmation link.")
@click.option("--confirmed", is_flag=True,
              help="You have the reader's consent: make the membership active whatever its "
                   "status (also after an unsubscribe or complaint) and lift a suppression. "
                   "Recorded as your act in the consent record.")
@config_option
@handle_errors
def add_command(email: str, list_name: str | None, name: str | None, sections: str | None,
                confirm: bool, confirmed: bool, config_path: str | None) -> None:
    """Add one address: a new one becomes active (pending with --confirm); an existing
    member that unsubscribed, bounced, complained or is pending stays so unless
    --confirmed."""
    if confirm and confirmed:
        fail("Use either --confirm (the reader confirms by email) or --confirmed (you have "
             "their consent), not both.", code=2)
    with _open(config_path, list_name) as (settings, lst, store):
        chosen = _sections(sections, lst)
        if confirm:
            _request_link(settings, lst, store, email, name, chosen)
            return
        store.add_subscriber(lst.name, email, name=name, sections=chosen, source="cli",
                             confirmed=confirmed, allow_smtputf8=settings.allow_smtputf8,
                             detail={"command": "subscribers add --confirmed"
                                     if confirmed else "subscribers add"})
        member = store.get_membership(lst.name, email)
        assert member is not None
    if member.status in INACTIVE or member.status == "pending":
        _say(f"{member.email} stays {member.status} on {lst.name}: only their own "
             "confirmation, or `subscribers add --confirmed` with their consent, makes them "
             "active.")
    else:
        _say(f"{member.email} is {member.status} on {lst.name}.")
    if chosen is not None and member.sections_chosen_at is not None and \
            sorted(member.sections or ()) != sorted(chosen or ()):
        _say("Their sections were kept: the reader chose them (on the preferences page or at a "
             "confirmed sign-up).")


def _say(text: str) -> None:
    console.print(escape(text), highlight=False, soft_wrap=True)


def _request_link(settings: Settings, lst: ListSettings, store: Store, email: str,
                  name: str | None, chosen: list[str] | None) -> None:
    request = store.request_subscription(lst.name, email, name=name, sections=chosen,
                                         cause="editor-request", source="cli",
                                         allow_smtputf8=settings.allow_smtputf8)
    member = request.member
    if request.outcome == "suppressed":
        fail("The address is suppressed (it bounced or complained); no confirmation link is "
             "made for it. With the reader's consent, use `subscribers add --confirmed`.")
    assert member is not None
    if request.outcome == "already-active":
        _say(f"{member.email} is already active on {lst.name}.")
        return
    token = make_confirm_token(settings.web.secret_keys, member.subscriber_id, lst.name,
                               request_id=request.request_id)
    _say(f"{member.email} is {member.status} on {lst.name} until confirmed "
         f"(link valid {settings.web.confirm_max_age.days} days):")
    click.echo(confirm_url(settings.web.base_url, token))


@subscribers.command("remove")
@click.argument("email")
@list_option
@config_option
@handle_errors
def remove_command(email: str, list_name: str | None, config_path: str | None) -> None:
    """Unsubscribe an address from the list (its history is kept)."""
    with _open(config_path, list_name) as (_settings, lst, store):
        before = store.get_membership(lst.name, email)
        member = store.set_status(lst.name, email, "unsubscribed",
                                  detail={"command": "subscribers remove"}) if (
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


@subscribers.command("history")
@click.argument("email")
@list_option
@config_option
@handle_errors
def history_command(email: str, list_name: str | None, config_path: str | None) -> None:
    """Print the consent record of one address, one event per line, oldest first: when,
    list, status change, sections, who acted and why (file and line, Message-ID, ...).

    Without --list, every list the address is on.
    """
    settings = open_settings(config_path)
    if list_name is not None:
        settings.get_list(list_name)  # one sentence for a list that is not configured
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        events = store.membership_history(email, list_name)
    for event in events:
        click.echo(event.describe())
    now = {e.list_name: e.new_status for e in events}
    click.echo(f"{len(events)} events; now: " + ", ".join(
        f"{name} {status}" for name, status in now.items()) + ".", err=True)
