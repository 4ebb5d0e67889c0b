"""End to end through the command line: build, preview and send on the sample configuration."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from render_checks import check_html, check_text

from digest.cli import main
from digest.config import load_settings
from digest.store import open_store

AS_OF = "2025-08-23T12:00:00+01:00"


def make_project(tmp_path: Path, repo: Path, *, sample_max_age: bool = False) -> Path:
    """The repository's sample configuration with its working folder under tmp_path.

    The seed page's teasers are four weeks old, older than the daily list's ``max_age``;
    most tests render them, so the daily list's ``max_age`` is lifted unless
    ``sample_max_age`` (tests of the sample as shipped).
    """
    text = (repo / "digest.toml").read_text(encoding="utf-8")
    if not sample_max_age:
        head, daily = text.split("[lists.daily]\n", 1)
        daily, rest = daily.split("\n[", 1)
        daily = re.sub(r"(?m)^max_age = .*\n", "", daily)
        text = f"{head}[lists.daily]\n{daily}\n[{rest}"
    text = text.replace('work_dir = "var"', f'work_dir = "{tmp_path / "var"}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{repo / "templates"}"')
    for rel in ("content/front-page.txt", "content/newsroom.rss", "subscribers/sample.csv"):
        text = text.replace(f'"{rel}"', f'"{repo / rel}"')
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def technology_feed(tmp_path: Path, count: int) -> Path:
    """An RSS feed of ``count`` Technology stories with summaries and links, published in
    the hours before AS_OF: more than one edition's ``teasers_per_section``, so the next
    edition has something fit to lead with."""
    items = "".join(
        f"<item><title>Chip story {i}</title><link>https://news.example.org/chips/{i}</link>"
        f"<description>What chip story {i} says.</description><category>tech</category>"
        f"<pubDate>Sat, 23 Aug 2025 {9 - i:02d}:00:00 +0100</pubDate></item>"
        for i in range(count))
    feed = tmp_path / "tech.rss"
    feed.write_text(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                    f"<title>Tech desk</title><link>https://news.example.org/</link>{items}"
                    "</channel></rss>", encoding="utf-8")
    return feed


@pytest.fixture
def project(tmp_path: Path, repo: Path) -> Path:
    return make_project(tmp_path, repo)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_build_json_on_the_seed_page(project: Path, seed_page: Path) -> None:
    code, out, err = run("build", "--config", str(project), "--json", "--source",
                         str(seed_page), "--as-of", AS_OF)
    assert code == 0, err
    data = json.loads(out)
    assert data["list"] == "daily"
    assert data["date"] == "2025-08-23"
    assert data["lead"]["section"] == "Politics"
    assert data["lead"]["headline"] == (
        "South Korean President Lee Jae Myung Meets Japanese PM Ishiba in Tokyo")
    assert data["subject"] == data["lead"]["headline"]
    teasers = [t for sec in data["sections"] for t in sec["teasers"]]
    assert len(teasers) == 12
    # The page's 8 sections: the lead's (Politics) and the 7 its teasers are in.
    assert {data["lead"]["section"]} | {sec["name"] for sec in data["sections"]} == {
        "Politics", "Sports", "Lifestyle", "Business", "Entertainment", "World",
        "Top Stories", "Health"}
    # Configured order (digest.toml), newest first inside a section.
    assert [sec["name"] for sec in data["sections"]] == [
        "World", "Business", "Top Stories", "Sports", "Health", "Entertainment", "Lifestyle"]
    as_of = datetime.fromisoformat(AS_OF)
    sports = next(sec for sec in data["sections"] if sec["name"] == "Sports")["teasers"]
    assert [datetime.fromisoformat(t["published_at"]) for t in sports] == [
        as_of - timedelta(weeks=4), datetime(2025, 7, 23, 12, tzinfo=as_of.tzinfo)]
    for teaser in teasers:
        assert set(teaser) >= {"id", "section", "headline", "url", "published_at"}
    assert data["skipped"] == []


def test_an_unreadable_source_is_named_and_the_rest_still_builds(
        project: Path, seed_page: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.rss"
    code, out, err = run("build", "--config", str(project), "--json", "--source",
                         str(seed_page), "--source", str(missing), "--as-of", AS_OF)
    assert code == 0
    assert str(missing) in err and "Traceback" not in err
    data = json.loads(out)
    assert len([t for s in data["sections"] for t in s["teasers"]]) == 12
    assert any(s["source"] == str(missing) and s["line"] is None for s in data["skipped"])


def test_only_unreadable_sources_fail_in_one_line(project: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02" * 50)
    code, out, err = run("build", "--config", str(project), "--source", str(junk),
                         "--source", str(tmp_path / "nope.txt"))
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and "Traceback" not in err
    assert "junk.bin" in err and "nope.txt" in err


@pytest.mark.parametrize(("args", "needle"), [
    (["--as-of", "yesterday"], "--as-of 'yesterday'"),
    (["--list", "evening"], "no list 'evening'"),
])
def test_bad_usage_exits_2(project: Path, args: list[str], needle: str) -> None:
    code, _, err = run("build", "--config", str(project), *args)
    assert code == 2
    assert needle in err and "Traceback" not in err


def mark_sent(store, edition) -> None:  # type: ignore[no-untyped-def]
    """Record ``edition`` as sent to one reader who received every story."""
    from datetime import UTC

    from digest.models import CarriedStory

    store.add_subscriber(edition.list_name, "reader@example.org")
    record = store.record_edition(edition, forced=True)
    store.publish_edition(record.id, message_id_domain="news.example.org",
                          now=datetime.now(UTC))
    store.record_carried(record.id, [CarriedStory(s.id, True, ((),)) for s in edition.stories])


def test_stories_of_earlier_editions_are_not_repeated(project: Path, seed_page: Path,
                                                     tmp_path: Path) -> None:
    # The page's bare teasers cannot lead, so a feed brings stories fit to lead tomorrow.
    args = ["build", "--config", str(project), "--json", "--source", str(seed_page),
            "--source", str(technology_feed(tmp_path, 3)), "--as-of", AS_OF]
    first = json.loads(run(*args)[1])
    settings = load_settings(project)
    from digest.models import Edition

    with open_store(settings.database_url) as store:
        edition = Edition.from_json(first)
        trimmed = Edition(edition.list_name, edition.date - timedelta(days=1), edition.subject,
                          edition.preheader, edition.lead, edition.sections[:2])
        store.record_edition(edition)  # recorded, never sent: carries nothing
        mark_sent(store, trimmed)
    second = json.loads(run(*args)[1])
    names = [sec["name"] for sec in second["sections"]]
    assert "World" not in names and "Business" not in names
    assert second["lead"]["headline"] != first["lead"]["headline"]
    assert second["lead"]["headline"].startswith("Chip story")
    assert second["excluded"]["already sent"] == 1 + 1 + 3

    with open_store(settings.database_url) as store:
        mark_sent(store, edition)  # the rest went out too
    code, out, err = run(*args[:-2], "--as-of", "2025-08-25T12:00")
    assert code == 1 and out == ""
    assert "nothing new" in err and "--force" in err
    code, out, _ = run(*args, "--force")
    assert code == 0 and len(json.loads(out)["sections"]) == 8


def test_preview_writes_a_correct_email_for_the_seed_page(
        project: Path, seed_page: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "preview"
    code, _, err = run("preview", "--config", str(project), "--source", str(seed_page),
                       "--as-of", AS_OF, "--out", str(out_dir))
    assert code == 0, err
    html = (out_dir / "edition.html").read_text(encoding="utf-8")
    text = (out_dir / "edition.txt").read_text(encoding="utf-8")
    assert check_html(html) == []
    assert check_text(text) == []
    assert "arrived in Tokyo on August 23, 2023" in html
    assert "Deta\u015fe-Sabah Violin Ensemble" in text
    message = email.message_from_bytes((out_dir / "edition.eml").read_bytes(),
                                       policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text.replace(
        "\r\n", "\n")
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == html.replace(
        "\r\n", "\n")


def test_preview_for_feed_input(project: Path, repo: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "feed-preview"
    code, _, err = run("preview", "--config", str(project), "--list", "weekend", "--source",
                       str(repo / "content" / "newsroom.rss"), "--as-of", "2026-11-17T08:00",
                       "--out", str(out_dir))
    assert code == 0, err
    html = (out_dir / "edition.html").read_text(encoding="utf-8")
    assert check_html(html) == []
    assert check_text((out_dir / "edition.txt").read_text(encoding="utf-8")) == []
    assert 'href="https://news.example.org/' in html


def test_preview_as_a_subscriber_uses_their_name_and_sections(
        project: Path, seed_page: Path, tmp_path: Path) -> None:
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        store.add_subscriber("daily", "ana@example.org", name='Ana <b>"A"</b>',
                             sections=["Sports"])
    out_dir = tmp_path / "ana"
    code, _, err = run("preview", "--config", str(project), "--source", str(seed_page),
                       "--as-of", AS_OF, "--subscriber", "ana@example.org", "--out",
                       str(out_dir))
    assert code == 0, err
    html = (out_dir / "edition.html").read_text(encoding="utf-8")
    text = (out_dir / "edition.txt").read_text(encoding="utf-8")
    assert 'Hi Ana &lt;b&gt;"A"&lt;/b&gt;,' in html and "<b>" not in html
    assert 'Ana <b>"A"</b>' in text
    assert "De Minaur Triumphs" in text and "Kenvue Dismisses" not in text
    assert "/unsubscribe/preview" not in html
    code, _, err = run("preview", "--config", str(project), "--source", str(seed_page),
                       "--subscriber", "nobody@example.org", "--out", str(out_dir))
    assert code == 2 and "nobody@example.org" in err


def test_send_on_the_embedded_defaults_delivers_once(project: Path) -> None:
    settings = load_settings(project)
    code, out, err = run("send", "--config", str(project))
    assert code == 0, err
    assert "was delivered" in out
    box = mailbox.Maildir(settings.maildir, create=False)
    messages = [box.get_bytes(key) for key in box.keys()]
    recipients = sorted(email.message_from_bytes(m)["To"] for m in messages)
    with open_store(settings.database_url) as store:
        eligible = sorted(m.email for m in store.iter_eligible("daily"))
    assert len(messages) == len(eligible) > 20
    assert len(set(recipients)) == len(recipients)
    ids = {email.message_from_bytes(m)["Message-ID"] for m in messages}
    assert len(ids) == len(messages)

    code, out, _ = run("send", "--config", str(project))
    assert code == 0 and "already went out" in out
    assert len(box.keys()) == len(messages)

    code, out, _ = run("send", "--config", str(project), "--test-to", "desk@example.org")
    assert code == 0
    test_copy = [email.message_from_bytes(box.get_bytes(k)) for k in box.keys()]
    subjects = [m["Subject"] for m in test_copy if m["To"] == "desk@example.org"]
    assert len(subjects) == 1 and subjects[0].startswith("[TEST] ")


def test_the_quick_start_as_shipped_sends_a_full_digest_today(
        tmp_path: Path, repo: Path) -> None:
    """The README's quick start on a fresh clone, with no --as-of: the sample list's
    ``max_age`` must keep the sample content's teasers, or a new user's first email is a
    lead with nothing under it. (The page is copied so its capture time is now, as in a
    fresh clone.)"""
    import shutil

    project = make_project(tmp_path, repo, sample_max_age=True)
    page = tmp_path / "front-page.txt"
    shutil.copyfile(repo / "content/front-page.txt", page)
    text = project.read_text(encoding="utf-8").replace(
        str(repo / "content/front-page.txt"), str(page))
    project.write_text(text, encoding="utf-8")
    code, out, err = run("build", "--config", str(project), "--json")
    assert code == 0, err
    edition = json.loads(out)
    with_teasers = [s for s in edition["sections"] if s["teasers"]]
    assert len(with_teasers) >= 4, edition["sections"]
    assert sum(len(s["teasers"]) for s in with_teasers) >= 10


def _sqlite_dump(settings) -> list[str]:  # type: ignore[no-untyped-def]
    import sqlite3

    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as conn:
        return list(conn.iterdump())


def test_dry_run_sends_nothing_and_writes_nothing(project: Path) -> None:
    settings = load_settings(project)
    with open_store(settings.database_url) as store:
        store.add_subscriber("daily", "ana@example.org")
    before = _sqlite_dump(settings)
    code, out, err = run("send", "--config", str(project), "--dry-run")
    assert code == 0, err
    assert _sqlite_dump(settings) == before  # not one row: not even the file's readers
    # The recipients a real send would have: the store's and the subscriber file's.
    said = " ".join(out.split())
    assert "built 27 messages (26 of them to readers the list's subscriber files would add)" \
        in said
    assert "Dry run: " in said and "nothing was written to the database" in said
    assert not settings.maildir.exists() or not list((settings.maildir / "new").iterdir())
    # After a real send (which syncs the file) a dry run still writes nothing.
    assert run("send", "--config", str(project))[0] == 0
    before = _sqlite_dump(settings)
    code, out, _ = run("send", "--config", str(project), "--dry-run", "--force")
    assert code == 0 and "built 27 messages" in out
    assert _sqlite_dump(settings) == before


@pytest.mark.parametrize("args", [
    ["build", "--source", "/tmp/[/x]"],
    ["build", "--list", "[/bold]"],
    ["preview", "--out", "/proc/digest-preview/[red]"],
    ["build", "--source", "ftp://example.org/feed.xml"],
])
def test_odd_input_is_one_plain_sentence(project: Path, seed_page: Path, args: list[str]) -> None:
    if args[0] == "preview":
        args = [*args, "--source", str(seed_page), "--as-of", AS_OF]
    code, out, err = run(args[0], "--config", str(project), *args[1:])
    assert code in (1, 2)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    shown = [a for a in args if "[" in a or "://" in a]
    assert all(value.split("/")[-1] in err for value in shown)


def test_markup_in_content_prints_as_text(project: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text("Politics\nA [/b] headline with [red]brackets[/red]\n\nBody text here.\n",
                    encoding="utf-8")
    code, out, err = run("build", "--config", str(project), "--source", str(page))
    assert code == 0, err
    assert "A [/b] headline with [red]brackets[/red]" in out.replace("\n", " ")


def test_serve_on_a_busy_port_is_one_sentence(project: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run("serve", "--config", str(project), "--port", str(port))
    assert code == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
