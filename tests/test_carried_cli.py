"""End to end through `send`, two days running: what the size budget dropped comes back the next
day, a recurring headline with a new link returns, and a feed that moved from http to https
(with tracking parameters added) resends nothing. Also the sample list's next-day edition."""

from __future__ import annotations

import email
import email.policy
import mailbox
from pathlib import Path
from xml.sax.saxutils import escape

from test_cli import make_project, run

from digest.config import load_settings
from digest.store import open_store

READERS = {"all@example.org": "", "world@example.org": "World",
           "business@example.org": "Business"}
PER_SECTION = 45
LONG = ": what the council's vote on the riverside budget means for the town's schools"
FILLER = ("Councillors met late into the evening to weigh the proposal, which residents had "
          "debated for months in packed meetings at the town hall and in letters to this "
          "paper. ") * 5


def _item(title: str, link: str, guid: str, section: str, when: str) -> str:
    permalink = "true" if guid == link else "false"
    return (f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
            f"<guid isPermaLink=\"{permalink}\">{escape(guid)}</guid>"
            f"<category>{section}</category><pubDate>{when}</pubDate>"
            f"<description>{escape(title + '. ' + FILLER)}</description></item>")


def _feed(path: Path, *, https: bool, day: int, extra: list[tuple[str, str, str]]) -> Path:
    """PER_SECTION World and Business stories each (plus ``extra`` as (title, link, section)),
    linked over http on the first day and over https with tracking parameters after: each
    section alone fits the size budget, both together do not."""
    items = []
    scheme = "https" if https else "http"
    track = "?utm_source=rss&utm_medium=feed&fbclid=x" if https else ""
    for n in range(PER_SECTION):
        hour = f"{23 - n // 2:02d}:{n % 2 * 20:02d}"
        link = f"{scheme}://news.test/world/{n}/{track}"
        guid = f"{scheme}://news.test/world/{n}/"  # a permalink guid, also moved to https
        items.append(_item(f"World story number {n}{LONG}", link, guid, "World",
                           f"Sun, 01 Mar 2026 {hour}:00 +0000"))
        items.append(_item(f"Business story number {n}{LONG}", f"{scheme}://news.test/biz/{n}{track}",
                           f"biz-{n}", "Business", f"Sun, 01 Mar 2026 {hour}:10 +0000"))
    items.append(_item("Parliament passes the budget", f"{scheme}://news.test/politics/1",
                       f"{scheme}://news.test/politics/1", "Politics",
                       "Mon, 02 Mar 2026 05:00:00 +0000"))
    for title, link, section in extra:
        items.append(_item(title, link, link, section, f"0{day} Mar 2026 06:00:00 +0000"))
    path.write_text("<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel>"
                    "<title>News</title><link>https://news.test/</link>"
                    f"<description>d</description>{''.join(items)}</channel></rss>",
                    encoding="utf-8")
    return path


def _project(tmp_path: Path, repo: Path) -> Path:
    csv = tmp_path / "readers.csv"
    csv.write_text("email,name,sections\n" + "".join(
        f"{address},,{sections}\n" for address, sections in READERS.items()), encoding="utf-8")
    project = make_project(tmp_path, repo)
    text = project.read_text(encoding="utf-8")
    text = text.replace("teasers_per_section = 3", "teasers_per_section = 50", 1)
    text = text.replace(f'"{repo / "subscribers" / "sample.csv"}"', f'"{csv}"')
    project.write_text(text, encoding="utf-8")
    return project


def _html_by_reader(box: mailbox.Maildir, keys: list[str]) -> dict[str, str]:
    out = {}
    for key in keys:
        message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        out[str(message["To"])] = message.get_body(("html",)).get_content()
    return out


def test_two_days_of_sends_carry_exactly_what_readers_received(tmp_path: Path,
                                                               repo: Path) -> None:
    project = _project(tmp_path, repo)
    settings = load_settings(project)
    day1 = _feed(tmp_path / "day1.rss", https=False, day=2, extra=[
        ("Letters to the Editor", "http://news.test/letters/1", "Opinion")])
    code, out, err = run("send", "--config", str(project), "--source", str(day1),
                         "--as-of", "2026-03-02T07:00", "--dry-run")
    assert code == 0, err
    assert "from the all-sections variant (1 reader(s))" in err  # a dry run says so too
    code, out, err = run("send", "--config", str(project), "--source", str(day1),
                         "--as-of", "2026-03-02T07:00")
    assert code == 0, err
    assert "was delivered" in out

    with open_store(settings.database_url) as store:
        first = store.find_edition("daily", load_day(2))
        assert first is not None
        rows = store.edition_story_records(first.id)
    dropped = [r for r in rows if r.dropped_from]
    assert dropped, "the all-sections variant must go over the size budget"
    assert all(r.dropped_from == (("Business", "Opinion", "Politics", "World"),)
               or r.dropped_from == (("Business", "Opinion", "World"),) for r in dropped)
    assert not any(r.carried for r in dropped)
    assert all(r.carried for r in rows if not r.dropped_from)
    # A World story dropped for the all-sections reader was still shown to the World reader.
    assert any(r.shown_in == (("World",),) for r in dropped if r.section == "World")
    # `send` said so on stderr: which stories, from which variant, for how many readers.
    assert "dropped" in err and "from the all-sections variant (1 reader(s))" in err
    for r in dropped:
        assert r.headline in err

    box = mailbox.Maildir(settings.maildir, create=False)
    day1_keys = list(box.keys())
    assert len(day1_keys) == 3
    html = _html_by_reader(box, day1_keys)
    for r in dropped:
        assert r.headline not in html["all@example.org"]

    day2 = _feed(tmp_path / "day2.rss", https=True, day=3, extra=[
        ("Letters to the Editor", "https://news.test/letters/2?utm_source=rss", "Opinion"),
        ("A new story today", "https://news.test/new/1", "World")])
    code, out, err = run("send", "--config", str(project), "--source", str(day2),
                         "--as-of", "2026-03-03T07:00")
    assert code == 0, err
    with open_store(settings.database_url) as store:
        second = store.find_edition("daily", load_day(3))
        assert second is not None
        headlines = {s.headline for s in second.edition().stories}
    # What went out yesterday does not go out again though every guid and link changed
    # spelling; what the budget dropped comes back; the recurring title with a new link too.
    assert headlines == {r.headline for r in dropped} | {"Letters to the Editor",
                                                         "A new story today"}
    html = _html_by_reader(box, [k for k in box.iterkeys() if k not in day1_keys])
    for r in dropped:
        assert r.headline in html["all@example.org"]


def load_day(day: int):  # type: ignore[no-untyped-def]
    from datetime import date

    return date(2026, 3, day)


def test_the_sample_lists_next_edition_does_not_lead_with_a_stale_teaser(
        tmp_path: Path, repo: Path) -> None:
    """The sample as shipped: after the first day's send, the next day has nothing new
    fit to lead (what is left are the page's bare teasers the per-section limit kept out the
    day before) rather than an edition led by a month-old teaser with no text and no link."""
    project = make_project(tmp_path, repo, sample_max_age=True)
    code, _, err = run("send", "--config", str(project), "--as-of", "2026-11-17T07:00")
    assert code == 0, err
    code, out, err = run("build", "--config", str(project), "--json",
                         "--as-of", "2026-11-18T07:00")
    assert code == 1 and out == ""
    assert "nothing to lead with" in err and "bare headlines" in err
    code, out, err = run("build", "--config", str(project), "--json", "--force",
                         "--as-of", "2026-11-18T07:00")
    assert code == 0, err
    import json

    lead = json.loads(out)["lead"]
    assert lead["headline"].startswith("South Korean President")  # the page's own lead


def test_repeat_window_is_a_list_setting(tmp_path: Path, repo: Path) -> None:
    from datetime import timedelta

    project = make_project(tmp_path, repo, sample_max_age=True)
    settings = load_settings(project)
    daily, weekend = settings.get_list("daily"), settings.get_list("weekend")
    assert (daily.max_age, daily.repeat_window) == (timedelta(days=45), timedelta(days=7))
    assert weekend.repeat_window == timedelta(days=7)  # the default
    text = project.read_text(encoding="utf-8").replace('repeat_window = "7d"',
                                                       'repeat_window = "a fortnight"')
    project.write_text(text, encoding="utf-8")
    code, _, err = run("build", "--config", str(project))
    assert code == 2
    assert "lists.daily.repeat_window" in err and "a fortnight" in err
