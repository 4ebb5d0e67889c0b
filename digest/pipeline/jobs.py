"""Long-running work: the scheduler's jobs and the worker loop.

Every job gets the store the command opened (and migrated) once, and the process's
:class:`~digest.deliver.StopRequest`, which ends its delivery cleanly on SIGTERM/SIGINT.
The locks they take live in the database (:mod:`digest.pipeline.locks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.deliver import DeliveryReport, StopRequest, worker_id
from digest.errors import DigestError, LockHeldError
from digest.logs import iso_time
from digest.pipeline.build import open_store_for
from digest.pipeline.locks import send_lock
from digest.pipeline.messages import MessageFactory
from digest.pipeline.scheduled import DueOutcome, run_due
from digest.pipeline.send import smtp_target

if TYPE_CHECKING:
    from digest.store import Store

log = logging.getLogger("digest.pipeline")


def run_scheduled(settings: Settings, list_name: str, *, store: Store | None = None,
                  now: datetime | None = None, started_at: datetime | None = None,
                  stop: StopRequest | None = None) -> DueOutcome:
    """The scheduler's job for one list: whatever its edition needs now (build, review
    mail, publish, mark missed; see :mod:`digest.pipeline.scheduled`), under the list's send
    lock (held in the database) when there is something to do. Never raises for a failure:
    it is "delayed". ``stop`` ends a delivery under way cleanly.

    :param store: the scheduler's open store (None: open one for this run).
    """
    lst = settings.get_list(list_name)
    if store is not None:
        # A lost send lock stops this run only; the process's stop stops it too.
        run_stop = stop.linked() if stop is not None else StopRequest()
        return run_due(settings, list_name, store=store, now=now, started_at=started_at,
                       stop=run_stop, lock=lambda: send_lock(settings, lst, store=store,
                                                             on_lost=run_stop.request))
    try:
        with open_store_for(settings) as opened:
            return run_scheduled(settings, list_name, store=opened, now=now,
                                 started_at=started_at, stop=stop)
    except DigestError as exc:  # the database could not be opened: the next minute retries
        logging.getLogger("digest.editions").warning("edition list=%s delayed: %s",
                                                     list_name, exc)
        return DueOutcome(list_name, "delayed", str(exc))


@dataclass
class EditionPass:
    """What one worker pass did for one edition (``worker --once`` prints it): rows ended
    by this pass per outcome, rows the pass expired without claiming them (their retry
    window ended), and what still waits (and when the next retry is due)."""

    edition_id: int
    list_name: str
    day: date
    sent: int = 0
    unconfirmed: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0
    retried: int = 0
    waiting: int = 0
    next_retry_at: datetime | None = None
    note: str = ""  # e.g. "left to another run (its send lock is held)"

    def add(self, report: DeliveryReport) -> None:
        """Add one delivery run's counts."""
        self.sent += report.sent
        self.unconfirmed += report.unconfirmed
        self.failed += report.failed
        self.expired += report.expired
        self.skipped += report.skipped
        self.retried += report.retried

    def text(self) -> str:
        """``edition 12 daily 2026-11-28: sent 3, failed 1, expired 2; 1 waiting, next
        retry due 2026-11-28T07:12:00+00:00``."""
        done = [f"{n} {what}" for n, what in (
            (self.sent, "sent"), (self.unconfirmed, "sent unconfirmed"),
            (self.failed, "failed"), (self.expired, "expired"), (self.skipped, "skipped"),
            (self.retried, "retried")) if n]
        line = (f"edition {self.edition_id} {self.list_name} {self.day.isoformat()}: "
                + (", ".join(done) if done else "nothing due"))
        if self.waiting:
            when = iso_time(self.next_retry_at) if self.next_retry_at else "unknown"
            line += f"; {self.waiting} waiting, next retry due {when}"
        else:
            line += "; every row ended"
        return line + (f" ({self.note})" if self.note else "")


def run_open_deliveries(settings: Settings, *, store: Store | None = None,
                        stop: StopRequest | None = None) -> list[EditionPass]:
    """One pass over every list's published editions with rows not yet ended, whatever
    their age (the scheduler's periodic job): rows whose retry window ended are expired,
    due rows are delivered; a list whose send lock another run holds is left to that run."""
    if store is None:
        with open_store_for(settings) as own:
            return run_open_deliveries(settings, store=own, stop=stop)
    return asyncio.run(run_worker(settings, store, poll=5.0, once=True, actor="scheduler",
                                  stop=stop, lock_lists=True))


async def run_worker(settings: Settings, store: Store, *, poll: float, once: bool,
                     progress: bool = False, actor: str = "worker",
                     stop: StopRequest | None = None,
                     lock_lists: bool = False) -> list[EditionPass]:
    """Deliver the open ledger rows of every list's published editions until stopped;
    an edition whose rows all ended is recorded as sent (by ``actor``).

    Each pass looks at every published edition with rows queued or sending, of any age
    (``Store.unfinished_editions``, through the ledger's claim index): it first expires
    the rows whose retry window ended and that nobody holds (``Store.expire_overdue``),
    then delivers the editions that have a row due now. ``once``: one pass, then return
    what it did per edition (``worker --once`` prints it).

    :param stop: ends the loop (and the delivery under way, cleanly) when requested.
    :param lock_lists: hold each list's send lock while delivering it, skipping lists
        whose lock another run holds (the scheduler's pass; ``worker`` processes share
        editions through their claims instead).
    """
    from digest.deliver import deliver_edition

    factories: dict[int, MessageFactory] = {}
    me = worker_id()
    passes: dict[int, EditionPass] = {}
    while stop is None or not stop.requested:
        worked = False
        open_ids: set[int] = set()
        for lst in settings.lists.values():
            if stop is not None and stop.requested:
                break
            now = datetime.now(UTC)
            due: list[EditionPass] = []
            for ed in store.unfinished_editions(lst.name):
                open_ids.add(ed.edition_id)
                done = passes.setdefault(ed.edition_id, EditionPass(
                    ed.edition_id, lst.name, ed.date))
                expired, unconfirmed = store.expire_overdue(
                    ed.edition_id, window=settings.delivery.retry_window, now=now)
                if expired or unconfirmed:
                    done.expired += expired
                    done.unconfirmed += unconfirmed
                    worked = True
                    log.info("edition %d list=%s ended %d row(s) whose retry window ended: "
                             "expired=%d unconfirmed=%d", ed.edition_id, lst.name,
                             expired + unconfirmed, expired, unconfirmed)
                wake = store.next_wakeup(ed.edition_id)
                if wake is not None and wake <= now:
                    due.append(done)
            if not due:
                continue
            guard: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
            list_stop = stop.linked() if stop is not None else StopRequest()
            if lock_lists:  # a lost lock stops this list's delivery, not the loop
                guard = send_lock(settings, lst, store=store, on_lost=list_stop.request)
            try:
                with guard:
                    for done in due:
                        factory = factories.get(done.edition_id)
                        if factory is None:
                            record = store.get_edition(done.edition_id)
                            factory = factories[done.edition_id] = MessageFactory(
                                settings, lst, record.edition())
                        relay = settings.relay_for(lst)
                        async with smtp_target(settings, relay) as addr, \
                                factory.signing() as signer:
                            report = await deliver_edition(
                                done.edition_id, store=store,
                                build=factory.for_claim_unsigned,
                                relay=relay, smtp_addr=addr, delivery=settings.delivery,
                                worker_id=me, progress=progress, max_wait=poll, stop=list_stop,
                                signer=signer)
                        done.add(report)
                        if report.sent or report.failed or report.expired or \
                                report.unconfirmed:
                            worked = True
                            log.info("edition %d list=%s %s: sent=%d unconfirmed=%d "
                                     "failed=%d expired=%d waiting=%d in %.1f s",
                                     done.edition_id, lst.name,
                                     "delivered" if not report.deferred
                                     else "sent so far, rows wait", report.sent,
                                     report.unconfirmed, report.failed, report.expired,
                                     report.deferred, report.elapsed)
            except LockHeldError as exc:
                log.debug("open deliveries of %s left to another run: %s", lst.name, exc)
                for done in due:
                    done.note = "left to another run: its send lock is held"
        store.settle_editions(actor=actor)
        for gone in set(factories) - open_ids:  # finished editions: free their variants
            del factories[gone]
        if once:
            for done in passes.values():
                counts = store.delivery_summary(done.edition_id)
                done.waiting = counts.get("queued", 0) + counts.get("sending", 0)
                done.next_retry_at = store.next_wakeup(done.edition_id) if done.waiting \
                    else None
            return list(passes.values())
        passes.clear()
        if not worked:
            if stop is not None:
                await stop.sleep(poll)
            else:
                await asyncio.sleep(poll)
    return []
