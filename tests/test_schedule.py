"""The scheduler: one job per list firing on its slots (DST-proof), one scheduler only."""

from __future__ import annotations

import dataclasses
import os
import threading
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from test_cli import make_project
from test_edition import make_list

from digest import pipeline
from digest.cli import main
from digest.config import load_settings
from digest.errors import DigestError
from digest.schedule import (
    EditionTrigger,
    SendSchedule,
    local_instant,
    make_scheduler,
    planned_jobs,
)

ZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
         "Australia/Sydney", "Asia/Seoul")
TIMES = (time(0, 30), time(1, 30), time(2, 30), time(7, 0))


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
    assert jobs["weekend"].trigger == ("on sat, sun at 08:30 America/New_York, send window "
                                       "3h")
    assert jobs["daily"].review_at is None
    # Across the spring DST change the wall-clock time stays 07:00.
    spring = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    nxt = planned_jobs([london], spring)[0].next_run
    assert (nxt.hour, nxt.utcoffset()) == (7, timedelta(hours=1))
    reviewed = make_list(review="required", review_lead=timedelta(hours=2),
                         review_to=("desk@example.org",))
    job = planned_jobs([reviewed], now)[0]
    assert job.review_at == datetime(2026, 11, 28, 5, 0, tzinfo=ZoneInfo("Europe/London"))
    assert "review from 2h before" in job.trigger


def test_nonexistent_and_repeated_times_resolve_to_one_instant() -> None:
    def local(day: date, at: time, zone: str) -> datetime:
        return local_instant(day, at, ZoneInfo(zone)).astimezone(ZoneInfo(zone))

    # Spring forward: the first instant after the gap (the moment of the change).
    assert local(date(2026, 3, 29), time(1, 30), "Europe/London").isoformat() == \
        "2026-03-29T02:00:00+01:00"
    assert local(date(2026, 3, 8), time(2, 30), "America/New_York").isoformat() == \
        "2026-03-08T03:00:00-04:00"
    assert local(date(2026, 10, 4), time(2, 30), "Australia/Sydney").isoformat() == \
        "2026-10-04T03:00:00+11:00"
    # Fall back: the first of the two occurrences.
    assert local(date(2026, 10, 25), time(1, 30), "Europe/London").isoformat() == \
        "2026-10-25T01:30:00+01:00"
    assert local(date(2027, 4, 4), time(2, 30), "Australia/Sydney").isoformat() == \
        "2027-04-04T02:30:00+11:00"
    assert local(date(2026, 11, 1), time(1, 30), "America/Los_Angeles").isoformat() == \
        "2026-11-01T01:30:00-07:00"


def _first_at_or_after(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Oracle, by brute force: the first whole minute of ``day`` whose wall time is at or
    after ``at`` (that is what "send at 01:30" means on any day, DST or not)."""
    guess = datetime.combine(day, at).replace(tzinfo=UTC) - \
        datetime.combine(day, time(12)).replace(tzinfo=tz).utcoffset()  # type: ignore[operator]
    for minute in range(-240, 241):
        moment = guess + timedelta(minutes=minute)
        local = moment.astimezone(tz)
        if local.date() == day and local.time() >= at:
            return moment
    raise AssertionError("no instant found")


@pytest.mark.parametrize("zone", ZONES)
def test_every_list_fires_once_per_local_day_across_dst_changes(zone: str) -> None:
    """The trigger driven as APScheduler drives it (next fire from the previous one), with
    an injected clock over 2026 and 2027: each send time fires on every local day once."""
    tz = ZoneInfo(zone)
    start, end = datetime(2026, 1, 1, tzinfo=tz), datetime(2028, 1, 1, tzinfo=tz)
    changes = set()
    day = start.date()
    while day < end.date():
        noon = datetime.combine(day, time(12), tz).utcoffset()
        if noon != datetime.combine(day - timedelta(days=1), time(12), tz).utcoffset():
            changes |= {day - timedelta(days=1), day, day + timedelta(days=1)}
        day += timedelta(days=1)
    assert len(changes) == (0 if zone == "Asia/Seoul" else 12)
    for at in TIMES:
        lst = make_list(timezone=tz, send_time=at, send_window=timedelta(minutes=1))
        trigger = EditionTrigger(SendSchedule(lst))
        fires: list[datetime] = []
        previous = None
        now = start.astimezone(UTC)
        while (fire := trigger.get_next_fire_time(previous, now)) < end:
            assert previous is None or fire > previous
            fires.append(fire)
            previous = now = fire  # the job ran on time
        due = fires[0::2]  # each slot: the send time, then the window's end a minute later
        assert [b - a for a, b in zip(due, fires[1::2], strict=True)] == \
            [timedelta(minutes=1)] * len(due)
        days = [f.astimezone(tz).date() for f in due]
        assert days == [start.date() + timedelta(days=i) for i in range(730)], (zone, at)
        for fire in due:
            local = fire.astimezone(tz)
            if local.date() in changes:  # compared in UTC (PEP 495: a time in the fold
                # never equals one in another zone)
                assert fire.astimezone(UTC) == _first_at_or_after(local.date(), at, tz), \
                    (zone, at, local)
            else:
                assert local.time() == at, (zone, at, local)


def test_a_slot_fires_at_review_send_time_every_minute_and_at_its_close() -> None:
    lst = make_list(send_time=time(0, 30), review="required", review_lead=timedelta(hours=2),
                    review_to=("desk@example.org",), send_window=timedelta(hours=3))
    schedule = SendSchedule(lst)
    trigger = EditionTrigger(schedule)
    london = ZoneInfo("Europe/London")
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    fires, previous = [], None
    while len(fires) < 301:  # 22:30 to 03:30, every minute
        fire = trigger.get_next_fire_time(previous, now)
        fires.append(fire.astimezone(london))
        previous = now = fire
    # The review opens the evening before; the edition is the next day's.
    assert fires[0] == datetime(2026, 11, 27, 22, 30, tzinfo=london)
    assert fires[1] == datetime(2026, 11, 27, 22, 31, tzinfo=london)  # retries while open
    assert datetime(2026, 11, 28, 0, 30, tzinfo=london) in fires
    assert fires[-2] == datetime(2026, 11, 28, 3, 29, tzinfo=london)
    assert fires[-1] == datetime(2026, 11, 28, 3, 30, tzinfo=london)  # the close
    assert trigger.get_next_fire_time(fires[-1], fires[-1]) == datetime(
        2026, 11, 28, 22, 30, tzinfo=london)
    # Which slot is open, or closed last, around midnight.
    evening = datetime(2026, 11, 27, 23, 0, tzinfo=london)
    assert schedule.slot_at(evening).day == date(2026, 11, 28)
    late = make_list(send_time=time(23, 30))
    after_midnight = datetime(2026, 11, 28, 0, 10, tzinfo=london)
    assert SendSchedule(late).slot_at(after_midnight).day == date(2026, 11, 27)
    assert SendSchedule(late).last_closed(after_midnight).day == date(2026, 11, 26)
    assert SendSchedule(late).slot_at(after_midnight + timedelta(hours=3)) is None


def test_a_real_scheduler_fires_on_time_and_agrees_with_list_jobs() -> None:
    """One real APScheduler loop of a few seconds: every list runs at start (catch-up),
    at its send time (as planned_jobs says), every retry while its window is open and at
    its close; a failing list does not stop the others."""
    start = datetime.now(UTC)
    due = (start + timedelta(seconds=2)).replace(microsecond=0)
    lists = [make_list(name=name, timezone=ZoneInfo("UTC"), send_time=due.time(),
                       send_window=timedelta(seconds=3)) for name in ("good", "bad")]
    planned = {j.list_name: j.next_run for j in planned_jobs(lists, start)}
    assert planned == {"good": due, "bad": due}
    ran: list[tuple[str, datetime]] = []
    started = threading.Event()

    def run(name: str) -> None:
        ran.append((name, datetime.now(UTC)))
        started.set()
        if name == "bad":
            raise DigestError("the bad list's sources are down")

    scheduler = make_scheduler(lists, run, blocking=False, now=start,
                               retry=timedelta(seconds=1))
    scheduler.start()
    try:
        assert started.wait(5)
        clock.sleep(0.3)
        for name in ("good", "bad"):  # the job's next run is the one --list-jobs shows
            assert scheduler.get_job(f"edition:{name}").next_run_time == due
        clock.sleep(max(0.0, (due + timedelta(seconds=3.6) - datetime.now(UTC))
                        .total_seconds()))
    finally:
        scheduler.shutdown(wait=True)
    for name in ("good", "bad"):
        times = [t for n, t in ran if n == name]
        assert times[0] - start < timedelta(seconds=1)  # caught up at start
        fired = times[1:]
        assert len(fired) == 4, fired  # send time, two retries, the close
        for expected, actual in zip((due + timedelta(seconds=i) for i in range(4)), fired,
                                    strict=True):
            assert timedelta(0) <= actual - expected < timedelta(milliseconds=800)


def test_list_jobs_prints_what_the_scheduler_computes(tmp_path: Path, repo: Path) -> None:
    project = make_project(tmp_path, repo)
    before = datetime.now(UTC)
    result = CliRunner().invoke(main, ["schedule", "--config", str(project), "--list-jobs"])
    assert result.exit_code == 0, result.output
    settings = load_settings(project)
    for job in planned_jobs(settings.lists.values(), before):
        assert f"{job.list_name}: {job.trigger}; next {job.next_run.isoformat()}" in \
            result.output


def test_only_one_scheduler_per_machine_with_sqlite(repo: Path, tmp_path: Path) -> None:
    settings = load_settings(repo / "digest.toml", env={"DIGEST_WORK_DIR": str(tmp_path)})
    with pipeline.scheduler_lock(settings):
        with pytest.raises(DigestError, match="Another scheduler"):
            with pipeline.scheduler_lock(settings):
                pass
    with pipeline.scheduler_lock(settings):  # released
        pass


@pytest.mark.postgres
def test_only_one_scheduler_per_postgresql_database(repo: Path, tmp_path: Path) -> None:
    url = os.environ.get("DIGEST_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("DIGEST_TEST_DATABASE_URL must be set in CI")
        pytest.skip("DIGEST_TEST_DATABASE_URL is not set")
    settings = load_settings(repo / "digest.toml", env={"DIGEST_WORK_DIR": str(tmp_path),
                                                        "DIGEST_DATABASE_URL": url})
    settings = dataclasses.replace(settings, database_url=url)
    with pipeline.scheduler_lock(settings):
        with pytest.raises(DigestError, match="scheduler lock"):
            with pipeline.scheduler_lock(settings):
                pass
    with pipeline.scheduler_lock(settings):
        pass


def test_open_deliveries_are_finished_periodically() -> None:
    passes: list[float] = []
    twice = threading.Event()

    def deliver_open() -> None:
        passes.append(clock.monotonic())
        if len(passes) == 2:
            twice.set()

    scheduler = make_scheduler([], lambda name: None, deliver_open=deliver_open,
                               deliver_every=0.5, blocking=False)
    scheduler.start()
    try:
        assert twice.wait(5), "the pass over open editions did not run at start and again"
    finally:
        scheduler.shutdown(wait=True)
