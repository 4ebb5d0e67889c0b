"""The scheduler's triggers: one cron job per list in its timezone, runs on time, catches up.

One scheduler per database (its lock, standby, clean stop) is tested with real processes in
tests/test_scheduler_process.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from test_edition import make_list

from digest.errors import DigestError
from digest.schedule import MISFIRE_GRACE, make_scheduler, missed_today, planned_jobs


def test_next_runs_follow_each_lists_timezone_and_days() -> None:
    london = make_list(name="daily", send_time=time(7, 0))
    weekend = make_list(name="weekend", send_time=time(8, 30),
                        timezone=ZoneInfo("America/New_York"), send_days=("sat", "sun"))
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
    jobs = {j.list_name: j for j in planned_jobs([london, weekend], now)}
    assert jobs["daily"].next_run == datetime(2026, 11, 28, 7, 0, tzinfo=ZoneInfo(
        "Europe/London"))
    assert jobs["weekend"].next_run == datetime(2026, 11, 28, 8, 30, tzinfo=ZoneInfo(
        "America/New_York"))
    assert jobs["weekend"].trigger == "on sat, sun at 08:30 America/New_York"
    # Across the spring DST change the wall-clock time stays 07:00.
    spring = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    nxt = planned_jobs([london], spring)[0].next_run
    assert (nxt.hour, nxt.utcoffset()) == (7, timedelta(hours=1))


def test_a_due_job_runs_once_and_a_failing_list_does_not_stop_others() -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    lists = [make_list(name=name, timezone=ZoneInfo("UTC"), send_time=soon.time())
             for name in ("good", "bad")]
    ran: list[str] = []
    done = threading.Event()

    def run(name: str) -> None:
        ran.append(name)
        if len(ran) == 2:
            done.set()
        if name == "bad":
            raise DigestError("the bad list's sources are down")

    scheduler = make_scheduler(lists, run, blocking=False)
    scheduler.start()
    try:
        assert done.wait(10), "the jobs did not run"
    finally:
        scheduler.shutdown(wait=True)
    assert sorted(ran) == ["bad", "good"]
    job_defaults = scheduler._job_defaults  # noqa: SLF001 - the policy is the point here
    assert job_defaults["coalesce"] is True and job_defaults["max_instances"] == 1


def test_a_scheduler_started_after_send_time_catches_up_once() -> None:
    lst = make_list(name="daily", timezone=ZoneInfo("Europe/London"), send_time=time(7, 0))
    late = datetime(2026, 11, 28, 7, 40, tzinfo=ZoneInfo("Europe/London"))
    assert missed_today(lst, late)
    assert not missed_today(lst, late + timedelta(hours=MISFIRE_GRACE // 3600))
    assert not missed_today(lst, late.replace(hour=6))
    weekend_only = make_list(name="weekend", send_days=("sat", "sun"))
    assert not missed_today(weekend_only, late - timedelta(days=1, minutes=30))  # a Friday

    ran: list[str] = []
    done = threading.Event()

    def run(name: str) -> None:
        ran.append(name)
        done.set()

    now = datetime.now(UTC)
    due = max(now - timedelta(minutes=10), now.replace(hour=0, minute=0, second=0,
                                                       microsecond=0))
    started_late = make_list(name="daily", timezone=ZoneInfo("UTC"), send_time=due.time())
    scheduler = make_scheduler([started_late], run, now=now, blocking=False)
    scheduler.start()
    try:
        assert done.wait(10), "the missed edition was not caught up"
        for _ in range(200):  # a one-off job is removed right after it runs; let that happen
            if scheduler.get_job("catch-up:daily") is None:
                break
            threading.Event().wait(0.01)
    finally:
        scheduler.shutdown(wait=True)
    assert ran == ["daily"]
    assert scheduler.get_job("catch-up:daily") is None


def test_open_deliveries_are_finished_periodically() -> None:
    passes = threading.Event()
    scheduler = make_scheduler([], lambda name: None, deliver_open=passes.set,
                               deliver_every=0.5, blocking=False)
    scheduler.start()
    try:
        assert passes.wait(5), "the pass over open editions never ran"
    finally:
        scheduler.shutdown(wait=True)
