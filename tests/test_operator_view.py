"""What an operator sees without reading code: `status`, `/healthz`, the log format and its
edition lines, sd_notify datagrams, and the locks behind them (send lock across working
folders, a lost lease)."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from service_env import ISO_LINE, ListSpec, write_project

from digest import pipeline
from digest.cli import main
from digest.config import SchedulerSettings, load_settings
from digest.errors import LockHeldError
from digest.logs import configure_logging, delivery_counts
from digest.models import Edition, Story
from digest.store import Store, open_store
from digest.store.migrate import head_revision
from digest.systemd import Notifier
from digest.web import create_app

pytest_plugins = ["store_backends"]

FAST = SchedulerSettings(heartbeat=timedelta(seconds=0.1), lease=timedelta(seconds=0.4))


def _publish(store: Store, emails: list[str], day: date) -> int:
    for addr in emails:
        store.add_subscriber("daily", addr)
    record = store.record_edition(Edition(
        list_name="daily", date=day, subject="S", preheader="", sections=(),
        lead=Story(id=f"l{day}", section="Politics", headline="Lead", is_lead=True)))
    store.publish_edition(record.id, message_id_domain="news.example.org",
                          now=datetime.now(UTC))
    return record.id


def test_status_shows_the_heartbeat_the_next_runs_and_what_waits(tmp_path: Path) -> None:
    config = write_project(tmp_path, relay=None, lists={
        "daily": ListSpec(send_time="07:00", timezone="Europe/Paris"),
        "weekend": ListSpec(send_time="08:30", timezone="America/New_York")})
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    with open_store(url) as store:
        edition = _publish(store, ["a@example.org", "b@example.org", "c@example.org"],
                           date(2026, 11, 27))
        store.claim_deliveries(edition, worker_id="mail1:42:abcdef", limit=1,
                               now=datetime.now(UTC), lease=timedelta(minutes=5))
        assert store.acquire_lease("scheduler", "mail1:7:a1b2c3", ttl=timedelta(minutes=1))[0]
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--config", str(config)],
                           env={"DIGEST_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("scheduler: alive (mail1:7:a1b2c3, last heartbeat ")
    paris = next(ln for ln in lines if ln.startswith("next run: daily "))
    local, utc = paris.split(" Europe/Paris (")
    assert local.endswith("T07:00:00+01:00") and utc.endswith("T06:00:00Z)")  # winter time
    assert any(ln.startswith("next run: weekend ") and "America/New_York" in ln
               for ln in lines)
    at = lines.index(f"edition not finished: daily 2026-11-27 (id {edition}): sent=0 "
                     "failed=0 waiting=3 skipped=0 [queued=2 sending=1]")
    details = lines[at + 1:]
    assert details[0].startswith("  next retry due 20") and details[0].endswith("Z")
    assert details[1].startswith("  oldest claim ") and details[1].endswith(
        " by mail1:42:abcdef")
    assert len(details) == 2  # no lease ran out, nothing past its window

    only = runner.invoke(main, ["status", "--config", str(config), "--list", "weekend"],
                         env={"DIGEST_DATABASE_URL": url})
    assert only.exit_code == 0
    assert "daily" not in only.stdout and "editions not finished: none" in only.stdout
    wrong = runner.invoke(main, ["status", "--config", str(config), "--list", "nope"],
                          env={"DIGEST_DATABASE_URL": url})
    assert wrong.exit_code == 2 and "There is no list 'nope'" in wrong.stderr
    assert "Traceback" not in wrong.output


def test_status_names_lapsed_claims_and_exits_3_for_rows_past_their_window(
        tmp_path: Path, store: Store, store_url: str) -> None:
    """A worker that died holding claims is named with its rows; rows whose first attempt
    is older than the retry window (nobody ran the pass that ends them) make it exit 3."""
    config = write_project(tmp_path, relay=None, lists={"daily": ListSpec()})
    now = datetime.now(UTC) + timedelta(seconds=1)  # after the publications below
    old = _publish(store, ["a@example.org", "b@example.org", "c@example.org"],
                   date(2026, 11, 20))
    day_ago = now - timedelta(hours=25)  # the default retry window is 24 h
    first, second = store.claim_deliveries(old, worker_id="dead:1:aaaaaa", limit=2,
                                           now=now, lease=timedelta(minutes=5))
    store.mark_deferred(first, error="451", retry_at=now + timedelta(minutes=7), now=now)
    # Both were first tried 25 h ago; `second` stays "sending" under the dead worker, its
    # lease long gone.
    import sqlalchemy as sa

    from digest.store.schema import deliveries
    with store.engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.edition_id == old,
                                                 deliveries.c.first_attempt_at.is_not(None))
                     .values(first_attempt_at=day_ago))
        conn.execute(sa.update(deliveries).where(deliveries.c.id == second.delivery_id)
                     .values(lease_until=day_ago + timedelta(minutes=5),
                             last_attempt_at=day_ago))
    fresh = _publish(store, ["d@example.org"], date(2026, 11, 21))
    store.claim_deliveries(fresh, worker_id="live:2:bbbbbb", limit=1, now=now,
                           lease=timedelta(minutes=5))
    result = CliRunner().invoke(main, ["status", "--config", str(config)],
                                env={"DIGEST_DATABASE_URL": store_url})
    assert result.exit_code == 3, result.output
    lines = result.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if f"(id {old})" in ln)
    assert lines[at].endswith("[queued=2 sending=1]")
    block = lines[at + 1:at + 5]
    assert block[0].startswith("  next retry due 20")  # the never-tried row: due already
    assert block[1].startswith("  oldest claim ") and block[1].endswith(" by dead:1:aaaaaa")
    assert block[2].startswith("  lease expired: dead:1:aaaaaa holds 1 row(s) whose claim "
                               "lease ran out at ")
    assert block[3] == ("  2 row(s) wait past their retry window (24h): no scheduler or "
                        "worker has finished them; start `schedule` or `worker`")
    at = next(i for i, ln in enumerate(lines) if f"(id {fresh})" in ln)
    assert lines[at + 1].startswith("  next retry due ")  # a, b, c and d: three queued
    assert lines[at + 2].endswith(" by live:2:bbbbbb") and len(lines) == at + 3

    # The pass ends them (expired), and status is back to exit 0 for that edition.
    assert store.expire_overdue(old, window=timedelta(hours=24), now=now) == (2, 0)
    again = CliRunner().invoke(main, ["status", "--config", str(config)],
                               env={"DIGEST_DATABASE_URL": store_url})
    assert again.exit_code == 0, again.output
    assert "past their retry window" not in again.stdout


def test_unfinished_editions_of_any_age_on_both_backends(store: Store) -> None:
    old = _publish(store, ["a@example.org"], date(2025, 1, 1))
    store.set_status("daily", "a@example.org", "unsubscribed")  # later editions: no rows
    for day in range(1, 13):  # newer editions, finished or not, do not hide the old one
        _publish(store, [], date(2026, 1, day))
    done = _publish(store, [], date(2026, 2, 1))
    assert [e.edition_id for e in store.unfinished_editions()] == [old]
    assert store.unfinished_editions("daily")[0].counts == {"queued": 1}
    assert store.unfinished_editions("weekend") == []
    assert done not in [e.edition_id for e in store.unfinished_editions()]


async def test_healthz_follows_the_schedulers_heartbeat(tmp_path: Path) -> None:
    config = write_project(tmp_path, relay=None, lists={"daily": ListSpec()})
    settings = load_settings(config, env={"DIGEST_SECRET_KEY": "k" * 32})
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        app = create_app(settings, store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://news.example.org") as client:

            async def health() -> tuple[int, str, str]:
                r = await client.get("/digest/healthz")
                return r.status_code, r.text, r.headers["digest-scheduler"]

            assert await health() == (200, "ok\n", "none")  # no scheduler on this database
            assert store.acquire_lease("scheduler", "mail1:7:a1b2c3",
                                       ttl=timedelta(seconds=0.3))[0]
            assert await health() == (200, "ok\n", "alive")
            await asyncio.sleep(0.4)
            code, text, state = await health()
            assert (code, state) == (503, "stale")
            assert text.startswith("scheduler: stale (mail1:7:a1b2c3, last heartbeat")
            assert store.acquire_lease("scheduler", "mail2:8:d4e5f6", ttl=timedelta(minutes=1))[0]
            assert await health() == (200, "ok\n", "alive")
            assert store.release_lease("scheduler", "mail2:8:d4e5f6")
            code, text, state = await health()
            assert (code, state) == (503, "stopped") and "let go of the lock" in text


def test_send_lock_holds_across_working_folders_on_one_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    lists = {"daily": ListSpec()}
    one = load_settings(write_project(tmp_path / "one", lists=lists, relay=None),
                        env={"DIGEST_DATABASE_URL": url, "DIGEST_SECRET_KEY": "k" * 32})
    two = load_settings(write_project(tmp_path / "two", lists=lists, relay=None),
                        env={"DIGEST_DATABASE_URL": url, "DIGEST_SECRET_KEY": "k" * 32})
    assert one.work_dir != two.work_dir
    with open_store(url) as store, pipeline.send_lock(one, one.get_list("daily"), store=store):
        with pytest.raises(LockHeldError, match=r"Another send of list daily is running for "
                           r"this database \(held by .*, last heartbeat \d+ s ago\)") as held:
            with pipeline.send_lock(two, two.get_list("daily")):
                pass
        assert held.value.holder == pipeline.worker_id()
    with pipeline.send_lock(two, two.get_list("daily")):  # released at the end of the block
        pass


def test_a_lost_lease_is_reported_once_and_no_longer_valid(store: Store) -> None:
    lost: list[str] = []
    lock = pipeline.LeaseLock(store, "send:daily", FAST, holder="me", on_lost=lost.append)
    assert lock.acquire() is None and lock.valid
    assert lock.renew() and lock.valid
    time.sleep(0.5)  # past the lease: someone else takes it
    assert not lock.valid
    assert store.acquire_lease("send:daily", "other", ttl=timedelta(minutes=1))[0]
    assert not lock.renew() and not lock.renew()
    assert lost == ["lost the send:daily lock"]
    assert lock.acquire() is not None  # held by "other"


def test_log_lines_are_iso_stamped_and_libraries_stay_quiet(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    try:
        with open_store(f"sqlite:///{tmp_path / 'd.db'}") as store:  # edition events
            _publish(store, ["a@example.org"], date(2026, 11, 28))
        logging.getLogger("apscheduler.scheduler").info("Added job")  # libraries stay quiet
        logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    finally:
        configure_logging("WARNING")
    lines = out.getvalue().splitlines()
    assert lines and all(ISO_LINE.match(ln) for ln in lines), lines
    assert any(" INFO digest.editions: edition 1 list=daily date=2026-11-28 " in ln
               for ln in lines), lines
    assert not any("apscheduler" in ln or "alembic" in ln for ln in lines)
    assert delivery_counts({"sent": 497, "failed": 1, "expired": 1, "queued": 2,
                            "sending": 1, "skipped": 3}) == {
        "sent": 497, "failed": 2, "waiting": 3, "skipped": 3}
    # sent_unconfirmed counts as delivered and is shown apart; a state it does not know
    # is listed by its name.
    assert delivery_counts({"sent": 1, "sent_unconfirmed": 2, "held": 4}) == {
        "sent": 3, "failed": 0, "waiting": 0, "skipped": 0, "unconfirmed": 2, "held": 4}


def test_a_migration_is_one_line_and_opening_at_head_says_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    try:
        open_store(f"sqlite:///{tmp_path / 'd.db'}").close()
        first = out.getvalue()
        open_store(f"sqlite:///{tmp_path / 'd.db'}").close()
        second = out.getvalue()[len(first):]
    finally:
        configure_logging("WARNING")
    assert [ln.split(": ", 1)[1] for ln in first.splitlines()] == [
        f"migrating the database schema from empty to {head_revision()}"]
    assert second == ""


def test_sd_notify_sends_one_datagram_per_message() -> None:
    name = f"digest-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "10000000"})
        assert notifier.enabled and notifier.watchdog_interval == 5.0
        assert notifier.ready("scheduling 2 list(s)")
        assert sock.recv(4096).decode().split("\n")[:2] == ["READY=1",
                                                            "STATUS=scheduling 2 list(s)"]
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping("stopping (SIGTERM)")
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping (SIGTERM)"
    assert not Notifier({}).ready("x") and not Notifier({}).enabled
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # meant for another process
    gone = Notifier({"NOTIFY_SOCKET": f"@{name}-nobody-listens"})
    assert not gone.ready("x")  # logged once, never raised
