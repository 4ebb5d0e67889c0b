"""The ``editions`` commands: list, show, hold, approve and cancel stored editions, and
preview or test any stored one (the desk's edition page, from the command line).

Every move is recorded as an event of the edition with ``editor:NAME`` (``--editor``, default
the OS user) and the ``--reason`` given, so ``editions show`` answers "why is it so?"; a test
sent is recorded as a note.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from digest import pipeline
from digest.config import ListSettings, Settings
from digest.slots import SendSchedule

from .support import (
    ROW_ID,
    config_option,
    console,
    editor_option,
    fail,
    handle_errors,
    open_settings,
    warn,
)

__all__ = ["editions"]

_COUNTED = ("sent", "sent_unconfirmed", "failed", "expired", "skipped")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


@click.group()
def editions() -> None:
    """Look at stored editions and hold, approve or cancel one.

    \b
    Example:
      python run_digest.py editions list --list daily
      python run_digest.py editions approve 12
    """


@editions.command("list")
@config_option
@click.option("--list", "list_name", metavar="L", help="Only this list (default: every list).")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, 1000),
              help="How many editions, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@handle_errors
def list_(config_path: str | None, list_name: str | None, limit: int, as_json: bool) -> None:
    """The newest editions: date, status, subject and delivery counts."""
    settings = open_settings(config_path)
    if list_name is not None:
        settings.get_list(list_name)  # one sentence for an unknown list
    with pipeline.open_store_for(settings) as store:
        records = store.list_editions(list_name, limit=limit)
        counts = store.delivery_counts([r.id for r in records])
    if as_json:
        for r in records:
            rows = counts.get(r.id, {})
            click.echo(json.dumps({
                "id": r.id, "list": r.list_name, "date": r.date.isoformat(), "seq": r.seq,
                "status": r.status, "subject": r.subject, "counts": rows,
                "waiting": rows.get("queued", 0) + rows.get("sending", 0)}, ensure_ascii=False))
        return
    if not records:
        console.print("No editions are stored yet" + (f" for list {list_name}" if list_name
                                                      else "") + ".", highlight=False)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ID", "List", "Date", "Status"):
        table.add_column(name, no_wrap=True, min_width=len(name))
    # What the other columns need (ids, names, dates, counts): the subject gets the rest.
    table.add_column("Subject", no_wrap=True, overflow="ellipsis",
                     max_width=max(12, console.width - 66))
    for name in ("Sent", "Failed", "Expired", "Waiting"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for r in records:
        rows = counts.get(r.id, {})
        table.add_row(str(r.id), escape(r.list_name), r.date.isoformat(), r.status,
                      escape(r.subject or "(never built)"),
                      str(rows.get("sent", 0) + rows.get("sent_unconfirmed", 0)),
                      str(rows.get("failed", 0)), str(rows.get("expired", 0)),
                      str(rows.get("queued", 0) + rows.get("sending", 0)))
    console.print(table)


@editions.command()
@config_option
@click.argument("edition_id", metavar="ID", type=ROW_ID)
@click.option("--json", "as_json", is_flag=True, help="Print the edition as one JSON object.")
@handle_errors
def show(config_path: str | None, edition_id: int, as_json: bool) -> None:
    """One edition: stories, variants, delivery summary (failures grouped by reason) and
    the history of its status."""
    settings = open_settings(config_path)
    with pipeline.open_store_for(settings) as store:
        record = store.get_edition(edition_id)
        lst = settings.lists.get(record.list_name)
        summary = store.delivery_summary(edition_id)
        reasons = store.delivery_reasons(edition_id)
        failures = store.failure_groups(edition_id, addresses=1)
        events = store.edition_events(edition_id)
        stories = store.edition_story_records(edition_id)
        variants = (pipeline.variant_audience(settings, lst, store, record)
                    if lst is not None and record.has_stories else [])
    preview = (pipeline.draft_preview_url(settings, record)
               if record.has_stories and not record.published else None)
    data: dict[str, Any] = {
        "id": record.id, "list": record.list_name, "date": record.date.isoformat(),
        "seq": record.seq, "status": record.status, "subject": record.subject,
        "created_at": record.created_at.isoformat(),
        "published_at": record.published_at.isoformat() if record.published_at else None,
        "edition": record.payload,
        "variants": [{"sections": list(s), "readers": n} for s, n in variants],
        "stories": [{"position": r.position, "id": r.story_id, "section": r.section,
                     "headline": r.headline, "carried": r.carried,
                     "dropped_from": [list(v) for v in r.dropped_from]} for r in stories],
        "deliveries": summary, "reasons": reasons, "preview_url": preview,
        # grouped by the relay's enhanced status code and SMTP phase, not only the reply code
        "failures": [{"status": g.status, "reason": g.reason, "count": g.count,
                      "example": g.example} for g in failures],
        "events": [{"at": e.created_at.isoformat(), "from": e.old_status, "to": e.new_status,
                    "actor": e.actor, "cause": e.cause, "detail": e.detail} for e in events],
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    _print_show(record, data, variants)


def _print_show(record: Any, data: dict[str, Any],
                variants: list[tuple[tuple[str, ...], int]]) -> None:
    out = console.print
    out(f"[bold]Edition {record.id}[/] — {escape(record.list_name)}, {record.date} "
        f"(#{record.seq}): [bold]{record.status}[/]", highlight=False)
    out(f"Subject: {record.subject or '(never built)'}", highlight=False, markup=False)
    out(f"Created {_when(record.created_at)}; published {_when(record.published_at)}",
        highlight=False, markup=False)
    if record.has_stories:
        edition = record.edition()
        if edition.lead:
            out(f"Lead ({edition.lead.section}): {edition.lead.headline}", highlight=False,
                markup=False)
        for sec in edition.sections:
            out(f"{sec.name}:", highlight=False, markup=False)
            for story in sec.teasers:
                out(f"  - {story.headline}", highlight=False, markup=False)
    dropped = [r for r in data["stories"] if r["dropped_from"]]
    for r in dropped:
        out(f"Dropped by the size budget from {len(r['dropped_from'])} variant(s): "
            f"{r['section']}: {r['headline']}", highlight=False, markup=False)
    if variants:
        table = Table("Variant (sections shown)", "Readers", title="Variants")
        for sections, n in variants:
            table.add_row(escape(", ".join(sections) or "(lead only)"), str(n))
        out(table)
    summary = data["deliveries"]
    if summary:
        waiting = summary.get("queued", 0) + summary.get("sending", 0)
        out("Delivery: " + ", ".join(f"{summary.get(k, 0)} {k}" for k in _COUNTED
                                     if k != "sent_unconfirmed" or summary.get(k))
            + f", {waiting} waiting", highlight=False, markup=False)
        for group in data["failures"]:  # largest first
            out(f"  {group['status']}: {group['reason']} ({group['count']})",
                highlight=False, markup=False)
    elif record.published_at is None:
        out("Delivery: not published yet.", highlight=False, markup=False)
    if data["preview_url"]:
        out(f"Preview: {data['preview_url']}", highlight=False, markup=False, soft_wrap=True)
    table = Table("When", "Move", "By", "Why", title="History")
    for e in data["events"]:
        move = e["to"] if e["from"] is None else (
            f"{e['from']} → {e['to']}" if e["from"] != e["to"] else f"({e['to']})")
        table.add_row(_when(datetime.fromisoformat(e["at"])), move, escape(e["actor"]),
                      escape(e["cause"] or ""))
    out(table)


def _move(config_path: str | None, edition_id: int, status: str, editor: str,
          reason: str | None, done: str) -> None:
    settings = open_settings(config_path)
    actor, cause = f"editor:{editor}", reason or f"{done} by an editor"
    with pipeline.open_store_for(settings) as store:
        if status == "approved":  # after its send window an edition is missed instead
            moved = pipeline.approve_edition(settings, store, edition_id, actor=actor,
                                             cause=cause)
        else:
            moved = store.set_edition_status(edition_id, status, actor=actor, cause=cause)
        record = store.get_edition(edition_id)
    if not moved:
        console.print(f"Edition {edition_id} is already {status}; nothing changed.",
                      highlight=False, markup=False)
        return
    console.print(f"Edition {edition_id} of {record.list_name} for {record.date} is now "
                  f"{status}.", highlight=False, markup=False)
    lst = settings.lists.get(record.list_name)
    if lst is not None:
        console.print(_what_next(settings, lst, record, status), highlight=False, markup=False)


def _what_next(settings: Settings, lst: ListSettings, record: Any, status: str) -> str:
    if status == "cancelled":
        return "It will never be sent; `draft` makes another."
    if status == "held":
        return f"It will not be sent until an editor approves it (`editions approve {record.id}`)."
    slot = SendSchedule(lst).slot(record.date)
    now = datetime.now(UTC)
    local = lst.timezone
    if now < slot.due:
        return (f"The scheduler sends it at {slot.due.astimezone(local):%Y-%m-%d %H:%M} "
                f"{local}.")
    if now < slot.closes:
        return ("Its send time has passed: a running scheduler sends it within a minute "
                f"(its send window is open until {slot.closes.astimezone(local):%H:%M} "
                f"{local}), or send it now with `send --list {lst.name}`.")
    # The window ended while this ran (approve_edition refuses once it has ended).
    return (f"Its send window ended at {slot.closes.astimezone(local):%Y-%m-%d %H:%M} "
            f"{local}, so the scheduler will not send it; `send --force` sends it anyway.")


_reason_option = click.option("--reason", metavar="TEXT",
                              help="Why (recorded in the edition's history).")


@editions.command()
@config_option
@click.argument("edition_id", metavar="ID", type=ROW_ID)
@_reason_option
@editor_option
@handle_errors
def hold(config_path: str | None, edition_id: int, reason: str | None, editor: str) -> None:
    """Stop an unpublished edition from going out until an editor approves it."""
    _move(config_path, edition_id, "held", editor, reason, "held")


@editions.command()
@config_option
@click.argument("edition_id", metavar="ID", type=ROW_ID)
@_reason_option
@editor_option
@handle_errors
def approve(config_path: str | None, edition_id: int, reason: str | None, editor: str) -> None:
    """Approve a draft (or release a held edition) so the scheduler sends it at send time.

    After the edition's send window an approval is too late: the edition is recorded as
    missed and `send --force` sends it anyway."""
    _move(config_path, edition_id, "approved", editor, reason, "approved")


@editions.command()
@config_option
@click.argument("edition_id", metavar="ID", type=ROW_ID)
@_reason_option
@editor_option
@handle_errors
def cancel(config_path: str | None, edition_id: int, reason: str | None, editor: str) -> None:
    """Cancel an unpublished edition: it is never sent (`draft` makes another)."""
    _move(config_path, edition_id, "cancelled", editor, reason, "cancelled")


def _stored(settings: Settings, store: Any, edition_id: int) -> tuple[Any, ListSettings]:
    """The stored edition and its configured list, or one sentence why it cannot be shown."""
    record = store.get_edition(edition_id)
    lst = settings.lists.get(record.list_name)
    if lst is None:
        fail(f"Edition {record.id} belongs to list {record.list_name!r}, which {settings.path} "
             "no longer configures.")
    if not record.has_stories:
        fail(f"Edition {record.id} has nothing to show: it was never built.")
    return record, lst  # type: ignore[return-value]


@editions.command()
@config_option
@click.argument("edition_id", metavar="ID", type=ROW_ID)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for edition.html, edition.txt and edition.eml.")
@click.option("--subscriber", metavar="EMAIL",
              help="As this reader of the list gets it (name, sections, links).")
@handle_errors
def preview(config_path: str | None, edition_id: int, out_dir: str,
            subscriber: str | None) -> None:
    """Write any stored edition (any day's, sent or not) as a reader gets it.

    \b
    Example:
      python run_digest.py editions preview 12 --subscriber ana@example.org --out preview/
    """
    settings = open_settings(config_path)
    with pipeline.open_store_for(settings) as store:
        record, lst = _stored(settings, store, edition_id)
        files = pipeline.write_preview(settings, lst, record.edition(), Path(out_dir),
                                       store=store, subscriber=subscriber)
    for warning in files.warnings:
        warn(warning)
    for path in (files.html, files.text, files.eml):
        console.print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)", highlight=False,
                      markup=False)


@editions.command("test")
@config_option
@click.argument("edition_id", metavar="ID", type=ROW_ID)
@click.option("--to", "addresses", multiple=True, required=True, metavar="EMAIL",
              help="Send a '[TEST]' copy to this address (repeatable).")
@editor_option
@handle_errors
def test_(config_path: str | None, edition_id: int, addresses: tuple[str, ...],
          editor: str) -> None:
    """Send a "[TEST]" copy of any stored edition to each address (no ledger; recorded as a
    note in the edition's history), as the desk's "Send test" does.

    \b
    Example:
      python run_digest.py editions test 12 --to me@example.org --to desk@example.org
    """
    from digest.pipeline.proofs import MAX_TEST_ADDRESSES, send_proofs
    from digest.store.subscribers import normalise_address

    settings = open_settings(config_path)
    found = list(dict.fromkeys(normalise_address(a, allow_smtputf8=settings.allow_smtputf8)[0]
                               for a in addresses))
    if len(found) > MAX_TEST_ADDRESSES:
        fail(f"A test goes to at most {MAX_TEST_ADDRESSES} addresses at once; {len(found)} "
             "were given.")
    with pipeline.open_store_for(settings) as store:
        record, lst = _stored(settings, store, edition_id)
        report = asyncio.run(send_proofs(settings, lst, record.edition(), found))
        store.note_edition(record.id, actor=f"editor:{editor}",
                           cause=f"test sent to {report.sent} address(es) from the command "
                                 "line", detail={"test": {"sent": report.sent,
                                                          "refused": report.failed}})
    console.print(f"Sent a test of edition {record.id} to {report.sent} address(es).",
                  highlight=False, markup=False)
    if report.failed:
        reasons = "; ".join(sorted(report.reasons.get("failed", {})))
        fail(f"The relay refused {report.failed} test(s) ({reasons}).")
