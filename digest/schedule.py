"""The scheduler: one APScheduler 3 job per list, firing on the list's slots.

A list's slots (:mod:`digest.slots`: when the review opens, the send time, the send window's
end) are read from the wall clock of its timezone, so every list fires exactly once per
scheduled local day across DST changes. APScheduler 3's ``CronTrigger`` does not (it skips
a day after the spring change for times between 00:00 and 00:59, agronholm/apscheduler#606),
so :class:`EditionTrigger` computes fire times from the slots itself.

A list's job fires when its slot opens, at the send time, then every ``retry`` (a minute)
until the slot closes, and once at the close: what it does each time is decided from the
store (``digest.pipeline.run_scheduled``), so a failure (a lock held by an editor's command,
the database unreachable) delays the edition and the next minute tries again, a restart
catches up by the same rule, and a repeated firing never sends twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.config import ListSettings
from digest.slots import RETRY, SendSchedule, Slot, local_instant

__all__ = [
    "LIVENESS_JOB",
    "RETRY",
    "EditionTrigger",
    "PlannedJob",
    "SendSchedule",
    "Slot",
    "local_instant",
    "make_scheduler",
    "planned_jobs",
]

log = logging.getLogger("digest.schedule")


class EditionTrigger(BaseTrigger):
    """APScheduler trigger for a list's slots (see :meth:`SendSchedule.next_fire`), computed
    from the wall clock with ``zoneinfo``, so DST changes neither skip nor double a day.

    Fire times are returned in UTC and every step is done in UTC. Arithmetic on an aware
    local datetime is wall-clock arithmetic that drops PEP 495's ``fold``: one microsecond
    after 02:00 (second occurrence) in Europe/Paris on the autumn change is 02:00 of the
    *first* occurrence, an hour earlier, so the retries of a slot in the repeated hour would
    repeat forever. Comparisons of two datetimes with the same ``tzinfo`` ignore ``fold``
    too, which is why the scheduler itself runs in UTC (:func:`make_scheduler`).
    """

    __slots__ = ("retry", "schedule")

    def __init__(self, schedule: SendSchedule, retry: timedelta = RETRY) -> None:
        self.schedule = schedule
        self.retry = retry

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        """The first fire time strictly after ``previous_fire_time`` (or at or after ``now``
        for the first), in UTC; both arguments may be in any zone."""
        start = (previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
                 if previous_fire_time is not None else now.astimezone(UTC))
        fire = self.schedule.next_fire(start, self.retry)
        return fire.astimezone(UTC) if fire is not None else None

    def __str__(self) -> str:
        return f"edition slots {self.schedule.describe()}"

    def __repr__(self) -> str:
        return f"<EditionTrigger ({self.schedule.describe()})>"


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A list's job: its schedule in words, its next send time and (with review) when the
    next draft is built, in the list's timezone."""

    list_name: str
    trigger: str
    next_run: datetime | None
    review_at: datetime | None = None


def planned_jobs(lists: Iterable[ListSettings], now: datetime) -> list[PlannedJob]:
    """Each list's job and its next send time at or after ``now`` (``schedule --list-jobs``;
    the same computation as the running scheduler's)."""
    jobs = []
    for lst in lists:
        schedule = SendSchedule(lst)
        nxt = schedule.next_due(now)
        review = None
        if schedule.lead and nxt is not None:
            review = schedule.slot(nxt.date()).opens.astimezone(lst.timezone)
        jobs.append(PlannedJob(lst.name, schedule.describe(), nxt, review))
    return jobs


#: The id of the job that proves the scheduler's loop dispatches (``make_scheduler(alive=)``).
LIVENESS_JOB = "liveness"


def make_scheduler(lists: Iterable[ListSettings], run: Callable[[str], object], *,
                   deliver_open: Callable[[], object] | None = None,
                   deliver_every: float = 300.0, now: datetime | None = None,
                   blocking: bool = True, retry: timedelta = RETRY,
                   alive: Callable[[], object] | None = None,
                   alive_every: float = 5.0) -> BaseScheduler:
    """A scheduler with one job per list calling ``run(list_name)`` at the list's fire
    times (:class:`EditionTrigger`), and once at start (catch-up: ``run`` decides from the
    store whether anything is due). A run of a list never overlaps another of the same
    list (a firing that finds one running returns at once, silently).

    ``deliver_open`` (the pipeline's pass over editions with rows still queued) runs at
    start and every ``deliver_every`` seconds, so retries finish even when nobody runs
    ``send`` again.

    ``alive`` runs every ``alive_every`` seconds (job :data:`LIVENESS_JOB`) on an executor of
    its own, so busy edition jobs never delay it: it runs only while the scheduler's loop
    dispatches jobs, which is what the service manager's watchdog is told.
    """
    cls = BlockingScheduler if blocking else BackgroundScheduler
    # A firing late by up to a minute still runs (coalesced); the next retry covers the rest.
    # UTC: APScheduler's "now" and the trigger's fire times compare without any fold.
    scheduler = cls(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 2,
                                                "misfire_grace_time": 60})
    started = now or datetime.now(UTC)
    for lst in lists:
        scheduler.add_job(_exclusive(run, lst.name), EditionTrigger(SendSchedule(lst), retry),
                          id=f"edition:{lst.name}", name=f"{lst.name} edition",
                          replace_existing=True, next_run_time=started)
    if deliver_open is not None:
        scheduler.add_job(_exclusive(lambda _: deliver_open(), "open editions"),
                          IntervalTrigger(seconds=deliver_every), id="deliver-open",
                          name="finish open deliveries", next_run_time=started)
    if alive is not None:
        scheduler.add_executor(ThreadPoolExecutor(1), alias=LIVENESS_JOB)
        scheduler.add_job(alive, IntervalTrigger(seconds=alive_every), id=LIVENESS_JOB,
                          name="scheduler loop alive", executor=LIVENESS_JOB,
                          next_run_time=started, misfire_grace_time=None)
    return scheduler


def _exclusive(run: Callable[[str], object], name: str) -> Callable[[], None]:
    """``run(name)``, skipped when a run of it is still going, never raising."""
    busy = threading.Lock()

    def job() -> None:
        if not busy.acquire(blocking=False):
            return
        try:
            run(name)
        except Exception as exc:  # noqa: BLE001 - one list's failure must not stop the others
            log.error("job failed: %s: %s: %s", name, type(exc).__name__, exc)
        finally:
            busy.release()

    return job
