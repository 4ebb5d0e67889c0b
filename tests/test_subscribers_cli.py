"""``subscribers import | export | add | remove | list`` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli.subscribers import subscribers
from digest.store import open_store
from digest.tokens import read_confirm_token

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"
SAMPLE = Path(__file__).parent.parent / "subscribers" / "sample.csv"
KEY = "test-signing-key-0123456789"
CONFIG = """
[digest]
work_dir = "var"

[site]
name = "Gazette"
url = "https://gazette.example"
postal_address = "1 Main St"

[web]
base_url = "https://news.example.org/"

[lists.daily]
title = "Morning Briefing"
sources = ["front.txt"]
sections = ["Politics", "World", "Business", "Top Stories", "Sports", "Health",
            "Entertainment", "Lifestyle", "Technology"]
from = "Gazette <am@gazette.example>"

[lists.weekly]
sources = ["front.txt"]
sections = ["World"]
from = "Gazette <pm@gazette.example>"
"""


@pytest.fixture
def cli(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "templates").mkdir()
    config = tmp_path / "digest.toml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("DIGEST_DATABASE_URL", store_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", KEY)
    runner = CliRunner()

    def run(*args: str, stdin: bytes | None = None) -> Result:
        return runner.invoke(subscribers, [*args, "--config", str(config)], input=stdin,
                             catch_exceptions=False)

    run.url = store_url  # type: ignore[attr-defined]
    return run


def test_import_reports_and_reimport_reports_nothing_new(cli, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.csv"
    shutil.copy(FIXTURES / "mixed.csv", mixed)
    first = cli("import", str(mixed), "--list", "daily")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0] == (f"{mixed} → daily: 7 new, 0 updated, 1 unchanged, 0 kept inactive "
                        "(unsubscribed, bounced or complained), 7 rejected.")
    assert [ln.split(":")[0] for ln in lines if ln.startswith("rejected")] == [
        f"rejected line {n}" for n in (3, 5, 6, 9, 10, 12, 16)]
    assert "warning line 8: unknown section 'Cooking' ignored" in lines
    assert "victim" not in first.output

    second = cli("import", str(mixed), "--list", "daily")
    assert second.exit_code == 0
    assert "0 new, 0 updated, 7 unchanged, 1 kept inactive" in second.output
    assert "Nothing new." in second.output


def test_unsubscribed_address_stays_unsubscribed_after_reimport(cli) -> None:
    assert cli("import", str(SAMPLE), "--list", "daily").exit_code == 0
    removed = cli("remove", "Zoe.Martin@EXAMPLE.com", "--list", "daily")
    assert removed.exit_code == 0
    assert "zoe.martin@example.com is unsubscribed from daily" in removed.output
    again = cli("import", str(SAMPLE), "--list", "daily")
    assert "0 new, 0 updated, 25 unchanged, 1 kept inactive" in again.output
    listed = cli("list", "--list", "daily", "--status", "unsubscribed")
    assert listed.stdout.splitlines() == ["zoe.martin@example.com\tunsubscribed\tZoé Martin\t(all)"]
    assert "1 shown; daily has 25 active, 1 unsubscribed." in listed.stderr
    assert cli("remove", "zoe.martin@example.com", "--list", "daily").output.startswith(
        "zoe.martin@example.com was already unsubscribed")
    add = cli("add", "zoe.martin@example.com", "--list", "daily")
    assert "stays unsubscribed" in add.output


def test_export_import_round_trip(cli, tmp_path: Path) -> None:
    cli("import", str(SAMPLE), "--list", "daily")
    cli("import", str(FIXTURES / "mixed.csv"), "--list", "daily")
    exported = cli("export", "--list", "daily")
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 33
    assert list(rows[0]) == ["email", "name", "sections", "status", "confirmed_at",
                             "consent_source", "city"]
    amelie = next(r for r in rows if r["email"] == "amelie.durand@example.org")
    assert amelie.pop("confirmed_at").endswith("+00:00")
    assert amelie == {"email": "amelie.durand@example.org", "name": "Amélie Durand",
                      "sections": "Politics;World", "status": "active",
                      "consent_source": "import", "city": "Lyon"}
    again = cli("import", "-", "--list", "daily", stdin=exported.stdout.encode())
    assert "0 new, 0 updated, 32 unchanged, 1 kept inactive" in again.output
    out = tmp_path / "daily.csv"
    assert cli("export", "--list", "daily", "--out", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == exported.stdout
    # Into another list of the same store: the same people, with that list's sections.
    into_weekly = cli("import", str(out), "--list", "weekly")
    assert "warning line 2: unknown section 'Politics' ignored" in into_weekly.output
    weekly = list(csv.DictReader(io.StringIO(cli("export", "--list", "weekly").stdout)))
    assert [r["email"] for r in weekly] == [r["email"] for r in rows]
    assert {r["sections"] for r in weekly} <= {"", "World"}


def test_add_with_confirm_prints_a_link_and_stays_pending(cli) -> None:
    result = cli("add", "new.reader@example.org", "--list", "daily", "--name", "New Reader",
                 "--sections", "world,politics", "--confirm")
    assert result.exit_code == 0, result.output
    link = result.stdout.strip().splitlines()[-1]
    assert link.startswith("https://news.example.org/confirm/")
    assert "new.reader" not in link
    token = link.rsplit("/", 1)[1]
    subscriber_id, list_name, request = read_confirm_token((KEY,), token,
                                                           max_age=timedelta(days=7))
    with open_store(cli.url) as store:
        member = store.get_membership_by_id(subscriber_id, list_name)
        # Name and sections wait in the request until the reader confirms it.
        assert (member.email, member.status, member.sections, member.name) == (
            "new.reader@example.org", "pending", None, None)
        assert list(store.iter_eligible("daily")) == []
        confirmed = store.confirm_subscription(subscriber_id, list_name, request_id=request)
        assert (confirmed.status, confirmed.sections, confirmed.name) == (
            "active", frozenset({"Politics", "World"}), "New Reader")
        [asked, confirmed] = store.membership_history("new.reader@example.org")
        assert (asked.id, asked.actor, asked.cause) == (request, "editor", "editor-request")
        assert (confirmed.actor, confirmed.cause) == ("reader", "confirm")
    assert "already active" in cli("add", "new.reader@example.org", "--list", "daily",
                                   "--confirm").output


def test_add_active_and_bad_input(cli) -> None:
    ok = cli("add", "ann@example.org", "--list", "daily", "--name", "Ann")
    assert ok.exit_code == 0 and "ann@example.org is active on daily" in ok.output
    unknown = cli("add", "bob@example.org", "--list", "daily", "--sections", "Cooking")
    assert unknown.exit_code == 2 and "Unknown section 'Cooking'" in unknown.stderr
    bad = cli("add", "not-an-address", "--list", "daily")
    assert bad.exit_code == 1 and "not valid" in bad.stderr
    injected = cli("add", "eve@example.org", "--list", "daily", "--name", "Eve\r\nBcc: x@y.org")
    assert injected.exit_code == 1 and "line break" in injected.stderr
    missing = cli("remove", "nobody@example.org", "--list", "daily")
    assert missing.exit_code == 1 and "not on the list" in missing.stderr
    no_list = cli("list", "--list", "nope")
    assert no_list.exit_code == 2 and "no list 'nope'" in no_list.stderr
    no_file = cli("import", "missing.csv", "--list", "daily")
    assert no_file.exit_code == 1 and "cannot be read" in no_file.stderr
    assert "Traceback" not in (unknown.output + bad.output + missing.output + no_file.output)


def test_pending_import(cli) -> None:
    result = cli("import", str(SAMPLE), "--list", "daily", "--pending")
    assert "26 new" in result.output
    listed = cli("list", "--list", "daily")
    assert "26 shown; daily has 26 pending." in listed.stderr


def test_history_prints_one_event_per_line_oldest_first(cli, tmp_path: Path) -> None:
    assert cli("import", str(SAMPLE), "--list", "daily").exit_code == 0
    assert cli("add", "amelie.durand@example.org", "--list", "weekly").exit_code == 0
    assert cli("remove", "amelie.durand@example.org", "--list", "daily").exit_code == 0
    back = cli("add", "amelie.durand@example.org", "--list", "daily", "--confirmed")
    assert back.exit_code == 0 and "is active on daily" in back.output
    shown = cli("history", "Amelie.Durand@example.org")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(f"by import: import  file={SAMPLE}, line=2")
    assert "daily  (new) -> active  sections: Politics;World  by import: import" in lines[0]
    assert "weekly  (new) -> active  sections: all  by editor: editor-add" in lines[1]
    assert "daily  active -> unsubscribed  by editor: editor-remove  " \
        "command=subscribers remove" in lines[2]
    assert "daily  unsubscribed -> active  by editor: editor-confirmed  " \
        "command=subscribers add --confirmed" in lines[3]
    assert "4 events; now: daily active, weekly active." in shown.stderr
    only_weekly = cli("history", "amelie.durand@example.org", "--list", "weekly")
    assert len(only_weekly.stdout.splitlines()) == 1
    unknown = cli("history", "nobody@example.org")
    assert unknown.exit_code == 1 and "no such address" in unknown.stderr
    not_configured = cli("history", "amelie.durand@example.org", "--list", "nope")
    assert not_configured.exit_code == 2 and "Traceback" not in not_configured.output


def test_add_keeps_a_readers_choices_unless_confirmed(cli) -> None:
    assert cli("import", str(SAMPLE), "--list", "daily").exit_code == 0
    with open_store(cli.url) as store:
        zoe = store.get_membership("daily", "zoe.martin@example.com")
        store.update_sections(zoe.subscriber_id, "daily", ["World"])
        store.unsubscribe(zoe.subscriber_id, "daily", cause="one-click-unsubscribe")
    again = cli("add", "zoe.martin@example.com", "--list", "daily", "--sections", "Sports")
    assert "stays unsubscribed on daily" in again.output
    assert "sections were kept" in again.output
    both = cli("add", "zoe.martin@example.com", "--list", "daily", "--confirm", "--confirmed")
    assert both.exit_code == 2
    with open_store(cli.url) as store:
        store.suppress("zoe.martin@example.com", "complained")
    link = cli("add", "zoe.martin@example.com", "--list", "daily", "--confirm")
    assert link.exit_code == 1 and "suppressed" in link.stderr and "https://" not in link.stdout
