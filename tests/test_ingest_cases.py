"""The ingest cases from public bug reports (tests/fixtures/ingest/*/CASE.md), each checked the
way its CASE.md says: through ``build`` where it names the command, else at the parser."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from feed_server import FeedServer, feed_server_fixture  # noqa: F401

from digest.cli import main
from digest.models import Image, SourceResult
from digest.sources import parse_feed

CASES = Path(__file__).resolve().parent / "fixtures" / "ingest"
AS_OF = "2026-11-17T08:00:00+00:00"
NOW = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def make_config(tmp_path: Path, repo: Path, site_url: str = "https://news.example.org") -> Path:
    text = (repo / "digest.toml").read_text(encoding="utf-8")
    text = text.replace('work_dir = "var"', f'work_dir = "{tmp_path / "var"}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{repo / "templates"}"')
    text = text.replace('url = "https://news.example.org"\n', f'url = "{site_url}"\n', 1)
    for rel in ("content/front-page.txt", "content/newsroom.rss", "subscribers/sample.csv"):
        text = text.replace(f'"{rel}"', f'"{repo / rel}"')
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, repo: Path) -> Path:
    return make_config(tmp_path, repo)


def build(config: Path, *sources: str) -> tuple[int, dict | None, str]:  # type: ignore[type-arg]
    args = ["build", "--config", str(config), "--json", "--force", "--as-of", AS_OF]
    for source in sources:
        args += ["--source", source]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    data = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, data, result.stderr


def stories(data: dict) -> list[dict]:  # type: ignore[type-arg]
    return [data["lead"], *(t for sec in data["sections"] for t in sec["teasers"])]


def read(case: str, name: str, **kwargs: object) -> SourceResult:
    data = (CASES / case / name).read_bytes()
    return parse_feed(data, source=name, section_map={}, as_of=NOW, **kwargs)  # type: ignore[arg-type]


# --- all-items-skipped ---------------------------------------------------------------------


def test_all_items_skipped_build_names_source_line_and_reason(config: Path) -> None:
    feed = CASES / "all-items-skipped" / "feed.xml"
    code, _, err = build(config, str(feed))
    assert code == 1
    assert f"{feed}:7: item 1 has no headline" in err  # the <item> starts on line 7
    assert "check the sources listed above" not in err and "Traceback" not in err


def test_skipped_items_are_printed_on_stderr_by_build_preview_and_send(
    config: Path, tmp_path: Path
) -> None:
    """Some items kept, one skipped: every command that builds says so on stderr."""
    feed = tmp_path / "mixed.xml"
    feed.write_text(
        '<rss version="2.0"><channel><title>t</title><link>https://news.example.org/</link>\n'
        "<item><title>Kept Story</title><link>https://news.example.org/k</link></item>\n"
        "<item><description>No title here</description></item>\n"
        "</channel></rss>",
        encoding="utf-8",
    )
    expected = f"{feed}:3: item 2 has no headline"
    for command in (
        ["build"],
        ["preview", "--out", str(tmp_path / "out")],
        ["send", "--dry-run"],
    ):
        args = [*command, "--config", str(config), "--source", str(feed), "--as-of", AS_OF]
        result = CliRunner().invoke(main, [*args, "--force"], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        assert expected in result.stderr, command
        assert expected not in result.stdout, command


# --- bad-charref ---------------------------------------------------------------------------


def test_bad_charref_costs_one_character_and_is_reported() -> None:
    result = read("bad-charref", "feed.xml")
    assert [s.headline for s in result.stories] == ["Lone \ufffd surrogate", "Good item"]
    assert [(i.line, i.reason) for i in result.skipped] == [
        (
            1,
            ("character references that name no character (&#55296;) were replaced with "
            "\ufffd on this line; the rest was kept"),
        )
    ]


@pytest.mark.parametrize("reference", ["&#55296;", "&#x110000;", "&#0;", "&#xDFFF;", "&#99999999999;"])
def test_every_kind_of_bad_reference_keeps_the_other_items(reference: str) -> None:
    data = (
        '<rss version="2.0"><channel>\n'
        f"<item><title>Bad {reference} one</title><link>https://e.example.org/b</link></item>\n"
        "<item><title>Good one</title><link>https://e.example.org/g</link></item>\n"
        "</channel></rss>"
    ).encode()
    result = parse_feed(data, source="s", section_map={})
    assert [s.headline for s in result.stories] == ["Bad \ufffd one", "Good one"]
    assert result.skipped[0].line == 2
    assert "item 1 ('Bad \ufffd one')" in result.skipped[0].reason


# --- block-tags ----------------------------------------------------------------------------


def test_block_tags_keep_boundaries_in_both_parts(config: Path, tmp_path: Path) -> None:
    feed = CASES / "block-tags" / "blogger-divs.atom"
    code, data, err = build(config, str(feed))
    assert code == 0, err
    harvest, choir = stories(data)  # type: ignore[arg-type]
    assert harvest["summary"] == "Doors open at six. Bring a dish to share. Tickets from the office."
    assert harvest["summary_html"] == (
        "<p>Doors open at six.</p><p>Bring a dish to share.</p><p>Tickets from the office.</p>"
    )
    assert choir["summary"] == (
        "New time. Thursday at seven. Sopranos Hall. The hall. Enter by the side door."
    )
    out = tmp_path / "preview"
    args = ["preview", "--config", str(config), "--source", str(feed), "--as-of", AS_OF]
    result = CliRunner().invoke(main, [*args, "--force", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    text = " ".join((out / "edition.txt").read_text(encoding="utf-8").split())
    html = " ".join((out / "edition.html").read_text(encoding="utf-8").split())
    for part in (text, html):
        assert "Doors open at six. Bring a dish to share." in part
        assert "six.Bring" not in part and "TimeThursday" not in part


def test_summary_links_reach_both_parts(config: Path, tmp_path: Path) -> None:
    """The review's case: "Read the explainer." must keep its link (HTML: a link in the
    email's link style; text: a numbered reference), never point at nothing."""
    feed = tmp_path / "links.atom"
    feed.write_text(textwrap.dedent("""\
        <?xml version="1.0" encoding="utf-8"?>
        <feed xmlns="http://www.w3.org/2005/Atom"><title>Council</title>
        <link href="https://news.example.org/"/><id>urn:c</id><updated>2026-11-17T07:00:00Z</updated>
        <entry><title>Council votes on the budget</title><id>urn:c:1</id>
          <link href="https://news.example.org/budget"/><category term="Politics"/>
          <updated>2026-11-17T07:00:00Z</updated>
          <content type="html">&lt;p&gt;The council voted.&lt;/p&gt;&lt;p&gt;&lt;a href="https://ex.org/explainer"&gt;Read the explainer.&lt;/a&gt;&lt;/p&gt;</content></entry>
        <entry><title>Library hours change</title><id>urn:c:2</id>
          <link href="https://news.example.org/library"/><category term="World"/>
          <updated>2026-11-17T06:00:00Z</updated>
          <content type="html">See the &lt;a href="https://ex.org/hours?a=1&amp;amp;b=2"&gt;new hours&lt;/a&gt; and &lt;a href="mailto:desk@ex.org"&gt;write to us&lt;/a&gt;.</content></entry>
        </feed>"""), encoding="utf-8")
    out = tmp_path / "preview"
    args = ["preview", "--config", str(config), "--source", str(feed), "--as-of", AS_OF]
    result = CliRunner().invoke(main, [*args, "--force", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    html = " ".join((out / "edition.html").read_text(encoding="utf-8").split())
    lead = re.search(r'<a href="https://ex.org/explainer"([^>]*)>Read the explainer\.</a>', html)
    assert lead is not None and "text-decoration:underline" in lead.group(1).replace(" ", "")
    assert re.search(r'The council voted\. <a href="https://ex.org/explainer"', html)
    assert re.search(r'See the <a href="https://ex.org/hours\?a=1&amp;b=2"[^>]*>new hours</a>'
                     r' and <a href="mailto:desk@ex.org"[^>]*>write to us</a>\.', html)
    text = (out / "edition.txt").read_text(encoding="utf-8")
    assert "The council voted. Read the explainer. [2]" in " ".join(text.split())
    assert "Read the full story: [1]" in text
    assert "[1] https://news.example.org/budget\n[2] https://ex.org/explainer\n" in text


# --- charset-stray-bytes -------------------------------------------------------------------


def test_stray_bytes_cost_only_themselves_and_a_warning_names_the_feed(config: Path) -> None:
    feed = CASES / "charset-stray-bytes" / "utf8-with-stray-bytes.rss"
    code, data, err = build(config, str(feed))
    assert code == 0, err
    first, second = stories(data)  # type: ignore[arg-type]
    assert data["subject"] == "Новый канал в пакете «Базовый»"  # type: ignore[index]
    assert first["headline"] == "Новый канал в пакете «Базовый»"
    assert first["summary"] == "Добавлен канал, смотрите с понедельника."
    assert second["headline"] == "Ответ на комментарий"
    assert second["summary"] == "спасибо " + "\ufffd" * 6  # the six Windows-1251 bytes
    assert f"{feed}:8: item 2 ('Ответ на комментарий'): bytes that are not UTF-8" in err
    assert [(s["line"], s["source"]) for s in data["skipped"]] == [(8, str(feed))]  # type: ignore[index]


# --- comment-before-doctype ----------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        b"<!-- generated by CMS -->\n<!DOCTYPE html>\n",  # the case itself
        b"<!DOCTYPE html>\n",
        b"<!-- just a comment -->\nPolitics\nA Headline\n",
        b"  <?xml version='1.0'?>\n<catalog/>\n",
        b"<html lang='en'>\n",
        b"<div>\nPolitics\n",
        b"</p>\nPolitics\n",
        b"\xef\xbb\xbf<!--x-->\n",
    ],
)
def test_markup_before_the_first_text_line_is_not_a_page(config: Path, tmp_path: Path,
                                                         start: bytes) -> None:
    page = tmp_path / "page.txt"
    case = (CASES / "comment-before-doctype" / "error-page.html").read_bytes()
    page.write_bytes(case if start.startswith(b"<!-- generated") else start + b"Body text.\n")
    code, _, err = build(config, str(page))
    assert code == 1
    assert "is an HTML or XML document, not an article page or a feed" in err


def test_a_section_line_starting_with_a_less_than_sign_is_still_a_page(config: Path,
                                                                        tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text("Technology\n<3 Deno: why developers love it\n", encoding="utf-8")
    code, data, err = build(config, str(page))
    assert code == 0, err
    assert data["lead"]["headline"] == "<3 Deno: why developers love it"  # type: ignore[index]


# --- media-caption-alt ---------------------------------------------------------------------


def test_media_images_alt_text_and_captions() -> None:
    rack, ferry, video = read("media-caption-alt", "feed.rss").stories
    # The featured image, not the avatar; its only title is a file name, so no alt text.
    assert rack.image == Image(url="https://hackblog.example.com/wp/2026/11/featured1.jpg")
    assert rack.summary == "A reader rebuilt a cheap furniture rack into a tidy server cabinet."
    assert ferry.image is not None and ferry.image.alt == "Photo: Staff photographer"
    assert ferry.summary == "From Monday the early ferry leaves ten minutes sooner."
    assert video.image == Image(
        url="https://video.example.com/vi/123/hqdefault.jpg",
        alt="Learn to solder through-hole parts in ten minutes.",
        width=480,
        height=360,
    )
    assert video.summary == "Learn to solder through-hole parts in ten minutes."  # no other text


def test_media_alt_reaches_the_email(config: Path, tmp_path: Path) -> None:
    feed = CASES / "media-caption-alt" / "feed.rss"
    out = tmp_path / "preview"
    args = ["preview", "--config", str(config), "--source", str(feed), "--as-of", AS_OF]
    result = CliRunner().invoke(main, [*args, "--force", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    html = (out / "edition.html").read_text(encoding="utf-8")
    # The lead's image has only a file name for a title: no alt text rather than "featured1".
    assert re.search(r'<img src="https://hackblog.example.com/wp/2026/11/featured1.jpg"'
                     r'[^>]* alt=""', html)
    assert "gravatar" not in html and 'alt="featured1"' not in html
    # Without the first item, the ferry leads: its media:description is the image's alt;
    # without the first two, the video's thumbnail leads with its description.
    items = feed.read_text(encoding="utf-8").split("<item>")
    for dropped, src, alt in (
            (1, "https://hackblog.example.com/wp/2026/11/ferry.jpg", "Photo: Staff photographer"),
            (2, "https://video.example.com/vi/123/hqdefault.jpg",
             "Learn to solder through-hole parts in ten minutes.")):
        shorter = tmp_path / f"without-{dropped}.rss"
        shorter.write_text("<item>".join([items[0], *items[1 + dropped:]]), encoding="utf-8")
        args = ["preview", "--config", str(config), "--source", str(shorter), "--as-of", AS_OF]
        result = CliRunner().invoke(main, [*args, "--force", "--out", str(out)])
        assert result.exit_code == 0, result.stderr
        html = (out / "edition.html").read_text(encoding="utf-8")
        image = re.search(rf'<img src="{re.escape(src)}"[^>]*>', html)
        assert image is not None, html
        assert f'alt="{alt}"' in image.group(0)


# --- relative-links-fetched ----------------------------------------------------------------


def test_relative_links_resolve_against_the_fetched_address(
    config: Path, tmp_path: Path, feed_server: FeedServer
) -> None:
    url = feed_server.url("/moved/games.rss")  # redirects to /en/games/news/rss
    code, data, err = build(config, url)
    assert code == 0, err
    base = feed_server.url("/en/games/news")
    weekend, maintenance = stories(data)  # type: ignore[arg-type]
    assert weekend["url"] == f"{base}/detail/1001-the-weekend-event"
    assert maintenance["url"] == f"{base}/detail/1002-maintenance"
    assert weekend["summary_html"] == (
        f'<p>Read the <a href="{base}/detail/1000" rel="noopener">patch notes</a>.</p>'
    )
    assert weekend["image"]["url"] == feed_server.url("/images/1001.jpg")
    assert data["skipped"] and all(  # type: ignore[index]
        "http://" in item["reason"] for item in data["skipped"]  # type: ignore[index]
    )
    out = tmp_path / "preview"
    args = ["preview", "--config", str(config), "--source", url, "--as-of", AS_OF]
    result = CliRunner().invoke(main, [*args, "--force", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    html = (out / "edition.html").read_text(encoding="utf-8")
    assert f'href="{base}/detail/1001-the-weekend-event"' in html
    assert 'href="/' not in html and 'href="detail' not in html


# --- slash-dates ---------------------------------------------------------------------------


def test_every_date_is_the_instant_it_names_or_reported() -> None:
    result = read("slash-dates", "feed.rss")
    got = {s.headline[0]: s.published_at for s in result.stories}
    assert got == {
        "A": datetime(2026, 11, 16, 15, 7, 41, tzinfo=UTC),  # no zone: UTC, and reported
        "B": datetime(2026, 11, 16, 6, 57, tzinfo=UTC),  # MEST is UTC+2
        "C": datetime(2026, 11, 16, 21, 18, tzinfo=UTC),  # EST is UTC-5 (RFC 822)
        "D": datetime(2026, 11, 16, 1, 22, 22, tzinfo=UTC),  # -0000 is UTC
        "E": datetime(2026, 11, 16, 19, 39, 7, tzinfo=UTC),  # 26 is 2026
        "F": datetime(2026, 11, 16, 21, 30, tzinfo=UTC),
        "G": datetime(2026, 11, 16, 9, 0, tzinfo=UTC),  # "Mo," is a weekday all the same
        "H": datetime(2026, 11, 17, 23, 0, tzinfo=UTC),  # kept as written...
    }
    assert [s.headline[0] for s in result.stories if s.future_dated] == ["H"]  # ...but marked
    assert [(i.line, i.reason[:41]) for i in result.skipped] == [
        (19, "item 8 ('H: future-dated by timezone bug "),
        (5, "item 1 ('A: slash date without zone (feed"),
    ]
    assert "15 hours after the time of reading" in result.skipped[0].reason
    assert "'2026/11/16 15:07:41' gives no time zone; it was read as UTC" in (
        result.skipped[1].reason
    )


def test_a_future_dated_story_is_reported_and_never_the_lead(config: Path, tmp_path: Path) -> None:
    feed = str(CASES / "slash-dates" / "feed.rss")
    code, data, err = build(config, feed)
    assert code == 0, err
    assert data["lead"]["headline"].startswith("F:")  # type: ignore[index]  # newest real one
    assert "H: future-dated" in err and "never leads an edition unless forced" in err
    future = [t for t in stories(data) if t["headline"].startswith("H:")]  # type: ignore[arg-type]
    assert future and future[0]["future_dated"] is True
    out = tmp_path / "preview"
    args = ["preview", "--config", str(config), "--source", feed, "--force", "--out", str(out)]
    # Without --as-of the email measures ages from the send time, not from story H.
    result = CliRunner().invoke(main, [*args, "--as-of", "2026-11-17T07:00:00+00:00"])
    assert result.exit_code == 0, result.stderr
    text = (out / "edition.txt").read_text(encoding="utf-8")
    block = text[text.index("H: future-dated") :].split("\n\n")[0]
    assert "17 Nov 2026" in block and "just now" not in block
    assert "hours ago" in text  # the others keep their relative ages


def test_future_dated_stories_are_passed_over_for_the_lead() -> None:
    from datetime import time
    from zoneinfo import ZoneInfo

    from digest.config import ListSettings
    from digest.edition import assemble_edition
    from digest.errors import EmptyEditionError
    from digest.models import Story

    def story(name: str, hour: int, future: bool = False) -> Story:
        return Story(id=name, section="World", headline=name, future_dated=future,
                     summary=f"{name}, in one line.", url=f"https://news.example.org/{name}",
                     published_at=datetime(2026, 11, 17, hour, tzinfo=UTC))

    lst = ListSettings(
        name="daily", title="Daily", sources=(), sections=("World",), section_map={},
        lead_section="World", teasers_per_section=3, max_age=None, timezone=ZoneInfo("UTC"),
        send_time=time(7), from_name="N", from_email="n@example.org", reply_to=None,
        subject="{lead_headline}", preheader="{teaser_headlines}", relay=None)
    edition = assemble_edition([story("ahead", 23, True), story("real", 6)], list_settings=lst,
                               as_of=NOW)
    assert edition.lead is not None and edition.lead.headline == "real"
    with pytest.raises(EmptyEditionError, match="its one new story is dated in the future"):
        assemble_edition([story("ahead", 23, True)], list_settings=lst, as_of=NOW)
    alone = assemble_edition([story("ahead", 23, True)], list_settings=lst, as_of=NOW,
                             force=True)
    assert alone.lead is not None and alone.lead.headline == "ahead"  # the editor's override


def test_an_edition_of_only_future_stories_is_not_built(config: Path, tmp_path: Path) -> None:
    """The review's case: the one story is dated tonight; the subject must never be a story
    the build itself says cannot lead, so the day is skipped with the reason (exit 1)."""
    feed = tmp_path / "f.rss"
    feed.write_text(
        '<rss version="2.0"><channel><title>t</title><link>https://news.example.org/</link>\n'
        "<item><title>Only future story</title><link>https://news.example.org/f</link>"
        "<description>Tonight.</description>"
        "<pubDate>Tue, 17 Nov 2026 23:00:00 +0000</pubDate></item>\n"
        "</channel></rss>", encoding="utf-8")
    args = ["--config", str(config), "--source", str(feed), "--as-of", AS_OF]
    for command in (["build", *args, "--json"], ["preview", *args, "--out", str(tmp_path)],
                    ["send", *args, "--dry-run"], ["send", *args]):
        result = CliRunner().invoke(main, command, catch_exceptions=False)
        # build and preview fail; send reports a skipped day (exit 0), as for "nothing new"
        assert result.exit_code == (0 if command[0] == "send" else 1), result.output
        assert "Only future story" in result.stderr and "unless forced" in result.stderr
        assert "nothing to lead with: its one new story is dated in the future" in " ".join(
            result.output.split()), command[0]
        assert "Traceback" not in result.stderr and '"subject"' not in result.stdout
    code, data, _ = build(config, str(feed))  # --force: the editor's override, as it says
    assert code == 0 and data is not None and data["subject"] == "Only future story"


# --- text-title-brackets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "feed.atom",
            [
                "<3 Deno",  # type="html": de-tagged, and "<3" is no tag
                "Intent to unship: <a> as <area> in image maps",  # type="text": as written
                "Intent to unship: <a> as <area>",  # type="html" with escaped brackets
            ],
        ),
        ("feed.json", ["Intent to unship: <a> as <area> in image maps"]),
        (
            "feed.rss",
            [
                "Intent to unship: <a> as <area> in image maps",
                "Why the <template> element matters for newsletters",
            ],
        ),
    ],
)
def test_plain_titles_keep_every_word_and_bracket(name: str, expected: list[str]) -> None:
    assert [s.headline for s in read("text-title-brackets", name).stories] == expected


def test_bracket_titles_reach_subject_and_both_parts(config: Path, tmp_path: Path) -> None:
    feed = CASES / "text-title-brackets" / "feed.rss"
    out = tmp_path / "preview"
    args = ["preview", "--config", str(config), "--source", str(feed), "--as-of", AS_OF]
    result = CliRunner().invoke(main, [*args, "--force", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    headline = "Intent to unship: <a> as <area> in image maps"
    html = (out / "edition.html").read_text(encoding="utf-8")
    assert "Intent to unship: &lt;a&gt; as &lt;area&gt; in image maps" in html
    assert "<area>" not in html
    assert headline in (out / "edition.txt").read_text(encoding="utf-8")
    import email
    import email.policy

    message = email.message_from_bytes((out / "edition.eml").read_bytes(),
                                       policy=email.policy.default)
    assert message["Subject"] == headline
