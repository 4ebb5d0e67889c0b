"""The editor's commands through the command line: draft, editions list/show/hold/approve/
cancel, build and preview showing the stored edition (or the next one), and send's rules."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
from test_cli import AS_OF, make_project, run, technology_feed

from digest.config import load_settings
from digest.store import open_store


@pytest.fixture
def project(tmp_path: Path, repo: Path) -> Path:
    return make_project(tmp_path, repo)


def _config(project: Path, old: str, new: str) -> None:
    text = project.read_text(encoding="utf-8")
    assert old in text
    project.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_draft_then_hold_approve_cancel_each_recorded(project: Path) -> None:
    code, out, err = run("draft", "--config", str(project), "--as-of", AS_OF, "--editor", "ana")
    assert code == 0, err
    assert "as a draft" in out
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
        assert record.status == "draft" and not record.published
    edition_id = str(record.id)
    # Drafting again shows the stored one and says so.
    code, out, err = run("draft", "--config", str(project), "--as-of", AS_OF)
    assert code == 0 and f"already stored as edition {edition_id} (draft)" in err
    code, out, err = run("editions", "hold", edition_id, "--config", str(project), "--editor",
                         "ben", "--reason", "checking a quote")
    assert code == 0, err
    assert "is now held" in out and "will not be sent until an editor approves" in out
    code, out, _ = run("editions", "hold", edition_id, "--config", str(project))
    assert code == 0 and "already held; nothing changed" in out
    # The edition is of 2025-08-23: its send window ended long ago, so approving it now
    # does not approve it (the scheduler would never publish it): it is missed.
    code, out, err = run("editions", "approve", edition_id, "--config", str(project),
                         "--editor", "ana")
    assert code == 1 and "Traceback" not in err
    assert " ".join(err.split()) == (
        f"error: Edition {edition_id} of daily for 2025-08-23 is missed, not approved: its send window "
        "ended at 2025-08-23 10:00 Europe/London, so the scheduler will not publish it; send "
        "it anyway with `send --list daily --as-of 2025-08-23 --force`.")
    code, out, err = run("editions", "cancel", edition_id, "--config", str(project),
                         "--editor", "ana", "--reason", "wrong lead")
    assert code == 0 and "will never be sent" in out
    code, out, err = run("editions", "approve", edition_id, "--config", str(project))
    assert code == 1 and "stay cancelled" in err and "Traceback" not in err
    code, out, err = run("editions", "show", edition_id, "--config", str(project), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == "cancelled"
    assert [(e["from"], e["to"], e["actor"], e["cause"]) for e in data["events"]] == [
        (None, "draft", "editor:ana", "drafted with `draft`"),
        ("draft", "held", "editor:ben", "checking a quote"),
        ("held", "missed", "editor:ana", "approval came after its send window ended at "
         "2025-08-23 10:00 Europe/London, so it was not approved or published"),
        ("missed", "cancelled", "editor:ana", "wrong lead"),
    ]
    # After a cancel, `draft` makes a new edition of the day, with the same stories.
    code, out, err = run("draft", "--config", str(project), "--as-of", AS_OF)
    assert code == 0 and "as a draft" in out, err
    code, out, err = run("editions", "list", "--config", str(project), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["seq"], r["status"]) for r in rows] == [(2, "draft"), (1, "cancelled")]
    for bad in (["editions", "show", "999"], ["editions", "hold", "999"]):
        code, _, err = run(*bad, "--config", str(project))
        assert code == 1 and "no edition 999" in err
    code, _, err = run("editions", "show", "x", "--config", str(project))
    assert code == 2


def test_editions_list_and_show_after_a_send(project: Path) -> None:
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 0, err
    code, out, err = run("editions", "list", "--config", str(project))
    assert code == 0, err
    assert "2025-08-23" in out and "sent" in out
    code, out, err = run("editions", "list", "--config", str(project), "--list", "weekend")
    assert code == 0 and "No editions are stored yet for list weekend" in out
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
        sent = store.delivery_summary(record.id)["sent"]
    code, out, err = run("editions", "show", str(record.id), "--config", str(project))
    assert code == 0, err
    assert f"Edition {record.id}" in out and ": sent" in out
    assert f"Delivery: {sent} sent, 0 failed, 0 expired, 0 skipped, 0 waiting" in out
    assert "Variants" in out and "History" in out
    assert "draft → sending" in out and "sending → sent" in out
    data = json.loads(run("editions", "show", str(record.id), "--config", str(project),
                          "--json")[1])
    assert sum(v["readers"] for v in data["variants"]) == sent
    assert data["preview_url"] is None  # published: the archive shows it
    assert data["edition"]["subject"] == record.subject


def test_build_and_preview_show_the_stored_edition_and_the_next(
        project: Path, tmp_path: Path) -> None:
    feed = technology_feed(tmp_path, 5)
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace('content/newsroom.rss"]', f'content/newsroom.rss", "{feed}"]',
                                    1), encoding="utf-8")
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 0, err
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
    sent = record.edition()
    code, out, err = run("build", "--config", str(project), "--as-of", AS_OF, "--json")
    assert code == 0, err
    assert f"stored as edition {record.id} (sent)" in err and "--next" in err
    assert json.loads(out)["subject"] == sent.subject
    assert json.loads(out) == sent.to_json()  # what went out is what build shows
    code, out, err = run("build", "--config", str(project), "--as-of", AS_OF, "--json",
                         "--next")
    assert code == 0, err
    assert "the next daily edition, for 2025-08-24" in err
    nxt = json.loads(out)
    assert nxt["date"] == "2025-08-24"
    shown = {t["id"] for s in nxt["sections"] for t in s["teasers"]} | {nxt["lead"]["id"]}
    assert not shown & {s.id for s in sent.stories}  # nothing of today's repeated
    assert nxt["lead"]["headline"].startswith("Chip story")  # a leftover fit to lead
    out_dir = tmp_path / "stored"
    code, _, err = run("preview", "--config", str(project), "--as-of", AS_OF, "--out",
                       str(out_dir))
    assert code == 0 and f"edition {record.id}" in err
    html = (out_dir / "edition.html").read_text(encoding="utf-8")
    assert sent.lead is not None and sent.lead.headline.split()[0] in html


def test_preview_as_a_subscriber_before_the_first_send(project: Path, tmp_path: Path) -> None:
    first = next(line.split(",")[0] for line in
                 (Path(__file__).parent.parent / "subscribers" / "sample.csv")
                 .read_text(encoding="utf-8").splitlines()[1:] if "@" in line)
    code, _, err = run("preview", "--config", str(project), "--as-of", AS_OF, "--subscriber",
                       first, "--out", str(tmp_path / "p"))
    assert code == 0, err
    assert (tmp_path / "p" / "edition.eml").read_bytes().count(first.encode()) >= 1


def test_send_without_subscribers_says_so_and_keeps_the_day(project: Path,
                                                            tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("email,name\nnot-an-address,Nobody\n", encoding="utf-8")
    _config(project, str(Path(__file__).parent.parent / "subscribers" / "sample.csv"),
            str(empty))
    for extra in ([], ["--force"]):
        code, out, err = run("send", "--config", str(project), "--as-of", AS_OF, *extra)
        assert code == 1
        assert "has no active subscribers, so nothing was sent" in err, err
        assert "already went out" not in out + err
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        records = store.list_editions("daily")
        assert records and not any(r.published for r in records)
    empty.write_text("email\nann@example.org\n", encoding="utf-8")
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 0 and "was delivered" in out, err
    box = mailbox.Maildir(settings.maildir, create=False)
    assert len(box.keys()) == 1


def test_send_respects_holds_and_review_unless_forced(project: Path) -> None:
    code, out, err = run("draft", "--config", str(project), "--as-of", AS_OF)
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
    run("editions", "hold", str(record.id), "--config", str(project), "--editor", "ben")
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 1 and f"Edition {record.id} is held" in err and "--force" in err
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF, "--force",
                         "--editor", "ana")
    assert code == 0 and "was delivered" in out, err
    with open_store(settings.database_url) as store:
        event = next(e for e in store.edition_events(record.id) if e.new_status == "sending")
        assert (event.old_status, event.actor) == ("held", "editor:ana")
        assert event.detail is not None and event.detail["forced"] is True
    # The history says who forced it and past what.
    code, out, err = run("editions", "show", str(record.id), "--config", str(project),
                         "--json")
    assert code == 0, err
    (forced,) = [e for e in json.loads(out)["events"] if e["to"] == "sending"]
    assert (forced["from"], forced["actor"]) == ("held", "editor:ana")
    assert forced["cause"].endswith("; forced by editor:ana with --force (it was held)")
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 0 and "already went out" in out


def test_review_required_list_sends_only_an_approved_edition(project: Path) -> None:
    _config(project, 'review = "off"', 'review = "required"\nreview_to = ["desk@example.org"]')
    run("draft", "--config", str(project), "--as-of", AS_OF)
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 1 and "needs review: approve edition" in err
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
    # Approved after its send window (2025-08-23): missed, not published by a plain send.
    code, out, err = run("editions", "approve", str(record.id), "--config", str(project))
    assert code == 1 and "is missed, not approved" in err and "--force" in err
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 1 and "missed its send window" in err and "Traceback" not in err
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF, "--force",
                         "--editor", "ana")
    assert code == 0 and "was delivered" in out, err
    code, out, err = run("editions", "show", str(record.id), "--config", str(project),
                         "--json")
    published = next(e for e in json.loads(out)["events"] if e["to"] == "sending")
    assert (published["from"], published["actor"]) == ("missed", "editor:ana")
    assert published["cause"].endswith("; forced by editor:ana with --force (it was missed)")
    assert published["detail"]["forced"] is True


def test_an_approval_within_the_send_window_lets_the_scheduler_send_it(
        project: Path) -> None:
    """Today's draft of a list whose send time was an hour ago, with a 20 h window (open
    whatever the time of day the test runs): approving it says the scheduler sends it."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    london = datetime.now(UTC).astimezone(ZoneInfo("Europe/London"))
    _config(project, 'send_time = "07:00"',
            f'send_time = "{london - timedelta(hours=1):%H:%M}"')
    _config(project, 'send_window = "3h"', 'send_window = "20h"')
    code, out, err = run("draft", "--config", str(project), "--force")
    assert code == 0, err
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
    code, out, err = run("editions", "approve", str(record.id), "--config", str(project),
                         "--editor", "ana")
    assert code == 0, err
    assert f"Edition {record.id} of daily for {record.date} is now approved." in out
    assert "a running scheduler sends it within a minute" in " ".join(out.split())
    with open_store(settings.database_url) as store:
        assert store.get_edition(record.id).status == "approved"


def test_any_stored_edition_can_be_previewed_and_tested(project: Path, tmp_path: Path) -> None:
    """What the desk does on an edition's page, for an edition of another day (sent)."""
    code, out, err = run("send", "--config", str(project), "--as-of", AS_OF)
    assert code == 0, err
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        (record,) = store.list_editions("daily")
    before = len(list(mailbox.Maildir(settings.maildir, create=False).iterkeys()))
    out_dir = tmp_path / "proof"
    code, out, err = run("editions", "preview", str(record.id), "--config", str(project),
                         "--subscriber", "amelie.durand@example.org", "--out", str(out_dir))
    assert code == 0, err
    html = (out_dir / "edition.html").read_text(encoding="utf-8")
    assert record.subject in html and "/digest/unsubscribe/" in html  # her own links
    code, out, err = run("editions", "test", str(record.id), "--config", str(project),
                         "--to", "desk@Example.ORG", "--to", "desk@example.org", "--to",
                         "second@example.org", "--editor", "ana")
    assert code == 0, err
    assert f"Sent a test of edition {record.id} to 2 address(es)." in out
    box = mailbox.Maildir(settings.maildir, create=False)
    tests = [box[k] for k in box.iterkeys() if box[k]["Subject"].startswith("[TEST] ")]
    assert len(list(box.iterkeys())) == before + 2 and len(tests) == 2
    with open_store(settings.database_url) as store:
        note = store.edition_events(record.id)[-1]
        assert store.delivery_summary(record.id).get("queued", 0) == 0  # no ledger rows
    assert (note.old_status, note.new_status, note.actor, note.cause) == (
        "sent", "sent", "editor:ana", "test sent to 2 address(es) from the command line")
    code, _, err = run("editions", "test", "999", "--config", str(project), "--to",
                       "a@example.org")
    assert code == 1 and "no edition 999" in err and "Traceback" not in err
    code, _, err = run("editions", "test", str(record.id), "--config", str(project), "--to",
                       "not an address")
    assert code == 1 and "Traceback" not in err
