"""RSS 2.0, RSS 1.0, Atom 1.0 and JSON Feed read from bytes into Story records.

RSS and Atom are read by :mod:`digest.sources.entries` (feedparser, on bytes we decoded);
feedparser 6.0 does not read JSON Feed, so :mod:`digest.sources.jsonfeed` does. Here the
items become stories, and everything the reader should know is reported in ``skipped``
with the item's line where known: items left out and why, and items kept with a repair
(bytes or character references replaced, a date with no zone, a date in the future).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from digest.errors import ParseError
from digest.models import SkippedItem, SourceResult, Story
from digest.sources.charsets import sniff_text
from digest.sources.entries import ITEM_ERRORS, XmlFeed, read_xml_feed
from digest.sources.items import CLOCK_SKEW, FeedItem, SkipItem, headline_of, item_to_story
from digest.sources.jsonfeed import read_json_feed

__all__ = ["Kind", "detect_kind", "parse_feed"]

Kind = Literal["page", "rss", "atom", "jsonfeed"]

_XML_NAME = re.compile(r"[\w.:-]+")
_SNIFF_BYTES = 65536
_REPORTED = 20  # at most this many lines or items named in one repair report


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
    return sniff_text(data[:_SNIFF_BYTES])


def parse_feed(
    data: bytes,
    *,
    source: str,
    section_map: Mapping[str, str],
    document_url: str | None = None,
    charset: str | None = None,
    as_of: datetime | None = None,
) -> SourceResult:
    """Parse an RSS, Atom or JSON feed into stories; broken items are skipped and listed.

    :param document_url: the address the feed was fetched from (after redirects): the base
        for its relative links. Without it the channel's link is used.
    :param charset: the charset the server declared in ``Content-Type``, if any.
    :param as_of: the time of reading; a story dated more than :data:`CLOCK_SKEW` after
        it is kept, marked ``future_dated`` and reported. Default: now.
    :raises ParseError: when the bytes are not a feed at all.
    """
    kind = detect_kind(data)
    if kind == "jsonfeed":
        json_feed = read_json_feed(data, source=source, charset=charset)
        items, categories, base_url = json_feed.items, [], document_url or json_feed.base_url
        result = SourceResult(skipped=list(json_feed.skipped))
    elif kind == "page" and not data.strip():
        raise ParseError(f"{source} is empty; expected an RSS, Atom or JSON feed.", source=source)
    else:
        xml = read_xml_feed(data, source=source, document_url=document_url, charset=charset)
        items, categories, base_url = xml.items, xml.categories, xml.base_url
        result = SourceResult(
            skipped=[SkippedItem(source, line, reason) for _, line, reason in xml.unreadable]
        )
        result.skipped.extend(_decoding_report(xml, source))
    now = as_of.astimezone(UTC) if as_of is not None else datetime.now(UTC)
    seen: dict[str, int] = {}
    no_zone: list[FeedItem] = []
    for item in items:
        try:
            story = item_to_story(
                item,
                source=source,
                section_map=section_map,
                feed_categories=categories,
                base_url=base_url,
            )
        except SkipItem as exc:
            result.skipped.append(SkippedItem(source, item.line, str(exc)))
            continue
        except ITEM_ERRORS as exc:
            reason = f"item {item.index} could not be read ({type(exc).__name__}: {exc})"
            result.skipped.append(SkippedItem(source, item.line, reason))
            continue
        if story.id in seen:
            reason = (
                f"item {item.index} duplicates item {seen[story.id]} (same id {story.id[:80]!r})"
            )
            result.skipped.append(SkippedItem(source, item.line, reason))
            continue
        seen[story.id] = item.index
        story = _check_date(item, story, now, result.skipped, no_zone)
        result.stories.append(story)
    if no_zone:
        result.skipped.append(_no_zone_report(no_zone, source))
    return result


def _name(item: FeedItem) -> str:
    headline = headline_of(item)
    return f"item {item.index} ({headline[:60]!r})" if headline else f"item {item.index}"


def _check_date(
    item: FeedItem,
    story: Story,
    now: datetime,
    skipped: list[SkippedItem],
    no_zone: list[FeedItem],
) -> Story:
    """Report an unreadable date (the story stays, undated) or one in the future (the
    story stays with its date, marked so it cannot lead as "just now")."""
    if item.date_problem and story.published_at is None:
        reason = f"{_name(item)}: {item.date_problem}; the story is kept without a date"
        skipped.append(SkippedItem(story.source, item.line, reason))
    elif item.date_problem:
        no_zone.append(item)
    published = story.published_at
    if published is not None and published > now + CLOCK_SKEW:
        ahead = _duration(published - now)
        reason = (
            f"{_name(item)} is dated {published:%Y-%m-%d %H:%M} UTC, {ahead} after the time "
            "of reading; it is kept with that date but never leads an edition unless forced"
        )
        skipped.append(SkippedItem(story.source, item.line, reason))
        return dataclasses.replace(story, future_dated=True)
    return story


def _duration(delta: object) -> str:
    seconds = int(delta.total_seconds())  # type: ignore[attr-defined]
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    return f"{max(1, seconds // 60)} minutes"


def _no_zone_report(items: list[FeedItem], source: str) -> SkippedItem:
    first = items[0]
    if len(items) == 1:
        reason = f"{_name(first)}: {first.date_problem}; it was read as UTC"
    else:
        reason = (
            f"{len(items)} items give dates with no time zone (the first is {_name(first)}: "
            f"{first.date_problem}); they were read as UTC"
        )
    return SkippedItem(source, first.line, reason)


def _decoding_report(xml: XmlFeed, source: str) -> list[SkippedItem]:
    """What decoding changed, per item where the item is known, else per line."""
    decoded = xml.decoded
    report: list[SkippedItem] = []
    if decoded is not None and decoded.note and not decoded.repairs:
        report.append(SkippedItem(source, None, f"{decoded.note} (nothing was dropped)"))
    if not xml.repairs:
        return report
    note = (decoded.note if decoded is not None and decoded.repairs else None) or (
        "characters that are not allowed in XML were replaced with \ufffd"
    )
    if xml.bad_references:
        refs = ", ".join(xml.bad_references[:3])
        note = f"character references that name no character ({refs}) were replaced with \ufffd"
        if decoded is not None and decoded.repairs:
            note = f"{decoded.note}, and {note}"
    lines = sorted(xml.repairs, key=lambda r: r.line)
    for repair in lines[:_REPORTED]:
        owners = [i for i in xml.items if i.line and i.end_line and i.line <= repair.line <= i.end_line]
        where = f"{_name(owners[0])}: " if len(owners) == 1 else ""
        count = "" if repair.count == 1 else f" ({repair.count} characters)"
        reason = f"{where}{note} on this line{count}; the rest was kept"
        report.append(SkippedItem(source, repair.line, reason))
    if len(lines) > _REPORTED:
        report.append(SkippedItem(source, None, f"{note} on {len(lines) - _REPORTED} more lines"))
    return report
