"""Sending an edition: publish, deliver (or resume), dry runs, test sends, single messages."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest.config import ListSettings, Settings
from digest.deliver.report import DeliveryReport
from digest.errors import ConfigError, EditionStateError
from digest.models import Edition
from digest.pipeline.build import build_edition
from digest.pipeline.carried import drop_warnings, record_carried, variants_for
from digest.pipeline.messages import MessageFactory, new_message_id

if TYPE_CHECKING:
    from digest.deliver import StopRequest
    from digest.store import EditionRecord, ImportReport, Store


@dataclass(slots=True)
class SendOutcome:
    """What one ``send`` did: ``status`` is sent / waiting (rows wait for retries, left to
    the scheduler's pass or a worker) / already-sent / no-recipients / skipped / dry-run /
    test / stopped (a requested stop left rows queued for the next run)."""

    status: str
    message: str
    edition: Edition | None = None
    edition_id: int | None = None
    report: DeliveryReport | None = None  # the delivery's (or the test send's) counts
    published: int = 0
    imports: list[tuple[str, ImportReport]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Teasers the size budget dropped, one sentence per variant (digest.pipeline.carried).
    warnings: list[str] = field(default_factory=list)


def sync_subscriber_files(settings: Settings, lst: ListSettings, store: Store, *,
                          dry_run: bool = False) -> list[tuple[str, ImportReport]]:
    """Import the list's ``subscribers_files`` (an ``ImportReport`` per file).

    The import obeys the store's ownership rule: it adds new readers and updates names and
    attributes, never makes an existing member active, never overwrites sections a reader
    chose, and lowers a status at most once. ``dry_run`` reads the store and reports what
    the import would do, writing nothing. A file unchanged since its last import (same
    SHA-256, same import parameters) is not read again (:mod:`digest.store.filesync`): its
    report has ``unchanged_since`` set.
    """
    reports = []
    for path in lst.subscribers_files:
        if not Path(path).is_file():
            raise ConfigError(f"Setting lists.{lst.name}.subscribers_files in {settings.path} "
                              f"names {path}, which does not exist; fix the path.")
        reports.append((path, store.import_file(
            lst.name, path, known_sections=lst.sections or None,
            allow_smtputf8=settings.allow_smtputf8, dry_run=dry_run)))
    return reports


def stored_edition(store: Store, lst: ListSettings, day: date) -> EditionRecord | None:
    """The list's stored edition for ``day`` that ``build``, ``preview`` and tests show:
    the newest one, unless it was cancelled or is the placeholder of one never built."""
    record = store.find_edition(lst.name, day)
    if record is None or record.status == "cancelled" or not record.has_stories:
        return None
    return record


async def _todays_edition(settings: Settings, lst: ListSettings, store: Store, *,
                          source_override: list[str] | None, as_of: datetime | None,
                          force: bool) -> tuple[Edition, list[str]]:
    """Today's stored edition if there is one (and not ``force``), else a fresh build."""
    day = (as_of or datetime.now(UTC)).astimezone(lst.timezone).date()
    existing = None if force or source_override else stored_edition(store, lst, day)
    if existing is not None:
        return existing.edition(), []
    outcome = await build_edition(settings, lst, store=store, source_override=source_override,
                                  as_of=as_of, force=force)
    return outcome.edition, outcome.errors


async def send_edition(settings: Settings, lst: ListSettings, *, store: Store,
                       source_override: list[str] | None = None, as_of: datetime | None = None,
                       force: bool = False, dry_run: bool = False,
                       test_to: tuple[str, ...] = (), progress: bool = False,
                       max_wait: float | None = None, editor: str | None = None,
                       stop: StopRequest | None = None) -> SendOutcome:
    """Publish today's edition of ``lst`` and deliver it, or resume one that is under way
    (``send``: an editor's command).

    Today's stored edition is the one sent (a draft, or an approved one when the list has
    ``review = "required"``); without one, a fresh build is stored and sent. A second call
    for the same day sends nothing. ``force`` is the editor's override, recorded in the
    edition's events with ``editor``: it sends a held or missed edition, an unapproved one,
    or (when today's went out or was cancelled) a new one. ``dry_run`` builds every message
    and sends none; ``test_to`` sends a "[TEST]" copy to each address without the ledger.
    An edition that finds no recipient is not published (status "no-recipients"). ``stop``
    ends the delivery cleanly when requested (status "stopped"; nothing is published if it
    comes before that).

    :raises EmptyEditionError: caught here and reported as ``status == "skipped"``.
    :raises EditionStateError: today's edition is held, cancelled, missed or awaits review,
        and not ``force``.
    :raises ValueError: for ``dry_run`` with ``test_to`` (a dry run sends nothing; the
        command line refuses the two together as bad usage).
    """
    from digest.deliver import send_test
    from digest.errors import EmptyEditionError

    if dry_run and test_to:
        raise ValueError("a dry run sends nothing, not even a test copy")
    relay = settings.relay_for(lst)
    imports: list[tuple[str, ImportReport]] = []
    if dry_run:  # the recipients a real send would have, with nothing written
        imports = sync_subscriber_files(settings, lst, store, dry_run=True)
    if test_to or dry_run:
        try:
            edition, errors = await _todays_edition(settings, lst, store,
                                                    source_override=source_override,
                                                    as_of=as_of, force=force)
        except EmptyEditionError as exc:
            return SendOutcome("skipped", str(exc), imports=imports, errors=list(exc.warnings))
        if test_to:
            factory = MessageFactory(settings, lst, edition, subject_prefix="[TEST] ",
                                     as_of=as_of)
            messages = [(lst.from_email, addr, factory.message(
                email=addr, name=None, sections=None, subscriber_id=None,
                message_id=new_message_id(settings, "test"))) for addr in test_to]
            async with smtp_target(settings, relay) as addr:
                report = await send_test(messages, relay=relay, smtp_addr=addr,
                                         delivery=settings.delivery)
            told = (f"Sent a test of the {lst.name} edition to {report.sent} address(es)."
                    if not report.failed else
                    f"The test of the {lst.name} edition reached {report.sent} of "
                    f"{len(test_to)} address(es); {report.failed} failed (reasons above).")
            return SendOutcome("test", told, edition, report=report,
                               errors=errors, warnings=_drops(
                                   factory, edition, [(None, len(test_to))], "test address(es)"))
        factory = MessageFactory(settings, lst, edition, as_of=as_of)
        count = size = 0
        audience: Counter[frozenset[str] | None] = Counter()
        for member in store.iter_eligible(lst.name):
            size += len(factory.message(email=member.email, name=member.name,
                                        sections=member.sections,
                                        subscriber_id=member.subscriber_id,
                                        message_id=new_message_id(settings, "dry-run")))
            count += 1
            audience[member.sections] += 1
        added = [m for _, report in imports for m in report.new_members]
        for email, name, sections in added:  # not in the store yet: preview links
            size += len(factory.message(email=email, name=name, sections=sections,
                                        subscriber_id=None,
                                        message_id=new_message_id(settings, "dry-run")))
            audience[sections] += 1
        count += len(added)
        note = (f" ({len(added)} of them to readers the list's subscriber files would add)"
                if added else "")
        return SendOutcome("dry-run", f"Dry run: built {count} messages{note} "
                           f"({size / 1024:.0f} KiB in all) and sent none; nothing was "
                           "written to the database.", edition, imports=imports,
                           errors=errors,
                           warnings=_drops(factory, edition, audience.items(), "reader(s)"))

    imports = sync_subscriber_files(settings, lst, store)
    day = (as_of or datetime.now(UTC)).astimezone(lst.timezone).date()
    actor = f"editor:{editor}" if force and editor else "send command"
    record = store.find_edition(lst.name, day)
    errors = []
    if record is not None and record.status == "sent" and not force:
        summary = store.delivery_summary(record.id)
        return SendOutcome("already-sent", f"The {lst.name} edition of {day} already went out "
                           f"({summary.get('sent', 0)} sent); use --force to send another.",
                           record.edition(), record.id, imports=imports)
    if record is not None and record.status == "draft" and lst.review == "required" \
            and not force:
        raise EditionStateError(
            f"List {lst.name} needs review: approve edition {record.id} first (`editions "
            f"approve {record.id}`), or send it anyway with --force.")
    fresh = record is None or (force and (record.status in ("sent", "cancelled")
                                          or not record.has_stories))
    if fresh:
        try:
            outcome = await build_edition(settings, lst, store=store,
                                          source_override=source_override, as_of=as_of,
                                          force=force)
        except EmptyEditionError as exc:
            return SendOutcome("skipped", str(exc), imports=imports, errors=list(exc.warnings))
        errors = outcome.errors
        record = store.record_edition(
            outcome.edition, forced=force, actor=actor,
            cause="built by send" + (" --force" if force else ""),
            detail={"warnings": errors} if errors else None)
    assert record is not None
    return await deliver_record(settings, lst, store, record, actor=actor, force=force,
                                as_of=as_of, progress=progress, max_wait=max_wait,
                                imports=imports, errors=errors, stop=stop)


async def deliver_record(settings: Settings, lst: ListSettings, store: Store,
                         record: EditionRecord, *, actor: str, force: bool = False,
                         as_of: datetime | None = None, progress: bool = False,
                         max_wait: float | None = None,
                         imports: list[tuple[str, ImportReport]] | None = None,
                         errors: list[str] | None = None,
                         stop: StopRequest | None = None) -> SendOutcome:
    """Publish a stored edition (unless it is already) and deliver its ledger rows; then
    record "sent" if every row ended. Status "no-recipients" when the list has nobody
    eligible (the edition stays unpublished), else "sent" (every row ended), "waiting"
    (rows wait for a retry once ``[delivery] send_wait`` has passed, or their next retry
    is further away than ``max_wait``: the scheduler's pass or a ``worker`` finishes them)
    or "already-sent"; "stopped" when ``stop`` was requested (before publishing: nothing
    is published; during the delivery: the rest waits, none in flight).

    :raises EditionStateError: the edition's status forbids publishing it (see
        ``Store.publish_edition``).
    """
    from digest.deliver import DEFAULT_MAX_WAIT, deliver_edition, worker_id

    relay = settings.relay_for(lst)
    imports = imports if imports is not None else []
    errors = errors if errors is not None else []
    edition = record.edition()
    if stop is not None and stop.requested and not record.published:
        return SendOutcome("stopped", f"Stopped on request ({stop.reason}) before the "
                           f"{lst.name} edition of {edition.date} was published; nothing was "
                           "sent.", edition, record.id, imports=imports, errors=errors)
    published = store.publish_edition(record.id, message_id_domain=settings.site.domain,
                                      now=datetime.now(UTC), actor=actor, force=force)
    if not published:
        record = store.get_edition(record.id)
        if not record.published:
            return SendOutcome(
                "no-recipients", f"List {lst.name} has no active subscribers, so nothing was "
                f"sent and edition {record.id} stays {record.status}; add subscribers "
                f"(`subscribers import FILE --list {lst.name}`) and send again.",
                edition, record.id, imports=imports, errors=errors)
    factory = MessageFactory(settings, lst, edition, as_of=as_of)
    warnings = record_carried(store, record.id, edition, factory)
    async with smtp_target(settings, relay) as addr, factory.signing() as signer:
        report = await deliver_edition(
            record.id, store=store, build=factory.for_claim_unsigned, relay=relay,
            smtp_addr=addr, delivery=settings.delivery, worker_id=worker_id(), stop=stop,
            send_wait=settings.delivery.send_wait.total_seconds(),
            progress=progress, max_wait=DEFAULT_MAX_WAIT if max_wait is None else max_wait,
            signer=signer)
    store.settle_editions(lst.name, actor=actor)
    summary = store.delivery_summary(record.id)
    if report.interrupted:
        waiting = summary.get("queued", 0) + summary.get("sending", 0)
        status, message = "stopped", (
            f"Stopped on request ({report.interrupted}): the {lst.name} edition of "
            f"{edition.date} has {summary.get('sent', 0)} sent and {waiting} waiting, none in "
            "flight; run send again (or leave it to the scheduler or a worker) to finish it.")
    elif waiting := summary.get("queued", 0) + summary.get("sending", 0):
        status, message = "waiting", _waiting(lst.name, edition.date, summary,
                                              store.next_wakeup(record.id))
    elif not published and not report.sent and not (
            report.failed or report.expired or report.unconfirmed):
        status, message = "already-sent", (
            f"The {lst.name} edition of {edition.date} already went out "
            f"({summary.get('sent', 0)} sent); use --force to send another.")
    else:
        status, message = "sent", _delivered(lst.name, edition.date, summary)
    return SendOutcome(status, message, edition, record.id, report, published, imports, errors,
                       warnings)


def _drops(factory: MessageFactory, edition: Edition,
           audience: Iterable[tuple[frozenset[str] | None, int]], readers: str) -> list[str]:
    return drop_warnings(edition, variants_for(factory, audience),
                         budget_kb=factory.renderer.budget // 1024, readers=readers)


def _delivered(list_name: str, day: object, summary: dict[str, int]) -> str:
    """The closing sentence of a send whose rows all ended: "was delivered" only when
    every row was sent (sent-unconfirmed rows count as delivered, and are named)."""
    unconfirmed = summary.get("sent_unconfirmed", 0)
    undelivered = summary.get("failed", 0) + summary.get("expired", 0)
    if not undelivered:
        apart = (f" ({unconfirmed} of them unconfirmed: the connection dropped after the "
                 "message was sent)" if unconfirmed else "")
        return f"The {list_name} edition of {day} was delivered{apart}."
    parts = [f"{summary.get('sent', 0) + unconfirmed} delivered"
             + (f" ({unconfirmed} unconfirmed)" if unconfirmed else ""),
             f"{summary.get('failed', 0)} failed"]
    if summary.get("expired"):
        parts.append(f"{summary['expired']} expired")
    return (f"The {list_name} edition of {day}: {', '.join(parts)} (the reasons are listed "
            "above).")


def _waiting(list_name: str, day: object, summary: dict[str, int],
             next_retry: datetime | None) -> str:
    """The closing sentence of a send that returned with rows waiting for a retry: never
    "delivered", never "run send again"; who finishes them and when the next is due."""
    waiting = summary.get("queued", 0) + summary.get("sending", 0)
    unconfirmed = summary.get("sent_unconfirmed", 0)
    done = summary.get("sent", 0) + unconfirmed
    ended = [f"{done} sent" + (f" ({unconfirmed} of them unconfirmed)" if unconfirmed else "")]
    for key in ("failed", "expired"):
        if summary.get(key):
            ended.append(f"{summary[key]} {key}")
    when = (next_retry.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            if next_retry is not None else "unknown")
    return (f"The {list_name} edition of {day} is not finished: {', '.join(ended)}; "
            f"{waiting} wait for a retry (the next due {when}). The scheduler's periodic "
            "pass or a `worker` finishes them within the retry window; `status` shows them.")


@asynccontextmanager
async def smtp_target(settings: Settings, relay: object | None) -> AsyncIterator[
        tuple[str, int] | None]:
    """No relay configured: the embedded server storing into the Maildir; else nothing."""
    from digest.deliver import embedded_smtp_server

    if relay is not None:
        yield None
        return
    async with embedded_smtp_server(settings.maildir) as addr:
        yield addr


async def send_single_message(settings: Settings, lst: ListSettings,
                              message: tuple[str, str, bytes]) -> bool:
    """Send one ``(sender, recipient, bytes)`` message outside any edition (the web app's
    confirmation emails) through the list's relay or the embedded server.

    :returns: True when the relay accepted it, False when it refused the recipient.
    :raises DeliveryError: when the relay cannot be used (down, refused our credentials).
    """
    from digest.deliver import send_test
    from digest.errors import DeliveryError

    relay = settings.relay_for(lst)
    try:
        async with smtp_target(settings, relay) as addr:
            report = await send_test([message], relay=relay, smtp_addr=addr,
                                     delivery=settings.delivery)
    except OSError as exc:
        raise DeliveryError(f"The mail server could not be reached ({type(exc).__name__}); "
                            "check the relay settings.") from exc
    return report.sent > 0
