"""`status` shows the editions that are due and not sent: send time passed today (or a window
opened the day before still open), not sending, sent, held, cancelled or missed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from service_env import ListSpec, write_project

from digest import pipeline
from digest.cli import main
from digest.config import load_settings
from digest.models import Edition, Story
from digest.store import Store, open_store

MONDAY = date(2026, 3, 2)  # London is on GMT: local time == UTC
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _record(store: Store, name: str, day: date = MONDAY, status: str | None = None) -> int:
    record = store.record_edition(Edition(
        list_name=name, date=day, subject=f"{name} news", preheader="", sections=(),
        lead=Story(id=f"{name}-{day}", section="Politics", headline="Lead", is_lead=True)))
    if status is not None:
        store.set_edition_status(record.id, status, actor="editor:ana")
    return record.id


def test_due_editions_are_the_unsent_ones_whose_send_time_passed(tmp_path: Path) -> None:
    names = ("nothing", "drafted", "held", "cancelled", "missed", "sent", "later", "early",
             "review")
    times = {"later": "09:00", "early": "03:00"}
    config = write_project(
        tmp_path, relay=None,
        lists={n: ListSpec(readers=1, send_time=times.get(n, "07:00"),
                           timezone="Europe/London") for n in names},
        extra='review = "required"\nreview_to = ["desk@example.org"]\n')  # the last list
    settings = load_settings(config, env={"DIGEST_DATABASE_URL":
                                          f"sqlite:///{tmp_path / 'digest.db'}"})
    with open_store(settings.database_url) as store:
        drafted = _record(store, "drafted")
        review = _record(store, "review")
        _record(store, "held", status="held")
        _record(store, "cancelled", status="cancelled")
        _record(store, "missed", status="missed")
        sent = _record(store, "sent")
        store.add_subscriber("sent", "ann@example.org")
        store.publish_edition(sent, message_id_domain="news.example.org", now=NOW)
        report = pipeline.service_status(settings, store, now=NOW)
        due = {d.list_name: d for d in report.due}
        assert sorted(due) == ["drafted", "early", "nothing", "review"]
        assert due["nothing"].edition_id is None and due["drafted"].edition_id == drafted
        lines = [ln for ln in report.lines() if ln.startswith("edition due, not sent: ")]
        assert lines[0] == (
            "edition due, not sent: early 2026-03-02 (due 2026-03-02T03:00:00+00:00 "
            "Europe/London): no edition built yet; its send window ended at "
            "2026-03-02T06:00:00+00:00, so a running scheduler records it missed")
        assert (f"edition due, not sent: drafted 2026-03-02 (due 2026-03-02T07:00:00+00:00 "
                f"Europe/London): edition {drafted} is draft and not published; its send "
                "window is open until 2026-03-02T10:00:00+00:00, so a running scheduler "
                "sends it (or `send --list drafted` now)") in lines
        assert any(f"edition {review} is a draft waiting for an editor's approval "
                   f"(`editions approve {review}`)" in ln for ln in lines)
        assert any(ln.startswith("edition not finished: sent ") for ln in report.lines())
        # Before the send time nothing is due; a list of one name only shows that list.
        assert pipeline.service_status(settings, store, now=NOW - timedelta(hours=6)).due == []
        assert [d.list_name for d in pipeline.service_status(
            settings, store, now=NOW, list_name="drafted").due] == ["drafted"]


def test_a_late_evening_edition_is_due_after_midnight_while_its_window_is_open(
        tmp_path: Path) -> None:
    config = write_project(tmp_path, relay=None, lists={"late": ListSpec(
        readers=1, send_time="23:30", timezone="Europe/London")})
    settings = load_settings(config, env={"DIGEST_DATABASE_URL":
                                          f"sqlite:///{tmp_path / 'digest.db'}"})
    with open_store(settings.database_url) as store:
        after_midnight = datetime(2026, 3, 3, 0, 10, tzinfo=UTC)
        due = pipeline.service_status(settings, store, now=after_midnight).due
        assert [(d.list_name, d.day) for d in due] == [("late", MONDAY)]
        _record(store, "late", status="held")
        assert pipeline.service_status(settings, store, now=after_midnight).due == []


def test_status_command_lists_an_edition_due_now(tmp_path: Path) -> None:
    """The real clock: a list due a minute ago shows, with one line saying what to do."""
    minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%H:%M")
    config = write_project(tmp_path, relay=None, lists={"daily": ListSpec(
        readers=1, send_time=minute_ago, timezone="UTC")})
    result = CliRunner().invoke(main, ["status", "--config", str(config)], env={
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'digest.db'}"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines()
                if ln.startswith("edition due, not sent: daily "))
    assert "no edition built yet; its send window is open until" in line
    assert "`send --list daily` now" in line
