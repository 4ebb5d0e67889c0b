"""feedparser's own test corpus (a licence-kept subset, tests/fixtures/feedparser/README.md)
read as digest reads a source: no crash, and nothing dangerous survives into a story."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import ParseError
from digest.models import Story
from digest.sources import detect_kind, parse_feed, parse_page
from digest.sources.entries import read_xml_feed
from digest.sources.items import SkipItem, item_to_story

CORPUS = Path(__file__).resolve().parent / "fixtures" / "feedparser"
FILES = sorted(p for p in CORPUS.rglob("*.xml") if p.is_file())
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
ALLOWED_TAGS = {"p", "a", "em", "strong", "b", "i", "br", "ul", "ol", "li", "blockquote"}
# What must never reach the email, in the HTML or in an address.
DANGEROUS = re.compile(
    r"<\s*/?\s*(?:script|iframe|object|embed|style|meta|link|form|img|svg|math|base)\b"
    r"|<[^>]*\son[a-z]+\s*=|(?:java|vb)script\s*:|data\s*:\s*text/html|expression\s*\(",
    re.IGNORECASE,
)


def test_the_corpus_is_there_with_its_licence() -> None:
    assert len(FILES) > 500
    assert "Redistribution and use in source and binary forms" in (
        CORPUS / "LICENSE"
    ).read_text(encoding="utf-8")


def read(path: Path) -> list[Story]:
    data = path.read_bytes()
    try:
        if detect_kind(data) == "page":
            return parse_page(data, source=path.name, as_of=AS_OF).stories
        return parse_feed(
            data, source=path.name, section_map={}, document_url="http://feeds.example.org/f"
        ).stories
    except ParseError as exc:
        assert str(exc).startswith(path.name) and "\n" not in str(exc)
        return []


def every_item(path: Path) -> list[Story]:
    """Each item as a story even when it has no title (most sanitizer tests have none)."""
    data = path.read_bytes()
    if detect_kind(data) not in ("rss", "atom"):
        return []
    try:
        feed = read_xml_feed(data, source=path.name, document_url="http://feeds.example.org/f")
    except ParseError:
        return []
    out = []
    for item in feed.items:
        item.title = item.title if item.title.strip() else "Untitled"
        try:
            out.append(item_to_story(item, source=path.name, section_map={},
                                     base_url=feed.base_url))
        except SkipItem:
            pass
    return out


def assert_safe(story: Story, where: str) -> None:
    html = story.summary_html or ""
    assert not DANGEROUS.search(html), (where, html)
    for match in re.finditer(r"<([a-zA-Z0-9]+)([^>]*)>", html):
        assert match.group(1).lower() in ALLOWED_TAGS, (where, match.group(0))
        assert match.group(2) == "" or match.group(1) == "a", (where, match.group(0))
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.startswith(("http://", "https://", "mailto:")), (where, href)
    for url in (story.url, story.image.url if story.image else None):
        assert url is None or url.startswith(("http://", "https://")), (where, url)
    for text in (story.headline, story.summary or "", story.author or ""):
        assert not re.search(r"(?:java|vb)script\s*:", text, re.IGNORECASE), (where, text)
        assert "\ufffe" not in text and "\uffff" not in text


@pytest.mark.parametrize(
    "group", sorted({p.relative_to(CORPUS).parent.as_posix() for p in FILES})
)
def test_the_corpus_reads_without_a_crash_or_a_dangerous_survivor(group: str) -> None:
    files = [p for p in FILES if p.relative_to(CORPUS).parent.as_posix() == group]
    stories = 0
    for path in files:
        for story in read(path) + every_item(path):
            assert_safe(story, str(path.relative_to(CORPUS)))
            stories += 1
    # Entities and & tests are about channel titles or bare "&" titles: no story comes out.
    assert stories > 0 or group in ("entities", "wellformed/amp", "illformed/chardet")


def test_sanitizer_cases_keep_their_safe_text() -> None:
    """The sanitizer files say what the safe remainder is; digest keeps it too."""
    path = CORPUS / "wellformed" / "sanitize" / "item_description_script.xml"
    (story,) = every_item(path)
    assert story.summary == "safe description"
