"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 into stories: fields, sections, links, sanitising, bad items."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.models import Image, SourceResult, story_id
from digest.sources import detect_kind, parse_feed
from digest.sources.markup import sanitise_html
from digest.sources.text import shorten

FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"
PAGES = Path(__file__).resolve().parent / "fixtures" / "pages"
REPO = Path(__file__).resolve().parent.parent
SECTIONS = {"markets": "Business", "tech": "Technology", "world": "World", "space": "Space"}


def read(name: str, section_map: dict[str, str] = SECTIONS) -> SourceResult:
    return parse_feed((FEEDS / name).read_bytes(), source=name, section_map=section_map)


def reasons(result: SourceResult) -> list[str]:
    return [item.reason for item in result.skipped]


# --- detecting the kind from the content ----------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ((FEEDS / "rss2.xml").read_bytes(), "rss"),
        ((FEEDS / "atom.xml").read_bytes(), "atom"),  # a comment before the root
        ((FEEDS / "jsonfeed.json").read_bytes(), "jsonfeed"),
        ((PAGES / "seed.txt").read_bytes(), "page"),
        ((FEEDS / "not-a-feed.xml").read_bytes(), "page"),
        (b'\xef\xbb\xbf  \n<rss version="2.0"/>', "rss"),
        ('<?xml version="1.0"?><rss version="2.0"/>'.encode("utf-16"), "rss"),
        (b'<!DOCTYPE rss [<!ENTITY x "y">]><rss/>', "rss"),
        (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>', "rss"),
        (b'<atom:feed xmlns:atom="http://www.w3.org/2005/Atom"/>', "atom"),
        (b'\n {"version": "https://jsonfeed.org/version/1.1", "items": []}', "jsonfeed"),
        (b"<!DOCTYPE html><html></html>", "page"),
        (b"", "page"),
    ],
)
def test_detect_kind_from_content(data: bytes, kind: str) -> None:
    assert detect_kind(data) == kind


# --- RSS 2.0 --------------------------------------------------------------------------


def test_rss_first_item_field_by_field() -> None:
    story = read("rss2.xml").stories[0]
    assert story.id == "wire-1"
    assert story.headline == "Markets & Money: Stocks Rally Again"
    assert story.section == "Business"  # " MARKETS " is the first category that maps
    assert story.url == "https://wire.example.org/1"
    assert story.published_at == datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
    assert story.author == "Ann Lee"
    assert story.image == Image(url="https://wire.example.org/1.jpg")
    assert story.source == "rss2.xml"
    assert story.is_lead is False
    # The javascript: link "bad" sat in a sentence that only points at links: it is gone.
    assert story.summary_html == (
        '<p>Shares <b>rose</b> &amp; fell.  <a href="https://wire.example.org/more" '
        'rel="noopener">more</a></p>'
    )
    assert story.summary == "Shares rose & fell. more"


def test_rss_bad_items_are_skipped_with_reasons_and_the_rest_kept() -> None:
    result = read("rss2.xml")
    assert [s.headline for s in result.stories] == [
        "Markets & Money: Stocks Rally Again",
        "Relative Link Resolved Against the Channel",
        "No Link, No Guid, No Category",
        "Long Summary Item",
    ]
    assert [(item.line, item.reason) for item in result.skipped] == [
        (
            19,
            ("item 2 ('Script Link Item') links to a javascript: URL; "
            "only http and https links are allowed"),
        ),
        (
            24,
            "item 3 ('Data Link Item') links to a data: URL; only http and https links are allowed",
        ),
        (28, "item 4 has no headline"),
        (
            32,
            ("item 5 ('Relative Link Resolved Against the Channel'): its date 'not a date' could "
            "not be read; the story is kept without a date"),
        ),
        (43, "item 7 duplicates item 1 (same id 'wire-1')"),
    ]
    assert all(item.source == "rss2.xml" for item in result.skipped)
    assert result.errors == []


def test_rss_relative_link_unparseable_date_and_media_content() -> None:
    story = read("rss2.xml").stories[1]
    assert story.url == "https://wire.example.org/2026/11/relative"
    assert story.id == story.url  # no guid: the link is the id
    assert story.published_at is None
    assert story.image == Image(url="https://wire.example.org/rel.png", width=640, height=360)
    assert story.section == "Wire"  # no item category: the channel's


def test_rss_item_without_link_guid_or_category() -> None:
    story = read("rss2.xml").stories[2]
    assert story.url is None
    assert story.id == story_id("Wire", "No Link, No Guid, No Category")
    assert story.summary == "Plain words only."
    assert story.summary_html is None  # no markup: plain text only
    assert story.image is None  # its only image is on ftp:


def test_long_summary_is_cut_at_a_word_boundary() -> None:
    story = read("rss2.xml").stories[3]
    full = (
        (FEEDS / "rss2.xml").read_text().split("<description>Lorem")[1].split("</description>")[0]
    )
    full = "Lorem" + full
    assert story.summary is not None
    assert len(story.summary) <= 300
    assert story.summary.endswith("…")
    kept = story.summary[:-1]
    assert full.startswith(kept)
    assert full[len(kept)] == " "
    assert story.section == "World"


def test_categories_without_a_configured_section_give_the_first_as_is() -> None:
    story = read("rss2.xml", section_map={}).stories[0]
    assert story.section == "unmapped tag"


def test_no_categories_anywhere_gives_news() -> None:
    data = b'<rss version="2.0"><channel><item><title>T</title><link>https://x.example.org/</link></item></channel></rss>'
    assert parse_feed(data, source="s", section_map={}).stories[0].section == "News"


def test_rss_declared_latin1_encoding_and_control_characters_in_titles() -> None:
    data = (
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><item>'
        b"<title>Caf\xe9 opens\r\nBcc: victim@example.org</title><link>https://x.example.org/c</link>"
        b"</item></channel></rss>"
    )
    story = parse_feed(data, source="s", section_map={}).stories[0]
    assert story.headline == "Café opens Bcc: victim@example.org"


def test_truncated_rss_keeps_the_complete_items() -> None:
    result = read("truncated.rss")
    assert [s.headline for s in result.stories] == ["First Complete Item"]
    assert reasons(result) == ["item 2 has no headline"]


def test_sample_newsroom_feed_for_the_quick_start() -> None:
    data = (REPO / "content" / "newsroom.rss").read_bytes()
    section_map = {
        **{
            name.casefold(): name
            for name in ["Politics", "World", "Business", "Lifestyle", "Technology"]
        },
        "tech": "Technology",
        "us politics": "Politics",
        "markets": "Business",
    }
    result = parse_feed(data, source="content/newsroom.rss", section_map=section_map)
    assert result.skipped == []
    assert len(result.stories) == 10
    assert {s.section for s in result.stories} == {
        "Technology",
        "Business",
        "World",
        "Politics",
        "Lifestyle",
    }
    assert all(
        s.url and s.url.startswith("https://news.example.org/2026/11/") for s in result.stories
    )
    assert all(
        s.published_at and (s.published_at.year, s.published_at.month) == (2026, 11)
        for s in result.stories
    )
    assert sum(s.image is not None for s in result.stories) >= 2
    assert all(s.summary_html and s.summary and s.author for s in result.stories)


# --- Atom 1.0 -------------------------------------------------------------------------


def test_atom_entries() -> None:
    result = read("atom.xml")
    first, second = result.stories
    assert first.id == "tag:atom.example.org,2026:1"
    assert first.headline == "Rovers & Landers"
    assert first.section == "Space"
    assert first.url == "https://atom.example.org/rovers"
    assert first.published_at == datetime(
        2026, 11, 1, 8, 0, tzinfo=UTC
    )  # published wins over updated
    assert first.author == "Zed Ortiz"
    assert first.image == Image(url="https://atom.example.org/rovers.png")
    assert first.summary_html == "<p>Two <em>new</em> missions.</p>"
    assert first.summary == "Two new missions."
    assert second.section == "Science"  # the feed's category
    assert second.published_at == datetime(2026, 11, 3, 8, 30, tzinfo=UTC)  # naive updated → UTC
    assert second.summary == "Plain <b> text summary & more."  # type="text" stays text
    assert second.summary_html is None
    assert reasons(result) == [
        "item 3 ('Mailto Link') links to a mailto: URL; only http and https links are allowed",
        ("item 2 ('Only Updated, Naive'): its date '2026-11-03T08:30:00' gives no time zone; "
        "it was read as UTC"),
    ]


# --- JSON Feed 1.1 --------------------------------------------------------------------


def test_json_feed_items() -> None:
    result = read("jsonfeed.json", section_map={"transport": "Transport & Travel"})
    first, second, third = result.stories
    assert first.id == "json-1"
    assert first.headline == "Harbour Bridge Reopens & Traffic Eases"
    assert first.section == "Transport & Travel"  # the first tag that maps, not the first tag
    assert first.published_at == datetime(2026, 11, 3, 19, 0, tzinfo=UTC)
    assert first.author == "Mia Chen"
    assert first.image == Image(url="https://json.example.org/1.jpg")
    assert first.summary_html == "<p>The bridge <strong>reopened</strong> at dawn.</p>"
    assert first.summary == "The bridge reopened at dawn."
    assert second.id == "2"
    assert second.section == "News"
    assert second.published_at == datetime(2026, 11, 4, 10, 30, tzinfo=UTC)  # modified, naive
    assert second.summary == "A short plain summary."
    assert second.summary_html is None
    assert second.author == "The Desk"  # the feed's author
    assert second.image is None  # its only image is WebP, which mail clients do not all show
    assert third.url == "https://elsewhere.example.org/6"
    assert third.published_at is None
    assert sorted(reasons(result)) == [
        ("item 2 ('Numeric Id and a Plain Summary'): its date '2026-11-04T10:30:00' gives no "
        "time zone; it was read as UTC"),
        "item 3 ('Bad Link') links to a javascript: URL; only http and https links are allowed",
        "item 4 is not a JSON object",
        "item 5 has no headline",
        ("item 6 ('External Only'): its date 'yesterday-ish' could not be read; the story is kept "
        "without a date"),
    ]


def test_json_feed_1_0_author() -> None:
    data = (
        b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": "a", "title": "T",'
        b' "url": "https://x.example.org/a", "author": {"name": "Old Style"}}]}'
    )
    assert parse_feed(data, source="s", section_map={}).stories[0].author == "Old Style"


# --- wholly unusable ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((FEEDS / "not-a-feed.xml").read_bytes(), "is not an RSS, Atom or JSON feed"),
        ((FEEDS / "binary.bin").read_bytes(), "is not an RSS, Atom or JSON feed"),
        (b"", "is empty"),
        (b"{not json", "is not valid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', 'no "items" list'),
        (b'{"version": "https://example.org/v9", "items": []}', "unknown JSON Feed version"),
        (b"{" * 100_000, "is not valid JSON"),
        (b'{"items": []}\xff', "is not valid JSON"),
    ],
)
def test_unusable_feeds_raise_one_parse_error(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse_feed(data, source="https://news.example.org/feed", section_map={})
    assert info.value.source == "https://news.example.org/feed"


def test_feedparser_is_never_handed_a_path_or_url() -> None:
    """Given bytes that spell a path, feedparser would open the file; we must not let it."""
    path = str(FEEDS / "rss2.xml").encode()
    with pytest.raises(ParseError):
        parse_feed(path, source="s", section_map={})
    with pytest.raises(ParseError):
        parse_feed(b"http://127.0.0.1:9/feed.xml", source="s", section_map={})


def test_an_empty_but_valid_feed_gives_no_stories_and_no_error() -> None:
    result = parse_feed(
        b'<rss version="2.0"><channel><title>x</title></channel></rss>', source="s", section_map={}
    )
    assert result.stories == [] and result.skipped == [] and result.errors == []


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1000))
def test_random_bytes_never_raise_anything_but_parse_error(data: bytes) -> None:
    try:
        parse_feed(data, source="fuzz", section_map={})
    except ParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(max_size=40),
    link=st.text(max_size=40),
    tag=st.one_of(st.text(max_size=10), st.integers(), st.none()),
    date=st.one_of(st.text(max_size=30), st.integers(), st.none()),
)
def test_json_items_of_any_shape_never_raise(
    title: str, link: str, tag: object, date: object
) -> None:
    import json

    item = {
        "id": title,
        "title": title,
        "url": link,
        "tags": [tag],
        "date_published": date,
        "image": link,
    }
    data = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "items": [item, title]}
    ).encode()
    result = parse_feed(data, source="fuzz", section_map={})
    for story in result.stories:
        assert story.url is None or story.url.startswith(("http://", "https://"))
        assert story.headline.strip()


# --- sanitising and cutting -----------------------------------------------------------


def test_sanitiser_allowlist() -> None:
    dirty = (
        '<div class="x"><p style="color:red">Hi <a href="https://a.example.org/" title="t">a</a> '
        '<a href="mailto:desk@example.org">m</a> <a href="/relative">r</a> <a href="vbscript:x">v</a>'
        "<em>e</em><strong>s</strong><i>i</i><b>b</b><br><u>u</u></p>"
        "<ul><li>one</li></ul><ol><li>two</li></ol><blockquote>q</blockquote>"
        "<img src=x onerror=alert(1)><script>alert(2)</script><style>p{}</style><!-- c --></div>"
    )
    assert sanitise_html(dirty) == (
        '<p>Hi <a href="https://a.example.org/" rel="noopener">a</a> '
        '<a href="mailto:desk@example.org" rel="noopener">m</a> r v'
        "<em>e</em><strong>s</strong><i>i</i><b>b</b><br>u</p>"
        "<ul><li>one</li></ul><ol><li>two</li></ol><blockquote>q</blockquote>"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "short"),
        ("x" * 300, "x" * 300),
        ("word " * 100, ("word " * 59).strip() + "…"),
        ("y" * 400, "y" * 299 + "…"),  # no space to cut at (CJK, URLs)
    ],
)
def test_shorten(text: str, expected: str) -> None:
    assert shorten(text) == expected
    assert len(shorten(text)) <= 300


@pytest.mark.parametrize(
    "data",
    [
        b"<!--a-->" * 5000 + b"!",
        b"<?x?>" * 10000,
        b"<!--" * 20000,
        b"<!DOCTYPE [" + b"[" * 30000,
        b'<rss version="2.0"><channel><item><title>'
        + b"<p " * 10000
        + b"</title></item></channel></rss>",
    ],
    ids=["comments", "declarations", "open-comments", "doctype", "unclosed-tags"],
)
def test_hostile_markup_is_handled_in_linear_time(data: bytes) -> None:
    """These once backtracked for minutes; they must now finish at once (a hang fails the run)."""
    try:
        parse_feed(data, source="hostile", section_map={})
    except ParseError:
        pass
    assert detect_kind(data) in ("page", "rss")
