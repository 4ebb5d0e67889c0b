"""RSS and Atom documents read through feedparser into neutral :class:`FeedItem` records.

The bytes are decoded here (:mod:`digest.sources.charsets`) and handed to feedparser as
clean UTF-8, always as an in-memory stream: given a string, feedparser would open local
files or URLs itself, with no timeout. The address the feed was fetched from goes in as
``Content-Location`` so feedparser resolves relative links against it (RFC 3986 section
5.1; ``xml:base`` still wins where present). :mod:`digest.sources.feedscan` adds what
feedparser drops: line numbers, media titles and descriptions, and which text is a caption.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import feedparser  # type: ignore[import-untyped]

from digest.errors import ParseError
from digest.sources.charsets import Decoded, Repair, decode_xml, xml_for_parser
from digest.sources.dates import read_date
from digest.sources.feedscan import MediaRef, ScannedItem, scan_feed
from digest.sources.images import ImageRef, alt_text
from digest.sources.items import FeedItem, to_int
from digest.sources.markup import markup_to_text
from digest.sources.text import is_http_url

__all__ = ["XmlFeed", "read_xml_feed"]

_MARKUP_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
_IMAGE_PATH = re.compile(r"\.(?:jpe?g|jpe|png|gif|webp|avif|bmp|svg)(?:[?#]|$)", re.IGNORECASE)
_WORDS = re.compile(r"[^\W_]+")
# Per-item failures that mean "this item's data has an odd shape", not a bug in digest.
ITEM_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError)


@dataclass(slots=True)
class XmlFeed:
    """What an RSS or Atom document gave: items, the feed's categories, the base URL for
    relative links, how the bytes were decoded, character references that were replaced,
    and items that could not be read at all (``(index, line, reason)``)."""

    items: list[FeedItem] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    base_url: str | None = None
    decoded: Decoded | None = None
    repairs: tuple[Repair, ...] = ()
    bad_references: list[str] = field(default_factory=list)
    unreadable: list[tuple[int, int | None, str]] = field(default_factory=list)


def read_xml_feed(
    data: bytes, *, source: str, document_url: str | None = None, charset: str | None = None
) -> XmlFeed:
    """Decode and parse an RSS or Atom document.

    :param document_url: the address the bytes came from (after redirects), if fetched.
    :param charset: the charset the server declared, if any.
    :raises ParseError: when the bytes are not a feed at all, or not decodable.
    """
    decoded = decode_xml(data, source=source, declared=charset)
    clean, repairs, bad_references = xml_for_parser(decoded.text)
    headers = {"content-type": "application/xml; charset=utf-8"}
    if document_url:
        headers["content-location"] = document_url
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = feedparser.parse(io.BytesIO(clean), response_headers=headers)
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
    link = feed.get("link") if isinstance(feed.get("link"), str) else None
    base = document_url or (link if link and is_http_url(link) else None)
    entries = list(parsed.get("entries", []))
    scanned = _align(scan_feed(clean, base_url=base).items, entries)
    result = XmlFeed(
        categories=[c for c in (_term(tag) for tag in feed.get("tags", []) or []) if c],
        base_url=base,
        decoded=decoded,
        repairs=decoded.repairs + repairs,
        bad_references=bad_references,
    )
    for index, (entry, scan) in enumerate(zip(entries, scanned, strict=True), 1):
        try:
            result.items.append(_from_entry(index, entry, scan))
        except ITEM_ERRORS as exc:
            reason = f"item {index} could not be read ({type(exc).__name__}: {exc})"
            result.unreadable.append((index, scan.line if scan else None, reason))
    return result


def _align(scanned: list[ScannedItem], entries: list[Any]) -> list[ScannedItem | None]:
    """Scanned items matched to feedparser's entries by position.

    All of them when the counts agree; when the scan stopped early, those whose titles
    agree; otherwise none (the items are still read, without lines and media details).
    """
    if len(scanned) == len(entries):
        return list(scanned)
    aligned: list[ScannedItem | None] = [None] * len(entries)
    for index, (scan, entry) in enumerate(zip(scanned, entries, strict=False)):
        if _key(scan.title) != _key(str(entry.get("title") or "")):
            break
        aligned[index] = scan
    return aligned


def _from_entry(index: int, entry: Mapping[str, Any], scan: ScannedItem | None) -> FeedItem:
    summary_html, summary_text = _summary(entry, scan)
    title_detail = entry.get("title_detail") or {}
    published = entry.get("published"), entry.get("published_parsed")
    if not published[0] and not published[1]:
        published = entry.get("updated"), entry.get("updated_parsed")
    date = read_date(*published)
    author_detail = entry.get("author_detail") or {}
    return FeedItem(
        index=index,
        title=entry.get("title") or "",
        title_is_markup=str(title_detail.get("type", "")).lower() in _MARKUP_TYPES,
        link=entry.get("link"),
        guid=entry.get("id"),
        categories=[_term(tag) for tag in entry.get("tags", []) or []],
        published=date.moment,
        date_problem=date.problem,
        summary_html=summary_html,
        summary_text=summary_text,
        images=_scanned_images(scan) if scan is not None else _feedparser_images(entry),
        author=author_detail.get("name") or entry.get("author"),
        line=scan.line if scan is not None else None,
        end_line=scan.end_line if scan is not None else None,
    )


def _summary(entry: Mapping[str, Any], scan: ScannedItem | None) -> tuple[str | None, str | None]:
    """The article text as ``(html, text)``: the description or summary, else the content.

    feedparser files a ``media:description`` (a photo caption) as the summary or content;
    text equal to a caption is passed over, and used only when the item has no article
    text and the description is not an image's caption.
    """
    candidates: list[tuple[str, str]] = []
    if entry.get("summary"):
        detail = entry.get("summary_detail") or {}
        candidates.append((entry["summary"], str(detail.get("type") or "text/html")))
    for content in entry.get("content", []) or []:
        if content.get("value"):
            candidates.append((content["value"], str(content.get("type") or "text/html")))
    chosen: tuple[str, str] | None = candidates[0] if candidates else None
    if scan is not None and candidates:
        captions = {_key(text) for text in scan.captions}
        article = [c for c in candidates if _key(c[0]) not in captions]
        allowed = {_key(text) for text in scan.media_summaries}
        fallback = [c for c in candidates if _key(c[0]) in allowed]
        chosen = (article or fallback)[0] if article or fallback else None
    if chosen is None:
        return None, None
    value, kind = chosen
    return (value, None) if "html" in kind.lower() else (None, value)


def _scanned_images(scan: ScannedItem) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for media in scan.media:
        if not _is_image(media.url, media.mime, media.medium, media.kind):
            continue
        refs.append(
            ImageRef(
                url=media.url,
                width=to_int(media.width),
                height=to_int(media.height),
                alt=alt_text(
                    (media.description, media.description_type),
                    (media.title, media.title_type),
                    url=media.url,
                ),
                mime=media.mime,
                kind=media.kind,
                is_default=media.is_default,
                label=media.title or "",
            )
        )
    return refs


def _feedparser_images(entry: Mapping[str, Any]) -> list[ImageRef]:
    """Images from feedparser's own fields, for a document the scan could not follow."""
    media_refs: list[MediaRef] = []
    for media in entry.get("media_content", []) or []:
        media_refs.append(_media_ref(media.get("url"), "content", media))
    for link in entry.get("links", []) or []:
        if link.get("rel") == "enclosure":
            media_refs.append(_media_ref(link.get("href"), "enclosure", link))
    for thumb in entry.get("media_thumbnail", []) or []:
        media_refs.append(_media_ref(thumb.get("url"), "thumbnail", thumb))
    return _scanned_images(ScannedItem(line=0, media=[m for m in media_refs if m.url]))


def _media_ref(url: Any, kind: str, attrs: Mapping[str, Any]) -> MediaRef:
    return MediaRef(
        url=str(url or ""),
        kind=kind,  # type: ignore[arg-type]
        mime=(str(attrs.get("type") or "").lower() or None),
        medium=(str(attrs.get("medium") or "").lower() or None),
        width=attrs.get("width"),
        height=attrs.get("height"),
    )


def _is_image(url: str, mime: str | None, medium: str | None, kind: str) -> bool:
    """An image by its medium or MIME type, else (neither given) by the URL's extension."""
    if kind == "thumbnail":
        return True
    if medium or mime:
        return medium == "image" or (mime or "").startswith("image/")
    return bool(_IMAGE_PATH.search(url))


def _term(tag: Mapping[str, Any]) -> str:
    return str(tag.get("term") or tag.get("label") or "").strip()


def _key(text: str) -> str:
    """Text compared loosely: markup removed, words only, case folded."""
    return " ".join(_WORDS.findall(markup_to_text(text).casefold()))
