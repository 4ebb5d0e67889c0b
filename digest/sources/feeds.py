"""RSS 2.0, RSS 1.0, Atom 1.0 and JSON Feed read from bytes into Story records.

RSS and Atom go through feedparser, always as an in-memory stream: given a string,
feedparser would open local files or URLs itself, with no timeout. feedparser 6.0
does not read JSON Feed, so :mod:`digest.sources.jsonfeed` does.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import feedparser

from digest.errors import ParseError
from digest.models import SkippedItem, SourceResult
from digest.sources.items import FeedItem, ImageRef, SkipItem, item_to_story, to_int
from digest.sources.jsonfeed import read_json_feed

__all__ = ["Kind", "detect_kind", "parse_feed"]

Kind = Literal["page", "rss", "atom", "jsonfeed"]

_XML_NAME = re.compile(r"[\w.:-]+")
_SNIFF_BYTES = 65536
_IMAGE_PATH = re.compile(r"\.(?:jpe?g|png|gif|webp|avif)(?:[?#]|$)", re.IGNORECASE)
# Per-item failures that mean "this item's data has an odd shape", not a bug in digest.
_ITEM_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError)


def detect_kind(data: bytes) -> Kind:
    """Tell a feed from an article page by its content (never by name or Content-Type).

    ``{`` starts a JSON Feed; an XML root ``rss`` or ``rdf:RDF`` is RSS, ``feed`` is
    Atom; anything else is read as an article page.
    """
    head = _sniff_text(data)
    stripped = head.lstrip()
    if stripped.startswith("{"):
        return "jsonfeed"
    root = _root_element(stripped)
    if root:
        root = root.rsplit(":", 1)[-1].casefold()
        if root in ("rss", "rdf"):
            return "rss"
        if root == "feed":
            return "atom"
    return "page"


def _root_element(text: str) -> str | None:
    """The name of the first element, past any XML declaration, comments and DOCTYPE.

    A plain scan rather than one regular expression: a regex with lazy groups backtracks
    catastrophically on hostile input such as thousands of comments and no root.
    """
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith("<?", pos):
            pos = _after(text, "?>", pos + 2)
        elif text.startswith("<!--", pos):
            pos = _after(text, "-->", pos + 4)
        elif text[pos : pos + 9].upper() == "<!DOCTYPE":
            close = text.find(">", pos)
            subset = text.find("[", pos, close if close != -1 else len(text))
            if subset != -1:
                close = text.find(">", _after(text, "]", subset))
            pos = -1 if close == -1 else close + 1
        elif text.startswith("<", pos):
            match = _XML_NAME.match(text, pos + 1)
            return match.group(0) if match else None
        else:
            return None
        if pos < 0:
            return None


def _after(text: str, marker: str, start: int) -> int:
    """The position just after ``marker`` at or after ``start``, or -1 if it never comes."""
    found = text.find(marker, start) if start >= 0 else -1
    return -1 if found == -1 else found + len(marker)


def _sniff_text(data: bytes) -> str:
    head = data[:_SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def parse_feed(data: bytes, *, source: str, section_map: Mapping[str, str]) -> SourceResult:
    """Parse an RSS, Atom or JSON feed into stories; broken items are skipped and listed.

    :raises ParseError: when the bytes are not a feed at all.
    """
    kind = detect_kind(data)
    if kind == "jsonfeed":
        items, feed_categories, base_url, skipped = read_json_feed(data, source=source)
    elif kind == "page" and not data.strip():
        raise ParseError(f"{source} is empty; expected an RSS, Atom or JSON feed.", source=source)
    else:
        items, feed_categories, base_url, skipped = _read_xml_feed(data, source=source)
    result = SourceResult(skipped=list(skipped))
    seen: dict[str, int] = {}
    for item in items:
        try:
            story = item_to_story(
                item,
                source=source,
                section_map=section_map,
                feed_categories=feed_categories,
                base_url=base_url,
            )
        except SkipItem as exc:
            result.skipped.append(SkippedItem(source, None, str(exc)))
            continue
        except _ITEM_ERRORS as exc:
            reason = f"item {item.index} could not be read ({type(exc).__name__}: {exc})"
            result.skipped.append(SkippedItem(source, None, reason))
            continue
        if story.id in seen:
            reason = (
                f"item {item.index} duplicates item {seen[story.id]} (same id {story.id[:80]!r})"
            )
            result.skipped.append(SkippedItem(source, None, reason))
            continue
        seen[story.id] = item.index
        result.stories.append(story)
    return result


def _read_xml_feed(
    data: bytes, *, source: str
) -> tuple[list[FeedItem], list[str], str | None, list[SkippedItem]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = feedparser.parse(io.BytesIO(data))
    except Exception as exc:  # feedparser's own failures are not part of any contract
        raise ParseError(f"{source} could not be read as a feed ({exc}).", source=source) from exc
    if not parsed.get("version") and not parsed.get("entries"):
        problem = parsed.get("bozo_exception")
        detail = f" ({str(problem)[:120]})" if problem else ""
        raise ParseError(
            f"{source} is not an RSS, Atom or JSON feed{detail}; check the file or address.",
            source=source,
        )
    feed = parsed.get("feed", {})
    feed_categories = [_term(tag) for tag in feed.get("tags", []) or []]
    base = feed.get("link") if isinstance(feed.get("link"), str) else None
    items: list[FeedItem] = []
    skipped: list[SkippedItem] = []
    for index, entry in enumerate(parsed.get("entries", []), 1):
        try:
            items.append(_from_entry(index, entry))
        except _ITEM_ERRORS as exc:
            reason = f"item {index} could not be read ({type(exc).__name__}: {exc})"
            skipped.append(SkippedItem(source, None, reason))
    return items, [c for c in feed_categories if c], base, skipped


def _from_entry(index: int, entry: Mapping[str, Any]) -> FeedItem:
    summary_html: str | None = None
    summary_text: str | None = None
    detail = entry.get("summary_detail") or {}
    value = entry.get("summary")
    if not value and entry.get("content"):
        detail = entry["content"][0]
        value = detail.get("value")
    if value:
        if "html" in str(detail.get("type", "text/html")):
            summary_html = value
        else:
            summary_text = value
    author_detail = entry.get("author_detail") or {}
    return FeedItem(
        index=index,
        title=entry.get("title") or "",
        link=entry.get("link"),
        guid=entry.get("id"),
        categories=[_term(tag) for tag in entry.get("tags", []) or []],
        published=_struct_time(entry.get("published_parsed")),
        updated=_struct_time(entry.get("updated_parsed")),
        summary_html=summary_html,
        summary_text=summary_text,
        images=_images(entry),
        author=author_detail.get("name") or entry.get("author"),
    )


def _term(tag: Mapping[str, Any]) -> str:
    return str(tag.get("term") or tag.get("label") or "").strip()


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _images(entry: Mapping[str, Any]) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for media in entry.get("media_content", []) or []:
        if _is_image(media.get("url"), media.get("type"), media.get("medium")):
            refs.append(_ref(media.get("url"), media))
    for link in entry.get("links", []) or []:
        if link.get("rel") == "enclosure" and _is_image(link.get("href"), link.get("type"), None):
            refs.append(_ref(link.get("href"), link))
    for thumb in entry.get("media_thumbnail", []) or []:
        refs.append(_ref(thumb.get("url"), thumb))
    return [ref for ref in refs if ref.url]


def _is_image(url: Any, mime: Any, medium: Any) -> bool:
    """An image by its medium or MIME type, else (neither given) by the URL's extension."""
    if medium or mime:
        return medium == "image" or str(mime or "").startswith("image/")
    return bool(_IMAGE_PATH.search(str(url or "")))


def _ref(url: Any, attrs: Mapping[str, Any]) -> ImageRef:
    return ImageRef(
        url=str(url or ""),
        width=to_int(attrs.get("width")),
        height=to_int(attrs.get("height")),
    )
