"""The scheduler: one job per list firing on its slots (DST-proof).

One scheduler per database (its lock, standby, clean stop) is tested with real processes in
tests/test_scheduler_process.py."""

from __future__ import annotations

import threading
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from test_cli import make_project
from test_edition import make_list

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


# (zone, send time, a local day of a DST change): the time is inside the repeated hour
# (autumn), inside the skipped hour (spring), just after midnight, or in the morning.
# Australia/Lord_Howe moves its clocks by 30 minutes (02:00 -> 01:30 in April, 02:00 ->
# 02:30 in October).
TRANSITIONS = [
    ("Europe/Paris", time(2, 30), date(2026, 10, 25)),  # repeated 02:00-03:00
    ("Europe/Paris", time(2, 30), date(2026, 3, 29)),  # skipped 02:00-03:00
    ("Europe/Paris", time(0, 30), date(2026, 10, 25)),
    ("Europe/Paris", time(0, 30), date(2026, 3, 29)),
    ("America/New_York", time(1, 30), date(2026, 11, 1)),  # repeated 01:00-02:00
    ("America/New_York", time(2, 30), date(2026, 3, 8)),  # skipped 02:00-03:00
    ("America/New_York", time(0, 30), date(2026, 11, 1)),
    ("America/New_York", time(7, 0), date(2026, 3, 8)),
    ("Australia/Lord_Howe", time(1, 45), date(2026, 4, 5)),  # repeated 01:30-02:00
    ("Australia/Lord_Howe", time(2, 15), date(2026, 10, 4)),  # skipped 02:00-02:30
    ("Australia/Lord_Howe", time(0, 30), date(2026, 4, 5)),
    ("Australia/Lord_Howe", time(0, 30), date(2026, 10, 4)),
]


@pytest.mark.parametrize(("zone", "at", "change"), TRANSITIONS,
                         ids=[f"{z}-{a:%H%M}-{d}" for z, a, d in TRANSITIONS])
def test_retries_through_a_dst_change_never_repeat_or_skip(zone: str, at: time,
                                                            change: date) -> None:
    """Every minute of a three-hour send window across a DST change, driven as APScheduler
    drives the trigger (the previous fire time handed back, as returned or as a local time
    with its ``fold``, "now" a few ms after it): each
    fire time comes once, strictly increasing, exactly the minutes of each day's window.
    The loop is bounded, so a trigger that goes back in time fails instead of hanging."""
    tz = ZoneInfo(zone)
    lst = make_list(timezone=tz, send_time=at, send_window=timedelta(hours=3))
    trigger = EditionTrigger(SendSchedule(lst))
    days = [change + timedelta(days=i) for i in (-1, 0, 1)]
    expected = [_first_at_or_after(day, at, tz) + timedelta(minutes=k)
                for day in days for k in range(181)]  # the send time, 179 retries, the close
    assert len({e.astimezone(tz).date() for e in expected[::181]}) == 3
    assert expected[181::181][0] - expected[180] > timedelta(hours=12)  # windows apart
    previous = None
    now = datetime.combine(days[0], time(12), tz) - timedelta(days=1)
    fires: list[datetime] = []
    for i in range(len(expected)):  # bounded: never more calls than fire times expected
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None and fire.utcoffset() == timedelta(0)  # UTC, no fold
        if fires:
            assert fire.astimezone(UTC) > fires[-1].astimezone(UTC), (fires[-3:], fire)
        fires.append(fire)
        previous = fire if i % 2 else fire.astimezone(tz)
        now = fire + timedelta(milliseconds=4)
    assert fires == expected
    assert len(set(fires)) == len(fires)


@pytest.mark.parametrize(("zone", "at"), sorted({(z, a) for z, a, _ in TRANSITIONS}),
                         ids=[f"{z}-{a:%H%M}" for z, a in sorted({(z, a) for z, a, _ in
                                                                  TRANSITIONS})])
def test_four_hundred_consecutive_send_times_one_per_local_day(zone: str, at: time) -> None:
    """400 consecutive send times from 2026-01-01 (both 2026 DST changes, and Lord Howe's
    half-hour ones): strictly increasing, one per local date with none skipped, each the
    first instant at or after the send time on that day's wall clock."""
    tz = ZoneInfo(zone)
    window = timedelta(hours=3)
    lst = make_list(timezone=tz, send_time=at, send_window=window)
    trigger = EditionTrigger(SendSchedule(lst), retry=window)  # fires: send time, close
    previous, now = None, datetime(2026, 1, 1, tzinfo=tz).astimezone(UTC)
    due: list[datetime] = []
    for i in range(800):  # bounded
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None and (previous is None or fire > previous)
        if i % 2 == 0:
            due.append(fire)
        else:
            assert fire - due[-1] == window
        previous = now = fire
    assert len(due) == 400
    days = [d.astimezone(tz).date() for d in due]
    assert days == [date(2026, 1, 1) + timedelta(days=i) for i in range(400)]
    assert all(a < b for a, b in zip(due, due[1:], strict=False))
    for day, fire in zip(days, due, strict=True):
        assert fire == _first_at_or_after(day, at, tz), (zone, at, day)


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
