"""Plain-text helpers the page and feed parsers share: headlines, sections, links, lengths.

Plain text stays text: :func:`clean_text` never removes anything shaped like a tag or
decodes an entity ("History of the <blink> tag" keeps its word). Only a title its format
marks as markup goes through :func:`clean_headline`. HTML summaries are
:mod:`digest.sources.markup`'s.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import urlsplit

from digest.sources.markup import markup_to_text

__all__ = [
    "clean_headline",
    "clean_text",
    "collapse_text",
    "is_http_url",
    "link_scheme",
    "map_section",
    "shorten",
]

SUMMARY_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Unicode noncharacters (U+FDD0..U+FDEF and the last two code points of every plane) and
# lone surrogates: never text a reader should see (Unicode 15, section 23.7).
_NONCHARACTER = re.compile(
    r"[\ufdd0-\ufdef\ud800-\udfff"
    + "".join(rf"\U{plane:04X}FFFE\U{plane:04X}FFFF" for plane in range(17))
    + "]"
)
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Plain text for a headline, name or alt text: NFC, control characters read as
    spaces, noncharacters and lone surrogates dropped, whitespace collapsed.

    Nothing shaped like a tag or an entity is touched.
    """
    text = _NONCHARACTER.sub("", _CONTROL.sub(" ", text))
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def clean_headline(markup: str) -> str:
    """A markup title (HTML) as plain text: tags removed, entities decoded, then
    :func:`clean_text`."""
    return clean_text(markup_to_text(markup))


def collapse_text(text: str) -> str:
    """:func:`clean_text` (kept under this name for plain summaries and section names)."""
    return clean_text(text)


def map_section(name: str, section_map: Mapping[str, str]) -> str:
    """The canonical section for ``name``: ``section_map`` (casefolded keys) or ``name`` itself."""
    name = collapse_text(name)
    return section_map.get(name.casefold(), name)


def link_scheme(url: str) -> str:
    """The lower-case scheme of ``url`` (``""`` when it has none or does not parse)."""
    try:
        return urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Cut ``text`` at a word boundary so that it is at most ``limit`` characters, ending "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"
