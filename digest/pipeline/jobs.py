"""Long-running work: the scheduler's jobs and the worker loop.

Every job gets the store the command opened (and migrated) once, and the process's
:class:`~digest.deliver.StopRequest`, which ends its delivery cleanly on SIGTERM/SIGINT.
The locks they take live in the database (:mod:`digest.pipeline.locks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.deliver import StopRequest, worker_id
from digest.errors import DigestError, LockHeldError
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


def run_open_deliveries(settings: Settings, *, store: Store | None = None,
                        stop: StopRequest | None = None) -> None:
    """One pass over every list's editions with rows still queued (the scheduler's retry
    job); a list whose send lock another run holds is left to that run."""
    if store is None:
        with open_store_for(settings) as own:
            run_open_deliveries(settings, store=own, stop=stop)
        return
    asyncio.run(run_worker(settings, store, poll=5.0, once=True, actor="scheduler", stop=stop,
                           lock_lists=True))


async def run_worker(settings: Settings, store: Store, *, poll: float, once: bool,
                     progress: bool = False, actor: str = "worker",
                     stop: StopRequest | None = None, lock_lists: bool = False) -> None:
    """Deliver the open ledger rows of every list's published editions until stopped;
    an edition whose rows all ended is recorded as sent (by ``actor``).

    :param stop: ends the loop (and the delivery under way, cleanly) when requested.
    :param lock_lists: hold each list's send lock while delivering it, skipping lists
        whose lock another run holds (the scheduler's pass; ``worker`` processes share
        editions through their claims instead).
    """
    from digest.deliver import deliver_edition

    factories: dict[int, MessageFactory] = {}
    me = worker_id()
    while stop is None or not stop.requested:
        worked = False
        open_ids: set[int] = set()
        for lst in settings.lists.values():
            if stop is not None and stop.requested:
                break
            records = [r for r in store.list_editions(lst.name, limit=10, statuses=("sending",))
                       if r.status == "sending"]  # every row ended: settled below
            if not records:
                continue
            guard: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
            list_stop = stop.linked() if stop is not None else StopRequest()
            if lock_lists:  # a lost lock stops this list's delivery, not the loop
                guard = send_lock(settings, lst, store=store, on_lost=list_stop.request)
            try:
                with guard:
                    for record in records:
                        open_ids.add(record.id)
                        factory = factories.get(record.id)
                        if factory is None:
                            factory = factories[record.id] = MessageFactory(
                                settings, lst, record.edition())
                        relay = settings.relay_for(lst)
                        async with smtp_target(settings, relay) as addr:
                            report = await deliver_edition(
                                record.id, store=store, build=factory.for_claim, relay=relay,
                                smtp_addr=addr, delivery=settings.delivery, worker_id=me,
                                progress=progress, max_wait=poll, stop=list_stop)
                        if report.sent or report.failed or report.expired:
                            worked = True
                            log.info("worker %s: edition %d: %d sent, %d failed, %d expired, "
                                     "%d deferred in %.1f s", me, record.id, report.sent,
                                     report.failed, report.expired, report.deferred,
                                     report.elapsed)
            except LockHeldError as exc:
                log.debug("open deliveries of %s left to another run: %s", lst.name, exc)
                open_ids.update(r.id for r in records)
        store.settle_editions(actor=actor)
        for done in set(factories) - open_ids:  # finished editions: free their variants
            del factories[done]
        if once:
            return
        if not worked:
            if stop is not None:
                await stop.sleep(poll)
            else:
                await asyncio.sleep(poll)
