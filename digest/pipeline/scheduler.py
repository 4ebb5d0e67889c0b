"""The ``schedule`` process: one scheduler per database, its heartbeat, and a clean stop.

:func:`run_scheduler` takes the scheduler lock (a lease in the database, see
:mod:`digest.pipeline.locks`), or waits for it as a standby, then runs each list's job
(APScheduler, :mod:`digest.schedule`) with the store opened once by the command. Its main
thread renews the lock every ``[scheduler] heartbeat`` (the heartbeat ``status`` and
``/healthz`` read) and pings the service manager's watchdog, both only while the scheduler's
loop is seen dispatching jobs (:class:`Liveness`): a hung scheduler stops pinging (systemd's
``WatchdogSec=`` restarts it) and stops its heartbeat (``status`` says stale, a standby takes
over), instead of a timer that pings whatever the scheduler does. A scheduler that loses the lock
(the database unreachable past the lease, or another scheduler took over) pauses its jobs
until it holds the lock again, so two schedulers never fire at once. When the stop request
is set (SIGTERM, SIGINT) it stops firing, lets running jobs stop cleanly (their deliveries
honour the same request), releases the lock and returns the sentence to log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from digest.config import Settings
from digest.deliver import StopRequest
from digest.errors import StoreError
from digest.pipeline.jobs import run_open_deliveries, run_scheduled
from digest.pipeline.locks import SCHEDULER_LEASE, LeaseLock, describe_lease
from digest.pipeline.status import next_runs_text
from digest.systemd import Notifier

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from digest.store import Lease, Store

__all__ = ["Liveness", "SchedulerExit", "run_scheduler"]

log = logging.getLogger("digest.scheduler")


class Liveness:
    """Whether the scheduler's loop still dispatches jobs: :meth:`ran` is the job it runs
    every tick (on an executor of its own), :meth:`check` what the main thread asks before
    each watchdog ping and heartbeat. Stale after ``stale_after`` seconds without a run
    (monotonic clock); each change is logged once."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self.clock = clock
        self.last_run = clock()
        self.stale = False

    def ran(self) -> None:
        """The liveness job ran (called from the scheduler's executor)."""
        self.last_run = self.clock()

    def check(self) -> bool:
        """True while the loop ran within ``stale_after`` seconds."""
        silent = self.clock() - self.last_run
        if silent <= self.stale_after:
            if self.stale:
                self.stale = False
                log.info("the scheduler loop runs again; watchdog pings and heartbeat resume")
            return True
        if not self.stale:
            self.stale = True
            log.error("the scheduler loop has not run for %.0f s (hung); no watchdog ping and "
                      "no heartbeat until it runs again", silent)
        return False


class SchedulerExit(NamedTuple):
    """How :func:`run_scheduler` ended: ``state`` is "busy" (another scheduler holds the
    lock and this one was not a standby), "standby" (stopped while waiting) or "stopped";
    ``message`` is the one sentence to show."""

    state: str
    message: str


def run_scheduler(settings: Settings, store: Store, *, stop: StopRequest,
                  standby: bool = False, notifier: Notifier | None = None) -> SchedulerExit:
    """Run the daily editions until ``stop`` is requested.

    :param standby: when another scheduler holds the lock, wait and take over when it
        stops or dies; otherwise return at once with a sentence saying so.
    :raises StoreError: the database cannot be reached at start.
    """
    notifier = notifier or Notifier()
    started = datetime.now(UTC)  # watching from here (a standby watches too)
    lock = LeaseLock(store, SCHEDULER_LEASE, settings.scheduler)
    heartbeat = settings.scheduler.heartbeat.total_seconds()
    tick = min(heartbeat, notifier.watchdog_interval or heartbeat)
    busy: Lease | bool | None = lock.acquire()
    if busy is not None:
        assert not isinstance(busy, bool)
        if not standby:
            return SchedulerExit("busy", f"Another scheduler is running for this database "
                                 f"({describe_lease(busy)}), so this one exits; start it "
                                 "with --standby to wait and take over.")
        log.info("standby: the scheduler lock is %s; taking over when it is free",
                 describe_lease(busy))
        notifier.ready(f"standby ({describe_lease(busy)})")
        busy = _wait_for_lock(lock, stop, notifier, tick, heartbeat)
        if busy is not None:
            return SchedulerExit("standby", f"Standby scheduler {lock.holder} stopped on "
                                 f"{stop.reason} without taking over.")
        log.info("took over the scheduler lock as %s", lock.holder)

    liveness = Liveness(stale_after=max(3 * tick, 1.0))
    scheduler = _make(settings, store, lock, stop, started, liveness, tick)
    scheduler.start()
    log.info("scheduler %s started: %s", lock.holder,
             next_runs_text(settings, datetime.now(UTC)))
    notifier.ready(f"scheduling {len(settings.lists)} list(s) as {lock.holder}")
    active = True
    next_beat = time.monotonic() + heartbeat
    while not stop.wait(tick):
        if not liveness.check():  # hung: let the watchdog and the lease see it
            continue
        notifier.watchdog()
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + heartbeat
        if active:
            if lock.renew():
                continue
            _pause_editions(scheduler, paused=True)
            active = False
            log.warning("this scheduler lost the lock (%s); no edition fires here until it "
                        "holds the lock again", _holder_now(store))
            notifier.status("lost the scheduler lock; paused")
        elif _try_acquire(lock) is None:
            _pause_editions(scheduler, paused=False)
            active = True
            log.info("this scheduler holds the lock again; firing resumes")
            notifier.status(f"scheduling {len(settings.lists)} list(s) as {lock.holder}")
    notifier.stopping(f"stopping ({stop.reason})")
    scheduler.shutdown(wait=True)  # jobs under way see the stop and end cleanly
    lock.release()
    return SchedulerExit("stopped", f"Scheduler {lock.holder} stopped on {stop.reason}: "
                         "running jobs finished, their claims released, the lock freed.")


def _pause_editions(scheduler: BaseScheduler, *, paused: bool) -> None:
    """Pause (or resume) every job but the liveness one, which shows the loop still runs."""
    from digest.schedule import LIVENESS_JOB

    for job in scheduler.get_jobs():
        if job.id != LIVENESS_JOB:
            if paused:
                job.pause()
            else:
                job.resume()


def _make(settings: Settings, store: Store, lock: LeaseLock, stop: StopRequest,
          started: datetime, liveness: Liveness, tick: float) -> BaseScheduler:
    from digest.schedule import make_scheduler

    def job(name: str) -> None:
        if stop.requested:
            return
        if not lock.valid:
            log.warning("not running %s: this scheduler does not hold the lock", name)
            return
        run_scheduled(settings, name, store=store, started_at=started, stop=stop)

    def open_pass() -> None:
        if lock.valid and not stop.requested:
            run_open_deliveries(settings, store=store, stop=stop)

    return make_scheduler(settings.lists.values(), job, deliver_open=open_pass,
                          blocking=False, now=datetime.now(UTC), alive=liveness.ran,
                          alive_every=tick)


def _try_acquire(lock: LeaseLock) -> Lease | None | bool:
    """``lock.acquire()``, with an unreachable database counting as busy (False)."""
    try:
        return lock.acquire()
    except StoreError as exc:
        log.debug("scheduler lock not taken: %s", exc)
        return False


def _wait_for_lock(lock: LeaseLock, stop: StopRequest, notifier: Notifier, tick: float,
                   heartbeat: float) -> Lease | bool | None:
    busy: Lease | bool | None = False
    next_try = time.monotonic() + heartbeat
    while not stop.wait(tick):
        notifier.watchdog()
        if time.monotonic() < next_try:
            continue
        next_try = time.monotonic() + heartbeat
        busy = _try_acquire(lock)
        if busy is None:
            return None
    return busy if busy is not None else False


def _holder_now(store: Store) -> str:
    try:
        lease = store.get_lease(SCHEDULER_LEASE)
    except StoreError:
        return "the database is unreachable"
    return describe_lease(lease) if lease is not None else "no holder"
