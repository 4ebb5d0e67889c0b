"""A light second pass over an RSS or Atom document for what feedparser does not keep.

feedparser gives no line numbers, drops ``media:title`` inside ``media:content`` and files a
photo's ``media:description`` as the entry's summary or content. This pass (expat, the
parser feedparser itself uses) records for each ``item`` / ``entry``, in document order:

- the lines it starts and ends on, so a report can say where an item is;
- its images and enclosures (Media RSS 1.5.1 ``media:content``, ``media:group``,
  ``media:thumbnail``; RSS 2.0 ``enclosure``; Atom ``link rel="enclosure"``) with the
  nearest ``media:title`` / ``media:description`` (the media object's own, else its
  group's, else the item's: Media RSS section "Optional Elements"), relative URLs resolved
  against ``xml:base`` and the document's address;
- every ``media:description`` / ``media:title`` text, to tell a caption from the article.

The document is the one handed to feedparser, with bare ``&`` and HTML entity names
escaped for this pass only, so the common well-formedness errors do not stop it. A
document expat still refuses gives the items closed before the error (``complete`` False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.entities import html5
from typing import Literal
from urllib.parse import urljoin
from xml.parsers import expat

__all__ = ["MediaRef", "ScanResult", "ScannedItem", "scan_feed"]

_MEDIA_NS = frozenset({"http://search.yahoo.com/mrss/", "http://search.yahoo.com/mrss"})
_ATOM_NS = frozenset({"http://www.w3.org/2005/Atom", "http://purl.org/atom/ns#"})
_XML_BASE = "http://www.w3.org/XML/1998/namespace base"
_ITEM_NAMES = frozenset({"item", "entry"})
# Keep the five XML entities and character references; HTML entity names become character
# references, and every other "&" is escaped (for this pass only).
_LOOSE_AMP = re.compile(
    rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,8}|#[xX][0-9A-Fa-f]{1,8});)([A-Za-z][A-Za-z0-9]{0,31};)?"
)
_TEXT_LIMIT = 2000

MediaKind = Literal["content", "thumbnail", "enclosure"]


@dataclass(slots=True)
class MediaRef:
    """One media object of an item as the feed declares it (URL absolute when resolvable)."""

    url: str
    kind: MediaKind
    mime: str | None = None
    medium: str | None = None
    width: str | None = None
    height: str | None = None
    title: str | None = None
    title_type: str | None = None
    description: str | None = None
    description_type: str | None = None
    is_default: bool = False
    in_group: bool = False


@dataclass(slots=True)
class ScannedItem:
    """An item's lines, media, and the media titles and descriptions met inside it."""

    line: int
    end_line: int = 0
    title: str = ""
    media: list[MediaRef] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    # Descriptions that describe the item's media as a whole (item level, or a group or
    # media object that is not an image): these may stand in for a missing summary.
    media_summaries: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ScanResult:
    """The items in document order; ``complete`` is False when expat stopped early."""

    items: list[ScannedItem] = field(default_factory=list)
    complete: bool = True


@dataclass(slots=True)
class _Owner:
    """Where the next media:title / media:description belongs: item, group or object."""

    kind: Literal["item", "group", "media"]
    refs: list[MediaRef] = field(default_factory=list)
    title: tuple[str, str | None] | None = None
    description: tuple[str, str | None] | None = None
    descriptions: list[str] = field(default_factory=list)


def scan_feed(data: bytes, *, base_url: str | None = None) -> ScanResult:
    """Scan UTF-8 feed bytes; never raises for bad input (a broken document scans partly)."""
    scanner = _Scanner(base_url)
    parser = expat.ParserCreate(encoding="utf-8", namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = scanner.start
    parser.EndElementHandler = scanner.end
    parser.CharacterDataHandler = scanner.text
    scanner.parser = parser
    try:
        parser.Parse(_LOOSE_AMP.sub(_escape_amp, data), True)
    except (expat.ExpatError, RecursionError, ValueError):
        scanner.result.complete = False
    return scanner.result


class _Scanner:
    def __init__(self, base_url: str | None) -> None:
        self.result = ScanResult()
        self.parser: expat.XMLParserType | None = None
        self.bases: list[str | None] = []
        self.base = base_url
        self.item: ScannedItem | None = None
        self.item_depth = 0
        self.depth = 0
        self.owners: list[tuple[int, _Owner]] = []
        self.collect: tuple[str, str | None, int] | None = None  # (what, type, depth)
        self.buffer: list[str] = []
        self.title_depth = 0

    # --- expat callbacks ---------------------------------------------------------------

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        self.bases.append(self.base)
        if _XML_BASE in attrs:
            self.base = self._resolve(attrs[_XML_BASE])
        namespace, local = _split(name)
        if self.item is None:
            if local in _ITEM_NAMES:
                self._open_item()
            return
        if self.collect is not None:
            return
        if namespace in _MEDIA_NS:
            self._media_start(local, attrs)
        elif local == "enclosure" and not namespace:
            self._add_ref(attrs.get("url"), "enclosure", attrs, None)
        elif local == "link" and namespace in _ATOM_NS and attrs.get("rel") == "enclosure":
            ref = self._add_ref(attrs.get("href"), "enclosure", attrs, None)
            if ref is not None and attrs.get("title", "").strip():
                ref.title, ref.title_type = attrs["title"].strip(), "text"
        elif local == "title" and self.depth == self.item_depth + 1 and not self.item.title:
            self.collect = ("item-title", None, self.depth)
            self.buffer = []

    def end(self, name: str) -> None:
        if self.collect is not None and self.collect[2] == self.depth:
            self._finish_text()
        while self.owners and self.owners[-1][0] == self.depth:
            self._close_owner(self.owners.pop()[1])
        if self.item is not None and self.depth == self.item_depth:
            self.item.end_line = self._line()
            self.result.items.append(self.item)
            self.item = None
            self.owners = []
        self.base = self.bases.pop() if self.bases else None
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.collect is not None and sum(map(len, self.buffer)) < _TEXT_LIMIT:
            self.buffer.append(data)

    # --- items, owners and media -------------------------------------------------------

    def _open_item(self) -> None:
        self.item = ScannedItem(line=self._line())
        self.item_depth = self.depth
        self.owners = [(self.depth, _Owner("item"))]

    def _media_start(self, local: str, attrs: dict[str, str]) -> None:
        if local == "group":
            self.owners.append((self.depth, _Owner("group")))
        elif local == "content":
            ref = self._add_ref(attrs.get("url"), "content", attrs, attrs.get("medium"))
            if ref is not None:
                self.owners.append((self.depth, _Owner("media", refs=[ref])))
        elif local == "thumbnail":
            self._add_ref(attrs.get("url"), "thumbnail", attrs, "image")
        elif local in ("title", "description"):
            self.collect = (local, attrs.get("type"), self.depth)
            self.buffer = []

    def _add_ref(
        self, url: str | None, kind: MediaKind, attrs: dict[str, str], medium: str | None
    ) -> MediaRef | None:
        if not url or not url.strip():
            return None
        ref = MediaRef(
            url=self._resolve(url.strip()),
            kind=kind,
            mime=(attrs.get("type") or "").strip().lower() or None,
            medium=(medium or "").strip().lower() or None,
            width=attrs.get("width"),
            height=attrs.get("height"),
            is_default=attrs.get("isDefault", "").strip().lower() == "true",
            in_group=any(owner.kind == "group" for _, owner in self.owners),
        )
        for _, owner in self.owners:
            owner.refs.append(ref)
        return ref

    def _finish_text(self) -> None:
        assert self.collect is not None and self.item is not None
        what, kind, _ = self.collect
        value = " ".join("".join(self.buffer).split())
        self.collect, self.buffer = None, []
        if not value:
            return
        if what == "item-title":
            self.item.title = value
            return
        self.item.captions.append(value)
        owner = self.owners[-1][1]
        if what == "title" and owner.title is None:
            owner.title = (value, kind)
        elif what == "description":
            owner.descriptions.append(value)
            if owner.description is None:
                owner.description = (value, kind)

    def _close_owner(self, owner: _Owner) -> None:
        """Give the owner's title and description to its media objects that have none.

        A description of images only is a caption; any other (of a video, a group with a
        video, or of an item with no media) may stand in for a missing summary.
        """
        assert self.item is not None
        for ref in owner.refs:
            _inherit(ref, owner)
        if not (owner.refs and all(_is_image(ref) for ref in owner.refs)):
            self.item.media_summaries.extend(owner.descriptions)
        if owner.kind == "item":
            self.item.media = list(owner.refs)

    # --- helpers -----------------------------------------------------------------------

    def _resolve(self, url: str) -> str:
        if not self.base:
            return url
        try:
            return urljoin(self.base, url)
        except ValueError:
            return url

    def _line(self) -> int:
        return self.parser.CurrentLineNumber if self.parser is not None else 0


def _inherit(ref: MediaRef, owner: _Owner) -> None:
    if ref.title is None and owner.title is not None:
        ref.title, ref.title_type = owner.title
    if ref.description is None and owner.description is not None:
        ref.description, ref.description_type = owner.description


def _is_image(ref: MediaRef) -> bool:
    return ref.medium == "image" or (ref.mime or "").startswith("image/") or (
        ref.kind == "thumbnail"
    )


def _escape_amp(match: re.Match[bytes]) -> bytes:
    name = match.group(1)
    value = html5.get(name.decode("ascii")) if name else None
    if value is None:
        return b"&amp;" + (name or b"")
    return "".join(f"&#{ord(char)};" for char in value).encode("ascii")


def _split(name: str) -> tuple[str, str]:
    namespace, _, local = name.rpartition(" ")
    return namespace, local
