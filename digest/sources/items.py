"""Feed items in one neutral shape, and their conversion into Story records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

from digest.models import Story, story_id
from digest.sources.images import ImageRef, choose_image
from digest.sources.markup import summarise_html
from digest.sources.text import (
    clean_headline,
    clean_text,
    is_http_url,
    link_scheme,
    map_section,
    shorten,
)

__all__ = [
    "CLOCK_SKEW",
    "FeedItem",
    "ImageRef",
    "SkipItem",
    "aware",
    "item_to_story",
    "to_int",
]

DEFAULT_SECTION = "News"
# How far ahead of the time of reading a date may be before it is a mistake, not clock skew.
CLOCK_SKEW = timedelta(minutes=15)
_MAX_DIMENSION = 20_000


class SkipItem(Exception):
    """Raised inside the feed stage when one item cannot become a story; the text says why."""


@dataclass(slots=True)
class FeedItem:
    """What RSS, Atom and JSON Feed items have in common, as read from the feed.

    ``title_is_markup`` is True only when the format marks the title as HTML (Atom
    ``type="html"``/``"xhtml"``, an RSS title feedparser finds markup in); a plain title
    keeps every character. ``line`` is where the item starts in the document (1-based) when
    known (``end_line`` where it ends). ``date_problem`` says why ``published`` is missing or what was assumed of it.
    """

    index: int
    title: str = ""
    title_is_markup: bool = False
    link: str | None = None
    guid: str | None = None
    categories: list[str] = field(default_factory=list)
    published: datetime | None = None
    date_problem: str | None = None
    summary_html: str | None = None
    summary_text: str | None = None
    images: list[ImageRef] = field(default_factory=list)
    author: str | None = None
    line: int | None = None
    end_line: int | None = None


def headline_of(item: FeedItem) -> str:
    """The item's headline as plain text (markup titles de-tagged, plain ones kept)."""
    return clean_headline(item.title) if item.title_is_markup else clean_text(item.title)


def item_to_story(
    item: FeedItem,
    *,
    source: str,
    section_map: Mapping[str, str],
    feed_categories: Sequence[str] = (),
    base_url: str | None = None,
) -> Story:
    """Turn one feed item into a Story.

    :raises SkipItem: when the item has no headline or its link is not http(s).
    """
    headline = headline_of(item)
    if not any(ch.isalnum() for ch in headline):
        raise SkipItem(f"item {item.index} has no headline")
    url = _story_url(item, headline, base_url)
    section = choose_section(item.categories, feed_categories, section_map)
    sanitised, text = summarise_html(item.summary_html) if item.summary_html else ("", "")
    # With no markup left, the plain text says it all.
    summary_html = sanitised if "<" in sanitised else ""
    summary = clean_text(item.summary_text or "") or clean_text(text)
    guid = (item.guid or "").strip()
    author = clean_text(item.author or "")
    return Story(
        id=guid or url or story_id(section, headline),
        section=section,
        headline=headline,
        url=url,
        summary=shorten(summary) if summary else None,
        summary_html=summary_html or None,
        image=choose_image(item.images, base_url=base_url),
        author=author or None,
        published_at=item.published,
        source=source,
    )


def choose_section(
    categories: Sequence[str], feed_categories: Sequence[str], section_map: Mapping[str, str]
) -> str:
    """The first category that maps to a configured section, else the first, else the feed's."""
    names = [c.strip() for c in categories if c and c.strip()]
    for name in names:
        if name.casefold() in section_map:
            return map_section(name, section_map)
    if names:
        return map_section(names[0], section_map)
    feed_names = [c.strip() for c in feed_categories if c and c.strip()]
    return map_section(feed_names[0], section_map) if feed_names else DEFAULT_SECTION


def _story_url(item: FeedItem, headline: str, base_url: str | None) -> str | None:
    link = (item.link or "").strip()
    if not link:
        return None
    scheme = link_scheme(link)
    if not scheme and base_url and is_http_url(base_url):
        try:
            link = urljoin(base_url, link)
        except ValueError:
            pass
        scheme = link_scheme(link)
    if scheme in ("http", "https") and is_http_url(link):
        return link
    if not scheme:
        raise SkipItem(
            f"item {item.index} ({headline[:60]!r}) has a relative link {link[:80]!r} "
            "and the feed gives no address to resolve it against"
        )
    raise SkipItem(
        f"item {item.index} ({headline[:60]!r}) links to a {scheme}: URL; "
        "only http and https links are allowed"
    )


def to_int(value: object) -> int | None:
    """A positive pixel size from an attribute such as ``"640"``; None when absent or absurd."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= _MAX_DIMENSION else None


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC; a naive value is taken as UTC already."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
