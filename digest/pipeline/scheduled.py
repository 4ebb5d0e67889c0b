"""The scheduler's rule for one list, applied at every firing: what its edition needs now.

A due edition is a state, not an instant. While a list's slot is open (:mod:`digest.slots`)
and its edition for that day is neither sending, sent, held, cancelled nor missed, each run:

- builds and stores the draft if there is none (with ``review = "required"`` from
  ``review_lead`` before the send time; a draft built while a source failed is held when
  ``on_source_error = "hold"``, and the editors in ``review_to`` are told);
- mails the draft to the editors for review once (review lists), and waits for approval;
- from the send time on, publishes and delivers the draft (review off) or the approved
  edition; a list with no eligible recipient leaves it unpublished.

Anything that fails (a send lock held by an editor's command, the database or the relay
unreachable, every source down, nobody to send to, nothing new yet) only delays the edition:
the next firing, a minute later, tries again. When the slot closes with the edition still
unpublished it becomes ``missed``, with the reason, and the editors are told. A scheduler
started late applies the same rule at once, so a 23:30 edition missed by 40 minutes goes
out after midnight, dated the day it was due.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from digest.config import ListSettings, Settings
from digest.errors import DigestError, EditionStateError, EmptyEditionError
from digest.models import Edition
from digest.pipeline.build import build_edition
from digest.pipeline.notices import notify_editors, was_notified
from digest.pipeline.send import deliver_record, sync_subscriber_files
from digest.slots import SendSchedule, Slot

if TYPE_CHECKING:
    from digest.deliver import StopRequest
    from digest.store import EditionRecord, Store

__all__ = ["EMPTY_RETRY", "DueMemory", "DueOutcome", "run_due"]

log = logging.getLogger("digest.editions")

#: A due edition with nothing new is rebuilt at most this often (sources are fetched anew).
EMPTY_RETRY = timedelta(minutes=10)
_PENDING = ("draft", "approved")
_DIGITS = re.compile(r"\d+")


Lock = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class DueOutcome:
    """What one scheduled run did for one list.

    ``action``: "idle" (no slot open), "waiting" (drafted, before the send time),
    "awaiting-approval", "held", "published", "sending", "sent", "cancelled", "missed" (this
    run marked it, or it was), "refused" (an editor moved it meanwhile) or "delayed"
    (``message`` says why; the next run retries).
    """

    list_name: str
    action: str
    message: str = ""
    edition_id: int | None = None


class _Delay(Exception):
    """Raised inside a run when the edition must wait for the next firing."""


class DueMemory:
    """What one scheduler process remembers between firings of a list: the last problem
    (logged once, and the reason given if the edition ends up missed) and when a build
    that found nothing new may be tried again."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}
        self.empty_until: dict[tuple[str, date], datetime] = {}

    def problem(self, key: str, message: str) -> bool:
        """Remember ``message``; True when it differs from the last one (log it). Numbers
        do not count: "last heartbeat 3 s ago" is the same problem as "… 2 s ago"."""
        last = self.problems.get(key)
        new = last is None or _DIGITS.sub("#", last) != _DIGITS.sub("#", message)
        self.problems[key] = message
        return new


_MEMORY = DueMemory()


@dataclass(slots=True)
class _Run:
    settings: Settings
    lst: ListSettings
    store: Store
    lock: Lock
    memory: DueMemory
    now: datetime
    injected: bool
    started_at: datetime | None
    stop: StopRequest | None = None
    imported: bool = False  # the subscriber files were imported in this run

    def as_of(self, slot: Slot) -> datetime | None:
        """"Now" for a build: the slot's send time when the clock shows another local date
        than the slot's (a 23:30 edition caught up after midnight, a 00:30 edition's review
        draft built the evening before), so the edition carries the slot's date; else the
        real clock (None: relative ages resolve as for ``send``) or the injected one."""
        if self.now.astimezone(self.lst.timezone).date() != slot.day:
            return slot.due
        return self.now if self.injected else None


def run_due(settings: Settings, list_name: str, *, store: Store, lock: Lock,
            now: datetime | None = None, started_at: datetime | None = None,
            memory: DueMemory | None = None, stop: StopRequest | None = None) -> DueOutcome:
    """Apply the due rule to ``list_name`` at ``now``.

    :param lock: the list's send lock (one send of a list at a time); taken only when the
        run has something to do. A lock that is busy delays the edition.
    :param now: the clock; default the real one. An injected clock is also the builds'
        "now" (the real clock lets a build resolve relative ages as ``send`` does).
    :param started_at: when the scheduler started; a slot that closed after it, with no
        edition built at all, is recorded as missed (before it, nobody was watching).
    :param memory: what this scheduler remembers between runs (default: the process's).
    :param stop: the process's stop request: a delivery under way ends cleanly, and a run
        that starts after it does nothing.
    :returns: what was done; failures are returned as ``action == "delayed"``, never raised.
    """
    run = _Run(settings, settings.get_list(list_name), store, lock, memory or _MEMORY,
               now or datetime.now(UTC), now is not None, started_at, stop)
    if stop is not None and stop.requested:
        return DueOutcome(list_name, "delayed", f"stopping ({stop.reason})")
    lst, schedule = run.lst, SendSchedule(run.lst)
    try:
        outcome = asyncio.run(_due(run, schedule))
    except EditionStateError as exc:  # an editor moved it meanwhile: nothing to do now
        return DueOutcome(lst.name, "refused", str(exc))
    except (DigestError, _Delay) as exc:
        slot = schedule.slot_at(run.now)
        until = (f"; trying again every minute until "
                 f"{slot.closes.astimezone(lst.timezone):%Y-%m-%d %H:%M %Z}" if slot else "")
        if run.memory.problem(lst.name, str(exc)):
            log.warning("edition list=%s delayed: %s%s", lst.name, str(exc).rstrip("."), until)
        return DueOutcome(lst.name, "delayed", str(exc))
    if outcome.action not in ("idle", "waiting", "awaiting-approval", "delayed"):
        run.memory.problems.pop(lst.name, None)
    return outcome


async def _due(run: _Run, schedule: SendSchedule) -> DueOutcome:
    lst, store, now = run.lst, run.store, run.now
    closed = schedule.last_closed(now)
    result = await _close(run, closed) if closed is not None else None
    slot = schedule.slot_at(now)
    if slot is None:
        return result or DueOutcome(lst.name, "idle")
    record = store.find_edition(lst.name, slot.day)
    if record is not None and record.status not in _PENDING:
        return await _settled(run, slot, record)
    if record is not None and lst.review == "required" and record.status == "draft" \
            and was_notified(store, record.id, "review"):
        return DueOutcome(lst.name, "awaiting-approval", edition_id=record.id)
    if record is None and now < run.memory.empty_until.get((lst.name, slot.day), now):
        return DueOutcome(lst.name, "delayed", run.memory.problems.get(lst.name, ""))
    with run.lock():
        return await _act(run, slot)


async def _settled(run: _Run, slot: Slot, record: EditionRecord) -> DueOutcome:
    """The slot's edition needs no publishing; a held one may still owe its editors a
    notice, and a sending one may have just ended."""
    if record.status == "held" and run.lst.review_to and _moved_by_scheduler(run, record.id) \
            and not was_notified(run.store, record.id, "held"):
        await _tell(run, "held", slot, record, _last_cause(run, record.id))
    if record.status == "sending":
        run.store.settle_editions(run.lst.name, actor="scheduler")
    return DueOutcome(run.lst.name, record.status, edition_id=record.id)


async def _act(run: _Run, slot: Slot) -> DueOutcome:
    lst, store = run.lst, run.store
    record = store.find_edition(lst.name, slot.day)  # again, now that the lock is ours
    if record is not None and record.status not in _PENDING:
        return await _settled(run, slot, record)
    if record is None:
        _import_subscribers(run)  # a held notice counts the readers send would have
        record = await _build(run, slot)
        if record.status == "held":
            return DueOutcome(lst.name, "held", _last_cause(run, record.id) or "", record.id)
    if lst.review == "required" and record.status == "draft":
        if not was_notified(store, record.id, "review"):
            _import_subscribers(run)  # the counts the editors read are the ones send uses
            await notify_editors(run.settings, lst, store, kind="review", slot=slot,
                                 record=record)
        return DueOutcome(lst.name, "awaiting-approval", edition_id=record.id)
    if run.now < slot.due:
        return DueOutcome(lst.name, "waiting", edition_id=record.id)
    _import_subscribers(run)
    outcome = await deliver_record(run.settings, lst, store, record, actor="scheduler",
                                   as_of=run.as_of(slot), stop=run.stop)
    if outcome.status == "no-recipients":
        raise _Delay(outcome.message)
    if outcome.status == "stopped":  # the process is stopping: the rest waits, quietly
        return DueOutcome(lst.name, "delayed", outcome.message, record.id)
    for line in outcome.warnings:  # teasers the size budget dropped, per variant
        log.warning("edition %d list=%s %s", record.id, lst.name, line)
    report = outcome.report
    if report is not None:
        # "delivered" only when nothing waits: rows waiting are the pass's or a worker's.
        log.info("edition %d list=%s %s: sent=%d unconfirmed=%d failed=%d waiting=%d "
                 "skipped=%d", record.id, lst.name,
                 "delivered" if not report.deferred else "sent so far, rows wait",
                 report.sent, report.unconfirmed, report.failed, report.deferred,
                 report.skipped)
    return DueOutcome(lst.name, "published", outcome.message, record.id)


def _import_subscribers(run: _Run) -> None:
    """Import the list's subscriber files, once per run (as ``send`` does before it
    publishes), so what the editors are told and what is published count the same readers."""
    if run.imported:
        return
    lst = run.lst
    for path, imported in sync_subscriber_files(run.settings, lst, run.store):
        # Line numbers only: a row's reason may quote part of its address.
        if imported.rejected or imported.kept:
            log.warning("list=%s subscribers file %s: rejected lines %s; left to the readers: "
                        "lines %s", lst.name, path,
                        ",".join(str(r.line) for r in imported.rejected) or "none",
                        ",".join(str(k.line) for k in imported.kept) or "none")
    run.imported = True


async def _build(run: _Run, slot: Slot) -> EditionRecord:
    lst, store = run.lst, run.store
    try:
        built = await build_edition(run.settings, lst, store=store, as_of=run.as_of(slot))
    except EmptyEditionError as exc:
        run.memory.empty_until[(lst.name, slot.day)] = run.now + EMPTY_RETRY
        raise _Delay(f"{exc} (tried again every {EMPTY_RETRY.seconds // 60} minutes)") from None
    errors = built.errors
    record = store.record_edition(
        built.edition, actor="scheduler",
        cause="built for review" if run.now < slot.due else "built at send time",
        detail={"warnings": errors} if errors else None)
    if errors and lst.on_source_error == "hold" and record.status in _PENDING:
        cause = (f"{len(errors)} source(s) could not be read ({errors[0]}); "
                 "on_source_error = \"hold\"")
        store.set_edition_status(record.id, "held", actor="scheduler", cause=cause,
                                 detail={"warnings": errors})
        record = store.get_edition(record.id)
        await _tell(run, "held", slot, record, cause)
    return record


async def _close(run: _Run, slot: Slot) -> DueOutcome | None:
    """The slot that closed last: an edition still unpublished becomes missed."""
    lst, store = run.lst, run.store
    record = store.find_edition(lst.name, slot.day)
    if record is not None and record.status == "missed":
        if lst.review_to and not was_notified(store, record.id, "missed") \
                and _moved_by_scheduler(run, record.id, "missed"):
            await _tell(run, "missed", slot, record, _last_cause(run, record.id))
        return None
    if record is not None and record.status not in _PENDING:
        return None
    if record is None and (run.started_at is None or run.started_at >= slot.closes):
        return None  # nobody was watching that slot: nothing to say about it
    with run.lock():
        record = store.find_edition(lst.name, slot.day)
        if record is not None and record.status not in _PENDING:
            return None
        reason = _missed_reason(run, record)
        if record is None:
            placeholder = Edition(list_name=lst.name, date=slot.day, subject="", preheader="",
                                  lead=None, sections=())
            record = store.record_edition(placeholder, actor="scheduler", cause=reason,
                                          status="missed")
        if record.status in _PENDING:
            store.set_edition_status(record.id, "missed", actor="scheduler", cause=reason)
            record = store.get_edition(record.id)
    run.memory.problems.pop(lst.name, None)
    await _tell(run, "missed", slot, record, reason)
    return DueOutcome(lst.name, "missed", reason, record.id)


async def _tell(run: _Run, kind: str, slot: Slot, record: EditionRecord,
                reason: str | None) -> None:
    """Mail a held or missed notice; a failure is logged once and retried on a later run
    (the notice's event is what says it went out)."""
    key = f"{run.lst.name}:{kind}-notice"
    try:
        await notify_editors(run.settings, run.lst, run.store, kind=kind, slot=slot,
                             record=record, reason=reason)
    except DigestError as exc:
        if run.memory.problem(key, str(exc)):
            log.warning("edition %d list=%s: the editors could not be told it is %s: %s",
                        record.id, run.lst.name, kind, exc)
    else:
        run.memory.problems.pop(key, None)


def _missed_reason(run: _Run, record: EditionRecord | None) -> str:
    problem = run.memory.problems.get(run.lst.name)
    if record is None:
        return f"it was never built: {problem}" if problem else "it was never built"
    if run.lst.review == "required" and record.status == "draft":
        return "nobody approved it before its send window ended"
    if problem:
        return f"it could not be published before its send window ended: {problem}"
    return "it was not published before its send window ended"


def _moved_by_scheduler(run: _Run, edition_id: int, status: str = "held") -> bool:
    moves = [e for e in run.store.edition_events(edition_id)
             if e.new_status == status and e.old_status != status]
    return bool(moves) and moves[-1].actor == "scheduler"


def _last_cause(run: _Run, edition_id: int) -> str | None:
    moves = [e for e in run.store.edition_events(edition_id) if e.old_status != e.new_status]
    return moves[-1].cause if moves else None
