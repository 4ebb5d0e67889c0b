"""JSON Feed 1.0 and 1.1 read with the json module (feedparser 6.0 does not know the format).

JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/): ``title``, ``summary`` and
``content_text`` are plain text and stay so (nothing shaped like a tag is removed); only
``content_html`` is HTML. One concession to real feeds: character references in a title
(``&amp;``, ``&#8217;``, as WordPress writes them) are decoded.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from digest.errors import ParseError
from digest.models import SkippedItem
from digest.sources.charsets import decode_text
from digest.sources.dates import read_date
from digest.sources.images import ImageRef
from digest.sources.items import FeedItem, to_int

__all__ = ["JsonFeed", "read_json_feed"]


@dataclass(slots=True)
class JsonFeed:
    """A JSON Feed's items, its ``home_page_url`` (the base for relative links) and the
    items that were not objects."""

    items: list[FeedItem] = field(default_factory=list)
    base_url: str | None = None
    skipped: list[SkippedItem] = field(default_factory=list)


def read_json_feed(data: bytes, *, source: str, charset: str | None = None) -> JsonFeed:
    """Read a JSON Feed into neutral items.

    :raises ParseError: when the bytes are not JSON or not a JSON Feed object with items.
    """
    text = decode_text(data, source=source, declared=charset).text
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(
            f"{source} is not valid JSON ({exc}); expected a JSON Feed.", source=source
        ) from exc
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise ParseError(
            f'{source} is JSON but not a JSON Feed (no "items" list); check the address.',
            source=source,
        )
    version = document.get("version")
    if version is not None and not str(version).startswith("https://jsonfeed.org/version/"):
        raise ParseError(
            f"{source} has an unknown JSON Feed version {str(version)[:60]!r}.", source=source
        )
    base = document.get("home_page_url") if isinstance(document.get("home_page_url"), str) else None
    feed_authors = _authors(document)
    items: list[FeedItem] = []
    skipped: list[SkippedItem] = []
    for index, raw in enumerate(document["items"], 1):
        if not isinstance(raw, dict):
            skipped.append(SkippedItem(source, None, f"item {index} is not a JSON object"))
            continue
        items.append(_item(index, raw, feed_authors))
    return JsonFeed(items, base, skipped)


def _item(index: int, raw: dict[str, Any], feed_authors: list[str]) -> FeedItem:
    content_html = _text(raw.get("content_html"))
    summary = _text(raw.get("summary"))
    content_text = _text(raw.get("content_text"))
    raw_tags = raw.get("tags")
    tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
    authors = _authors(raw) or feed_authors
    guid = raw.get("id")
    date = read_date(_text(raw.get("date_published")) or _text(raw.get("date_modified")))
    return FeedItem(
        index=index,
        title=html.unescape(_text(raw.get("title")) or ""),
        link=_text(raw.get("url")) or _text(raw.get("external_url")),
        guid=str(guid) if isinstance(guid, str | int) and not isinstance(guid, bool) else None,
        categories=[tag for tag in tags if isinstance(tag, str)],
        published=date.moment,
        date_problem=date.problem,
        # The spec's "summary" is plain text; the HTML content is sanitised and kept as well.
        summary_html=content_html if not summary else None,
        summary_text=summary or content_text,
        images=_images(raw),
        author=authors[0] if authors else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _authors(obj: dict[str, Any]) -> list[str]:
    people = obj.get("authors")
    if not isinstance(people, list):
        people = [obj.get("author")]  # JSON Feed 1.0
    return [p["name"] for p in people if isinstance(p, dict) and _text(p.get("name"))]


def _images(raw: dict[str, Any]) -> list[ImageRef]:
    refs = [
        ImageRef(url, kind="image") for key in ("image", "banner_image")
        if (url := _text(raw.get(key)))
    ]
    raw_attachments = raw.get("attachments")
    attachments: list[Any] = raw_attachments if isinstance(raw_attachments, list) else []
    for attachment in attachments:
        if not isinstance(attachment, dict):
            continue
        mime, url = str(attachment.get("mime_type", "")), _text(attachment.get("url"))
        if url and mime.startswith("image/"):
            size = to_int(attachment.get("width")), to_int(attachment.get("height"))
            refs.append(ImageRef(url, *size, mime=mime.lower(), kind="enclosure"))
    return refs
