"""Long-running work: locks, the scheduler's jobs and the worker loop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest.config import ListSettings, Settings
from digest.pipeline.build import open_store_for, worker_id
from digest.pipeline.messages import MessageFactory
from digest.pipeline.scheduled import DueOutcome, run_due
from digest.pipeline.send import smtp_target

if TYPE_CHECKING:
    from digest.store import Store


@contextmanager
def _file_lock(path: Path, busy_message: str) -> Iterator[None]:
    import fcntl

    from digest.errors import DigestError

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DigestError(busy_message) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def send_lock(settings: Settings, lst: ListSettings) -> AbstractContextManager[None]:
    """One ``send`` of a list at a time on this machine (its claims carry one worker id)."""
    return _file_lock(settings.work_dir / "locks" / f"send-{lst.name}.lock",
                      f"Another send of list {lst.name} is running on this machine; "
                      "wait for it to finish or stop it.")


@contextmanager
def scheduler_lock(settings: Settings) -> Iterator[None]:
    """Exactly one scheduler: a PostgreSQL advisory lock, or a file lock for SQLite."""
    if not settings.database_url.startswith("postgresql"):
        with _file_lock(settings.work_dir / "locks" / "scheduler.lock",
                        "Another scheduler is running on this machine; stop it first."):
            yield
        return
    from digest.errors import DigestError
    from digest.store import open_store

    # The lock needs a connection, not the schema: no migration here.
    with open_store(settings.database_url, migrate=False) as store, \
            store.engine.connect() as conn:
        got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)" % SCHEDULER_LOCK_KEY)
        if not got.scalar():
            raise DigestError("Another scheduler holds the database's scheduler lock; "
                              "run only one `schedule` per database.")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)" % SCHEDULER_LOCK_KEY)


#: pg_advisory_lock key for "the scheduler" (any fixed 64-bit number unique to digest).
SCHEDULER_LOCK_KEY = 0x6469676573740001


# --------------------------------------------------------------------------- jobs


def run_scheduled(settings: Settings, list_name: str, *, store: Store | None = None,
                  now: datetime | None = None,
                  started_at: datetime | None = None) -> DueOutcome:
    """The scheduler's job for one list: whatever its edition needs now (build, review
    mail, publish, mark missed; see :mod:`digest.pipeline.scheduled`), under the list's send
    lock when there is something to do. Never raises for a failure: it is "delayed"."""
    from digest.errors import DigestError

    lst = settings.get_list(list_name)
    if store is not None:
        return run_due(settings, list_name, store=store, lock=lambda: send_lock(settings, lst),
                       now=now, started_at=started_at)
    try:
        with open_store_for(settings) as opened:
            return run_due(settings, list_name, store=opened,
                           lock=lambda: send_lock(settings, lst), now=now,
                           started_at=started_at)
    except DigestError as exc:  # the database could not be opened: the next minute retries
        import logging

        logging.getLogger("digest.editions").warning("edition list=%s delayed: %s",
                                                     list_name, exc)
        return DueOutcome(list_name, "delayed", str(exc))


def run_open_deliveries(settings: Settings) -> None:
    """One pass over every list's editions with rows still queued (the scheduler's retry job)."""
    import asyncio

    with open_store_for(settings) as store:
        asyncio.run(run_worker(settings, store, poll=5.0, once=True, actor="scheduler"))


async def run_worker(settings: Settings, store: Store, *, poll: float, once: bool,
                     progress: bool = False, actor: str = "worker") -> None:
    """Deliver the open ledger rows of every list's published editions until stopped;
    an edition whose rows all ended is recorded as sent (by ``actor``)."""
    import asyncio

    from digest.deliver import deliver_edition

    factories: dict[int, MessageFactory] = {}
    me = worker_id()
    while True:
        worked = False
        open_ids: set[int] = set()
        for lst in settings.lists.values():
            for record in store.list_editions(lst.name, limit=10, statuses=("sending",)):
                if record.status != "sending":  # every row ended: settled below
                    continue
                open_ids.add(record.id)
                factory = factories.get(record.id)
                if factory is None:
                    factory = factories[record.id] = MessageFactory(settings, lst,
                                                                    record.edition())
                relay = settings.relay_for(lst)
                async with smtp_target(settings, relay) as addr:
                    report = await deliver_edition(
                        record.id, store=store, build=factory.for_claim, relay=relay,
                        smtp_addr=addr, delivery=settings.delivery, worker_id=me,
                        progress=progress, max_wait=poll)
                worked = worked or bool(report.sent or report.failed)  # type: ignore[attr-defined]
        store.settle_editions(actor=actor)
        for done in set(factories) - open_ids:  # finished editions: free their variants
            del factories[done]
        if once:
            return
        if not worked:
            await asyncio.sleep(poll)
