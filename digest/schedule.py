"""The scheduler: one APScheduler 3 cron job per list, at its send time in its own timezone.

Jobs only call the functions they are given (the pipeline's send and its pass over open
editions); what makes an edition go out once is the store (an edition already published for
that date is not sent again), so a restart, a misfire caught up late, or a second scheduler
cannot double a send. A scheduler started within :data:`MISFIRE_GRACE` after a list's send
time runs that list at once (the pipeline skips it if today's edition already went out), and
a periodic pass finishes deliveries whose retries were still waiting when a send returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.config import ListSettings

__all__ = ["MISFIRE_GRACE", "PlannedJob", "make_scheduler", "missed_today", "planned_jobs"]

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


def missed_today(lst: ListSettings, now: datetime) -> bool:
    """True when the list's send time today passed less than MISFIRE_GRACE ago."""
    local = now.astimezone(lst.timezone)
    if local.strftime("%a").lower() not in lst.send_days:
        return False
    due = datetime.combine(local.date(), lst.send_time, tzinfo=lst.timezone)
    late = now.astimezone(UTC) - due.astimezone(UTC)  # real time, right across DST changes
    return timedelta(0) <= late <= timedelta(seconds=MISFIRE_GRACE)


def make_scheduler(lists: Iterable[ListSettings], run: Callable[[str], object], *,
                   deliver_open: Callable[[], object] | None = None,
                   deliver_every: float = 300.0, now: datetime | None = None,
                   blocking: bool = True) -> BaseScheduler:
    """A scheduler with one job per list calling ``run(list_name)`` at the list's send time.

    Jobs coalesce (a backlog of missed runs becomes one) and never overlap. A list whose
    send time passed within :data:`MISFIRE_GRACE` before ``now`` also runs once at start.
    ``deliver_open`` (the pipeline's pass over editions with rows still queued) runs every
    ``deliver_every`` seconds, so retries finish even when nobody runs ``send`` again.
    """
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(job_defaults={"coalesce": True, "max_instances": 1,
                                  "misfire_grace_time": MISFIRE_GRACE})
    started = now or datetime.now(UTC)
    for lst in lists:
        job = _logged(run, lst.name)
        scheduler.add_job(job, _trigger(lst), id=f"edition:{lst.name}",
                          name=f"{lst.name} daily edition", replace_existing=True)
        if missed_today(lst, started):
            log.info("catching up list=%s (its send time passed before the scheduler started)",
                     lst.name)
            scheduler.add_job(job, DateTrigger(run_date=started), id=f"catch-up:{lst.name}",
                              name=f"{lst.name} edition, caught up")
    if deliver_open is not None:
        scheduler.add_job(_logged(lambda _: deliver_open(), "open editions"),
                          IntervalTrigger(seconds=deliver_every), id="deliver-open",
                          name="finish open deliveries")
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
        log.debug("job started: %s", list_name)
        try:
            run(list_name)
        except Exception as exc:  # a failed edition must not stop the other lists' jobs
            log.error("job failed: %s: %s: %s", list_name, type(exc).__name__, exc)
        else:
            log.debug("job finished: %s", list_name)

    return job
