"""Locks held where the database is: the scheduler's (one per database) and each list's send
lock (one send of a list at a time), on any number of hosts and working folders.

Both are leases in the store (``digest.store.leases``) held under this process's
:func:`~digest.deliver.worker_id`. The holder renews every ``[scheduler] heartbeat``; one
that cannot renew for ``[scheduler] lease`` (crashed, hung, cut off from the database)
loses the lock, and :attr:`LeaseLock.valid` turns false on its side a heartbeat before
anyone else may take it, so the two never act at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from digest.config import ListSettings, SchedulerSettings, Settings
from digest.deliver import worker_id
from digest.errors import LockHeldError, StoreError

if TYPE_CHECKING:
    from digest.store import Lease, Store

__all__ = ["SCHEDULER_LEASE", "LeaseLock", "describe_lease", "send_lease_name", "send_lock"]

log = logging.getLogger("digest.locks")

#: The scheduler's lease; its renewals are the heartbeat ``status`` and ``/healthz`` read.
SCHEDULER_LEASE = "scheduler"


def send_lease_name(list_name: str) -> str:
    """The lease that makes one send of ``list_name`` run at a time."""
    return f"send:{list_name}"


def _ago(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def describe_lease(lease: Lease) -> str:
    """``held by HOLDER, last heartbeat N s ago`` (or how it ended), for messages."""
    if lease.state == "released":
        return f"released by {lease.holder} at {lease.released_at:%Y-%m-%dT%H:%M:%SZ}"
    return (f"{'held' if lease.held else 'last held'} by {lease.holder}, last heartbeat "
            f"{_ago(lease.heartbeat_age)} ago")


class LeaseLock:
    """One named lease this process may hold: take it, renew it, know whether it still
    holds it, let go. Thread-safe; renewals run in :meth:`renewing` or by the caller."""

    def __init__(self, store: Store, name: str, settings: SchedulerSettings, *,
                 holder: str | None = None,
                 on_lost: Callable[[str], object] | None = None) -> None:
        self.store = store
        self.name = name
        self.holder = holder or worker_id()
        self.heartbeat = settings.heartbeat.total_seconds()
        self.ttl = settings.lease
        self.on_lost = on_lost
        self._valid_until = 0.0  # monotonic; a heartbeat of margin before the lease ends
        self._lock = threading.Lock()
        self._lost_reported = False
        self._unreachable = False

    @property
    def valid(self) -> bool:
        """True while this process may act on the lock (renewed recently enough)."""
        return time.monotonic() < self._valid_until

    def _renewed(self, started: float) -> None:
        self._valid_until = started + self.ttl.total_seconds() - self.heartbeat
        self._lost_reported = False

    def acquire(self) -> Lease | None:
        """Take the lock if it is free.

        :returns: None when taken, else the lease as it stands (who holds it).
        :raises StoreError: the database cannot be reached.
        """
        with self._lock:
            started = time.monotonic()
            taken, lease = self.store.acquire_lease(self.name, self.holder, ttl=self.ttl)
            if not taken:
                return lease
            self._renewed(started)
            return None

    def renew(self) -> bool:
        """Renew (a heartbeat). False when the lock is lost: someone took it over after it
        expired, or the database stayed unreachable until it was no longer :attr:`valid`;
        ``on_lost`` is called once per loss."""
        with self._lock:
            started = time.monotonic()
            try:
                kept = self.store.renew_lease(self.name, self.holder, ttl=self.ttl)
            except StoreError as exc:
                if not self._unreachable:
                    log.warning("cannot renew the %s lock: %s", self.name, exc)
                self._unreachable = True
                kept = self.valid
            else:
                if self._unreachable:
                    log.info("the %s lock is renewed again", self.name)
                self._unreachable = False
                if kept:
                    self._renewed(started)
                else:
                    self._valid_until = 0.0
            if not kept and not self._lost_reported:
                self._lost_reported = True
                if self.on_lost is not None:
                    self.on_lost(f"lost the {self.name} lock")
            return kept

    def release(self) -> None:
        """Let go (best effort: an unreachable database lets the lease expire instead)."""
        with self._lock:
            self._valid_until = 0.0
            try:
                self.store.release_lease(self.name, self.holder)
            except StoreError as exc:
                log.warning("cannot release the %s lock (it expires by itself): %s",
                            self.name, exc)

    @contextmanager
    def renewing(self) -> Iterator[LeaseLock]:
        """Renew every heartbeat in a background thread for the ``with`` block."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat):
                self.renew()

        thread = threading.Thread(target=beat, name=f"digest-lease-{self.name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join()


@contextmanager
def send_lock(settings: Settings, lst: ListSettings, *, store: Store | None = None,
              on_lost: Callable[[str], object] | None = None) -> Iterator[LeaseLock]:
    """Hold list ``lst``'s send lock for the ``with`` block: one send (or scheduler pass)
    of a list at a time per database, renewed in the background, released at the end.

    :param store: the open store (None: open the configured one for the block).
    :param on_lost: called with a reason if the lock is lost meanwhile (the caller should
        stop sending, e.g. ``StopRequest.request``).
    :raises LockHeldError: another process holds it (the message says who and since when).
    """
    if store is None:
        from digest.pipeline.build import open_store_for

        with open_store_for(settings) as own, send_lock(settings, lst, store=own,
                                                        on_lost=on_lost) as lock:
            yield lock
        return
    lock = LeaseLock(store, send_lease_name(lst.name), settings.scheduler, on_lost=on_lost)
    busy = lock.acquire()
    if busy is not None:
        raise LockHeldError(f"Another send of list {lst.name} is running for this database "
                            f"({describe_lease(busy)}); wait for it to finish or stop it.",
                            holder=busy.holder)
    try:
        with lock.renewing():
            yield lock
    finally:
        lock.release()
