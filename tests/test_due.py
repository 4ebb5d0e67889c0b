"""Due editions as a state: the scheduler's rule run with an injected clock against a real
store and a real SMTP relay on loopback (readers' editions and the editors' notices)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from smtp_servers import ServerInfo, smtp_server

from digest import pipeline
from digest.config import Settings, load_settings
from digest.pipeline.scheduled import DueMemory
from digest.store import Store, open_store

pytest_plugins = ["store_backends"]

MONDAY = date(2026, 3, 2)  # Europe/London is on GMT: local time == UTC
STARTED = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def page(path: Path, headline: str) -> Path:
    """An article page (the newsroom's export format) with a lead and two teasers."""
    path.write_text(f"Politics\n{headline}\n\nThe body of the story.\n-\nWorld1 hour ago\n"
                    f"{headline}: the world\n-\nSports2 hours ago\n{headline}: the match\n",
                    encoding="utf-8")
    return path


def make_settings(tmp_path: Path, repo: Path, port: int, *, sources: list[Path],
                  send_time: str = "07:00", extra: str = "") -> Settings:
    listed = ", ".join(f'"{s}"' for s in sources)
    config = tmp_path / "digest.toml"
    config.write_text(f"""
[digest]
work_dir = "{tmp_path / 'var'}"
templates_dir = "{repo / 'templates'}"
[site]
name = "The Morning Ledger"
url = "https://news.example.org"
postal_address = "1 Press Row, Springfield"
domain = "news.example.org"
[web]
base_url = "https://news.example.org/digest"
[[relays]]
name = "loopback"
host = "127.0.0.1"
port = {port}
security = "none"
[lists.daily]
title = "Morning Briefing"
sources = [{listed}]
timezone = "Europe/London"
send_time = "{send_time}"
from = "The Morning Ledger <briefing@news.example.org>"
{extra}
""", encoding="utf-8")
    return load_settings(config, env={"DIGEST_SECRET_KEY": "test-key"})


class Scheduler:
    """Runs the due rule as the scheduler's job does, at injected instants."""

    def __init__(self, settings: Settings, store: Store, started: datetime = STARTED) -> None:
        self.settings, self.store, self.started = settings, store, started
        self.memory = DueMemory()
        self.lst = settings.get_list("daily")

    async def run(self, now: datetime) -> pipeline.DueOutcome:
        return await asyncio.to_thread(
            pipeline.run_due, self.settings, "daily", store=self.store,
            lock=lambda: pipeline.send_lock(self.settings, self.lst), now=now,
            started_at=self.started, memory=self.memory)


def mails(srv: ServerInfo) -> list[tuple[str, Any]]:
    return [(r.rcpt_tos[0], email.message_from_bytes(r.data, policy=email.policy.default))
            for r in srv.handler.received]


def moves(store: Store, edition_id: int) -> list[tuple[str | None, str, str]]:
    return [(e.old_status, e.new_status, e.actor) for e in store.edition_events(edition_id)
            if e.old_status != e.new_status]


async def test_a_due_edition_is_retried_until_published(
        tmp_path: Path, repo: Path, store_url: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest.editions")
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port,
                                 sources=[page(tmp_path / "front.txt", "Vote tonight")])
        settings = dataclasses.replace(settings, database_url=store_url)
        with open_store(store_url) as store:
            for name in ("ann", "bob"):
                store.add_subscriber("daily", f"{name}@example.org")
            sched = Scheduler(settings, store)
            assert (await sched.run(at(6, 59))).action == "idle"
            assert store.find_edition("daily", MONDAY) is None
            # An editor's command holds the list's send lock at the send time: delayed.
            with pipeline.send_lock(settings, sched.lst):
                for minute in (0, 1):
                    outcome = await sched.run(at(7, minute))
                    assert outcome.action == "delayed"
                    assert "Another send of list daily" in outcome.message
            assert store.find_edition("daily", MONDAY) is None and not srv.handler.received
            outcome = await sched.run(at(7, 2))
            assert outcome.action == "published", outcome
            assert sorted(r for r, _ in mails(srv)) == ["ann@example.org", "bob@example.org"]
            record = store.get_edition(outcome.edition_id)
            assert (record.date, record.status) == (MONDAY, "sent")
            assert moves(store, record.id) == [(None, "draft", "scheduler"),
                                               ("draft", "sending", "scheduler"),
                                               ("sending", "sent", "scheduler")]
            assert (await sched.run(at(7, 3))).action == "sent"  # nothing sent twice
            assert len(srv.handler.received) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert sum("delayed" in line for line in lines) == 1, lines  # once, not every minute
    assert any(f"edition {record.id} list=daily delivered: sent=2 unconfirmed=0 failed=0" in line
               for line in lines)
    assert any("sending -> sent by scheduler" in line for line in lines)
    assert not any("@example.org" in line for line in lines)


async def test_no_recipients_does_not_use_up_the_day(tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port,
                                 sources=[page(tmp_path / "front.txt", "Vote tonight")],
                                 extra='review_to = ["desk@example.org"]')
        with open_store(settings.database_url) as store:
            sched = Scheduler(settings, store)
            outcome = await sched.run(at(7))
            assert outcome.action == "delayed"
            assert "has no active subscribers" in outcome.message
            record = store.find_edition("daily", MONDAY)
            assert record is not None and (record.status, record.published) == ("draft", False)
            store.add_subscriber("daily", "ann@example.org")
            assert (await sched.run(at(7, 1))).action == "published"
            assert [r for r, _ in mails(srv)] == ["ann@example.org"]


async def test_no_recipients_all_window_is_missed_and_editors_are_told(
        tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port,
                                 sources=[page(tmp_path / "front.txt", "Vote tonight")],
                                 extra='review_to = ["desk@example.org"]\nsend_window = "2h"')
        with open_store(settings.database_url) as store:
            sched = Scheduler(settings, store)
            assert (await sched.run(at(7))).action == "delayed"
            assert (await sched.run(at(8, 59))).action == "delayed"
            outcome = await sched.run(at(9))  # the window's end
            assert outcome.action == "missed"
            assert "no active subscribers" in outcome.message
            record = store.get_edition(outcome.edition_id)
            assert record.status == "missed" and not record.published
            ((to, notice),) = mails(srv)
            assert to == "desk@example.org"
            assert notice["Subject"] == f"[Missed] Morning Briefing, 2026-03-02: {record.subject}"
            body = notice.get_content()
            assert "send window ended at 09:00 Europe/London" in body
            assert "no active subscribers" in body
            assert (await sched.run(at(9, 1))).action == "idle"
            assert len(srv.handler.received) == 1  # told once


async def test_a_late_night_edition_caught_up_after_midnight_keeps_its_date(
        tmp_path: Path, repo: Path) -> None:
    front = page(tmp_path / "front.txt", "Monday night news")
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port, sources=[front], send_time="23:30")
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            # The scheduler starts 40 minutes late, after midnight: the same rule catches up.
            tuesday = MONDAY + timedelta(days=1)
            sched = Scheduler(settings, store, started=at(0, 10, tuesday))
            outcome = await sched.run(at(0, 10, tuesday))
            assert outcome.action == "published"
            assert store.get_edition(outcome.edition_id).date == MONDAY
            # Tuesday's own edition is still due that evening: the day was not used up.
            page(front, "Tuesday night news")
            assert (await sched.run(at(23, 29, tuesday))).action == "idle"
            later = await sched.run(at(23, 30, tuesday))
            assert later.action == "published"
            assert store.get_edition(later.edition_id).date == tuesday
            subjects = [m["Subject"] for _, m in mails(srv)]
            assert subjects == ["Monday night news", "Tuesday night news"]


async def test_review_mail_then_publish_only_when_approved(tmp_path: Path, repo: Path) -> None:
    from digest.web import create_app

    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port, sources=[page(tmp_path / "front.txt", "Vote tonight")],
            extra='review = "required"\nreview_lead = "2h"\n'
                  'review_to = ["desk@example.org", "Chief <chief@example.org>"]')
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            store.add_subscriber("daily", "bob@example.org", sections=["Sports"])
            sched = Scheduler(settings, store)
            assert (await sched.run(at(4, 59))).action == "idle"
            outcome = await sched.run(at(5))
            assert outcome.action == "awaiting-approval"
            record = store.get_edition(outcome.edition_id)
            assert record.status == "draft"
            notices = mails(srv)
            assert sorted(to for to, _ in notices) == ["chief@example.org", "desk@example.org"]
            notice = notices[0][1]
            assert notice["Subject"] == "[Review] Morning Briefing, 2026-03-02: Vote tonight"
            assert notice["Auto-Submitted"] == "auto-generated"
            body = notice.get_content()
            assert "goes out at 07:00 Europe/London only once an editor approves it" in body
            assert "not approved at 10:00 Europe/London, it is missed" in body
            assert "Stories: 3" in body and "Recipients: 2" in body
            assert "Warnings: none" in body
            assert f"editions approve {record.id}" in body
            preview = next(line.split(": ", 1)[1] for line in body.splitlines()
                           if line.startswith("Preview: "))
            assert preview.startswith("https://news.example.org/digest/drafts/")
            assert ("On the desk (check, test, approve): "
                    f"https://news.example.org/digest/desk/editions/{record.id}") in body

            app = create_app(settings, store)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="https://news.example.org") as client:
                shown = await client.get(preview.removeprefix("https://news.example.org"))
                assert shown.status_code == 200 and "Vote tonight" in shown.text
                assert "no-store" in shown.headers["cache-control"]
                assert shown.headers["x-robots-tag"] == "noindex, nofollow"
                forged = await client.get("/digest/drafts/" + preview[-20:] + "x")
                assert forged.status_code == 400 and "Traceback" not in forged.text

            assert (await sched.run(at(5, 1))).action == "awaiting-approval"
            assert (await sched.run(at(7))).action == "awaiting-approval"
            assert len(srv.handler.received) == 2  # the review mail went once; no edition
            store.set_edition_status(record.id, "approved", actor="editor:ana")
            assert (await sched.run(at(7, 5))).action == "published"
            readers = sorted(to for to, _ in mails(srv)[2:])
            assert readers == ["ann@example.org", "bob@example.org"]
            assert moves(store, record.id)[-3:] == [("draft", "approved", "editor:ana"),
                                                   ("approved", "sending", "scheduler"),
                                                   ("sending", "sent", "scheduler")]


async def test_review_mail_counts_the_readers_the_send_will_have(
        tmp_path: Path, repo: Path) -> None:
    """The review mail's counts come after the subscriber files are imported: the number of
    recipients it gives is the number of ledger rows the send creates."""
    readers = tmp_path / "readers.csv"
    readers.write_text("email,name\nann@example.org,Ann\nbob@example.org,Bob\n"
                       "cat@example.org,Cat\ngone@example.org,Gone\n", encoding="utf-8")
    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port, sources=[page(tmp_path / "front.txt", "Vote tonight")],
            extra='review = "required"\nreview_lead = "2h"\nreview_to = ["desk@example.org"]\n'
                  f'subscribers_files = ["{readers}"]')
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "old@example.org")
            store.suppress("gone@example.org", "complained")  # in the file, never mailed
            sched = Scheduler(settings, store)
            outcome = await sched.run(at(5))
            assert outcome.action == "awaiting-approval"
            (to, notice), = mails(srv)
            body = notice.get_content()
            assert "Recipients: 4" in body, body  # old, ann, bob, cat
            store.set_edition_status(outcome.edition_id, "approved", actor="editor:ana")
            assert (await sched.run(at(7))).action == "published"
            assert sorted(to for to, _ in mails(srv)[1:]) == [
                "ann@example.org", "bob@example.org", "cat@example.org", "old@example.org"]
            assert store.delivery_summary(outcome.edition_id) == {"sent": 4}


async def test_an_approval_after_the_send_window_never_publishes(
        tmp_path: Path, repo: Path) -> None:
    """The scheduler sends an approved edition only within its send window (07:00-10:00):
    an editor's approval at 10:05 records it missed and says to use --force; one that got
    into the store late anyway (approved at 10:05 by another path) is marked missed by the
    next firing, never published."""
    import pytest

    from digest.errors import EditionStateError

    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port, sources=[page(tmp_path / "front.txt", "Vote tonight")],
            extra='review = "required"\nreview_lead = "2h"\nreview_to = ["desk@example.org"]')
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            sched = Scheduler(settings, store)
            outcome = await sched.run(at(5))
            assert outcome.action == "awaiting-approval"
            with pytest.raises(EditionStateError) as refused:
                pipeline.approve_edition(settings, store, outcome.edition_id,
                                         actor="editor:ana", cause="ok", now=at(10, 5))
            assert str(refused.value) == (
                f"Edition {outcome.edition_id} of daily for 2026-03-02 is missed, not "
                "approved: its send window ended at 2026-03-02 10:00 Europe/London, so the "
                "scheduler will not publish it; send it anyway with `send --list daily "
                "--force`.")
            assert store.get_edition(outcome.edition_id).status == "missed"
            assert (await sched.run(at(10, 6))).action == "idle"
            # Approved within the window, but the scheduler was down until after it ended.
            tuesday = date(2026, 3, 3)
            late = Scheduler(settings, store, started=at(4, day=tuesday))
            drafted = await late.run(at(5, day=tuesday))
            assert pipeline.approve_edition(settings, store, drafted.edition_id,
                                            actor="editor:ana", cause="ok",
                                            now=at(9, 59, day=tuesday))
            missed = await late.run(at(10, 30, day=tuesday))
            assert (missed.action, missed.edition_id) == ("missed", drafted.edition_id)
            assert not store.get_edition(drafted.edition_id).published
            assert all(to == "desk@example.org" for to, _ in mails(srv))  # no reader mailed


async def test_an_unapproved_edition_is_missed_and_the_editors_told(
        tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port, sources=[page(tmp_path / "front.txt", "Vote tonight")],
            extra='review = "required"\nreview_to = ["desk@example.org"]')
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            sched = Scheduler(settings, store)
            assert (await sched.run(at(5))).action == "awaiting-approval"
            assert (await sched.run(at(9, 59))).action == "awaiting-approval"
            outcome = await sched.run(at(10))
            assert outcome.action == "missed"
            assert outcome.message == "nobody approved it before its send window ended"
            assert store.get_edition(outcome.edition_id).status == "missed"
            subjects = [m["Subject"] for _, m in mails(srv)]
            assert subjects == ["[Review] Morning Briefing, 2026-03-02: Vote tonight",
                                "[Missed] Morning Briefing, 2026-03-02: Vote tonight"]
            assert all(to == "desk@example.org" for to, _ in mails(srv))  # no reader got it
            await sched.run(at(10, 1))
            assert len(srv.handler.received) == 2


async def test_a_partial_build_is_held_until_approved(tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port,
            sources=[page(tmp_path / "front.txt", "Vote tonight"), tmp_path / "gone.rss"],
            extra='review_to = ["desk@example.org"]')  # on_source_error = "hold" by default
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            sched = Scheduler(settings, store)
            outcome = await sched.run(at(7))
            assert outcome.action == "held"
            assert "gone.rss" in outcome.message
            ((_, notice),) = mails(srv)
            assert notice["Subject"].startswith("[Held] Morning Briefing, 2026-03-02")
            body = notice.get_content()
            assert "gone.rss" in body and "Warnings:" in body and "editions approve" in body
            for minute in (1, 30):
                assert (await sched.run(at(7, minute))).action == "held"
            assert (await sched.run(at(10))).action == "idle"  # held is not missed
            record = store.get_edition(outcome.edition_id)
            assert record.status == "held" and len(srv.handler.received) == 1


async def test_held_edition_approved_in_its_window_goes_out(tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port,
            sources=[page(tmp_path / "front.txt", "Vote tonight"), tmp_path / "gone.rss"])
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            sched = Scheduler(settings, store)
            held = await sched.run(at(7))
            assert held.action == "held" and not srv.handler.received  # nobody to tell
            store.set_edition_status(held.edition_id, "approved", actor="editor:ana")
            assert (await sched.run(at(8))).action == "published"
            assert [to for to, _ in mails(srv)] == ["ann@example.org"]


async def test_on_source_error_send_goes_out_with_the_readable_sources(
        tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(
            tmp_path, repo, srv.port,
            sources=[page(tmp_path / "front.txt", "Vote tonight"), tmp_path / "gone.rss"],
            extra='on_source_error = "send"')
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            outcome = await Scheduler(settings, store).run(at(7))
            assert outcome.action == "published"
            created = store.edition_events(outcome.edition_id)[0]
            assert "gone.rss" in created.detail["warnings"][0]  # the record keeps why


async def test_an_editors_hold_is_never_published_by_the_scheduler(
        tmp_path: Path, repo: Path) -> None:
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port,
                                 sources=[page(tmp_path / "front.txt", "Vote tonight")])
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            drafted = await pipeline.draft_edition(settings, settings.get_list("daily"), store,
                                                   as_of=at(6), source_override=None,
                                                   force=False, editor="ana")
            store.set_edition_status(drafted.record.id, "held", actor="editor:ana")
            sched = Scheduler(settings, store)
            for moment in (at(7), at(8), at(10), at(10, 1)):
                assert (await sched.run(moment)).action in ("held", "idle")
            assert store.get_edition(drafted.record.id).status == "held"
            assert not srv.handler.received


async def test_unreadable_sources_or_database_delay_and_a_never_built_edition_is_missed(
        tmp_path: Path, repo: Path) -> None:
    front = tmp_path / "front.txt"
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port, sources=[front],
                                 extra='review_to = ["desk@example.org"]')
        lost = dataclasses.replace(settings, database_url=(
            "postgresql+psycopg://digest@127.0.0.1:1/digest"))
        outcome = await asyncio.to_thread(pipeline.run_scheduled, lost, "daily", now=at(7))
        assert outcome.action == "delayed" and "could not complete" in outcome.message
        with open_store(settings.database_url) as store:
            store.add_subscriber("daily", "ann@example.org")
            sched = Scheduler(settings, store)
            outcome = await sched.run(at(7, 1))
            assert outcome.action == "delayed" and "front.txt" in outcome.message
            outcome = await sched.run(at(10))
            assert outcome.action == "missed"
            assert outcome.message.startswith("it was never built: ")
            record = store.get_edition(outcome.edition_id)
            assert (record.status, record.has_stories, record.date) == ("missed", False,
                                                                        MONDAY)
            ((_, notice),) = mails(srv)
            assert notice["Subject"] == "[Missed] Morning Briefing, 2026-03-02"
            # A scheduler that was not running during a slot says nothing about it.
            tuesday = at(11, day=MONDAY + timedelta(days=1))
            fresh = Scheduler(settings, store, started=tuesday)
            assert (await fresh.run(tuesday)).action == "idle"
            assert store.find_edition("daily", MONDAY + timedelta(days=1)) is None


def test_a_problem_is_logged_once_whatever_its_numbers_say() -> None:
    """A lock held across two firings reads "last heartbeat 0 s ago", then "1 s ago": the
    same problem, logged once (the delayed line is not repeated every minute)."""
    memory = DueMemory()
    held = ("Another send of list daily is running for this database (held by h:1:ab, last "
            "heartbeat {} s ago); wait for it to finish or stop it.")
    assert memory.problem("daily", held.format(0))
    assert not memory.problem("daily", held.format(1))
    assert memory.problems["daily"] == held.format(1)  # the latest words, for a missed reason
    assert memory.problem("daily", "The database cannot be reached.")
