"""The scheduler: one APScheduler 3 cron job per list, at its send time in its own timezone.

Jobs only call the function they are given (the pipeline's send); what makes an edition go
out once is the store (an edition already published for that date is not sent again), so a
restart, a misfire caught up late, or a second scheduler cannot double a send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import ListSettings

__all__ = ["PlannedJob", "make_scheduler", "planned_jobs"]

log = logging.getLogger("digest.schedule")

#: A daily edition that could not start on time (machine asleep, restart) still goes out if
#: the scheduler is back within this many seconds; later than that, it waits for tomorrow.
MISFIRE_GRACE = 3 * 3600


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A list's daily job and when it runs next."""

    list_name: str
    trigger: str
    next_run: datetime | None


def _trigger(lst: ListSettings) -> CronTrigger:
    return CronTrigger(day_of_week=",".join(lst.send_days), hour=lst.send_time.hour, minute=lst.send_time.minute,
                       second=lst.send_time.second, timezone=lst.timezone)


def make_scheduler(lists: Iterable[ListSettings], run: Callable[[str], object], *,
                   blocking: bool = True) -> BaseScheduler:
    """A scheduler with one job per list calling ``run(list_name)`` at the list's send time.

    Jobs coalesce (a backlog of missed runs becomes one) and never overlap.
    """
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(job_defaults={"coalesce": True, "max_instances": 1,
                                  "misfire_grace_time": MISFIRE_GRACE})
    for lst in lists:
        scheduler.add_job(_logged(run, lst.name), _trigger(lst), id=f"edition:{lst.name}",
                          name=f"{lst.name} daily edition", replace_existing=True)
    return scheduler


def planned_jobs(lists: Iterable[ListSettings], now: datetime) -> list[PlannedJob]:
    """Each list's job and its next run after ``now`` (for ``schedule --list-jobs``)."""
    jobs = []
    for lst in lists:
        trigger = _trigger(lst)
        days = "daily" if len(lst.send_days) == 7 else "on " + ", ".join(lst.send_days)
        jobs.append(PlannedJob(lst.name, f"{days} at {lst.send_time:%H:%M} {lst.timezone}",
                               trigger.get_next_fire_time(None, now)))
    return jobs


def _logged(run: Callable[[str], object], list_name: str) -> Callable[[], None]:
    def job() -> None:
        log.info("edition job started list=%s", list_name)
        try:
            run(list_name)
        except Exception as exc:  # a failed edition must not stop the other lists' jobs
            log.error("edition job failed list=%s error=%s", list_name, exc)
        else:
            log.info("edition job finished list=%s", list_name)

    return job
