"""Text helpers the page and feed parsers share: decoding, headlines, sections, links, HTML."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import nh3

from digest.errors import ParseError

__all__ = [
    "Decoded",
    "clean_headline",
    "collapse_text",
    "decode_text",
    "html_to_text",
    "is_http_url",
    "link_scheme",
    "map_section",
    "sanitise_html",
    "shorten",
]

SUMMARY_LIMIT = 300
_ALLOWED_TAGS = {"p", "a", "em", "strong", "b", "i", "br", "ul", "ol", "li", "blockquote"}
_DROPPED_WITH_CONTENT = {"script", "style", "iframe", "noscript", "template", "object", "svg"}
# [^<>] rather than [^>]: an unclosed "<p" must not make every later "<p" rescan the text.
_BLOCK_TAG = re.compile(
    r"</?(?:p|br|li|ul|ol|blockquote|div|h[1-6]|tr|td|th)\b[^<>]*>", re.IGNORECASE
)
_ANY_TAG = re.compile(r"<!--.*?(?:-->|$)|</?[A-Za-z][^<>]*(?:>|$)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
_DEAD_LINK = re.compile(r'<a rel="noopener">(.*?)</a>', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text decoded from a source's bytes and how: ``note`` says what was repaired, if anything."""

    text: str
    encoding: str
    note: str | None = None


def decode_text(data: bytes, *, source: str) -> Decoded:
    """Decode bytes as UTF-8 (BOM allowed), falling back to Windows-1252 or replacement.

    A file with no valid multi-byte UTF-8 at all is read as Windows-1252 (an old export);
    one with some invalid bytes among valid UTF-8 keeps the UTF-8 and gets U+FFFD where
    the bad bytes were.

    :raises ParseError: when the bytes are binary rather than text.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _checked(Decoded(data.decode("utf-16"), "utf-16"), source)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"{source} has a UTF-16 mark but is not UTF-16 text.", source=source
            ) from exc
    try:
        return _checked(Decoded(data.decode("utf-8"), "utf-8"), source)
    except UnicodeDecodeError:
        pass
    replaced = data.decode("utf-8", errors="replace")
    has_valid_multibyte = any(ord(ch) > 0x7F and ch != "\ufffd" for ch in replaced)
    if not has_valid_multibyte:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            pass
        else:
            note = "the file is not UTF-8; it was read as Windows-1252"
            return _checked(Decoded(text, "cp1252", note), source)
    note = "bytes that are not UTF-8 were replaced with \ufffd"
    return _checked(Decoded(replaced, "utf-8", note), source)


def _checked(decoded: Decoded, source: str) -> Decoded:
    text = decoded.text
    controls = len(_CONTROL.findall(text[:65536]))
    if "\x00" in text or controls > max(8, len(text[:65536]) // 50):
        raise ParseError(
            f"{source} is binary data, not text; give an article page or a feed.", source=source
        )
    return decoded


def clean_headline(text: str) -> str:
    """Strip tags, decode entities, drop control characters and collapse whitespace."""
    text = html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub(" ", text)))
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def collapse_text(text: str) -> str:
    """Plain text with control characters dropped and whitespace collapsed (no HTML handling)."""
    return _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()


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


def sanitise_html(fragment: str) -> str:
    """Sanitise an HTML fragment to the small allowlist email templates may show.

    Links keep ``href`` only for http(s) and mailto and get ``rel="noopener"``.
    """
    cleaned = nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        clean_content_tags=_DROPPED_WITH_CONTENT,
        attributes={"*": set(), "a": {"href"}},  # "*" empty: no lang/title anywhere
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener",
    )
    # A link whose href was refused (javascript:, relative) is left as its text.
    return _DEAD_LINK.sub(r"\1", cleaned).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags stripped, entities decoded, whitespace collapsed."""
    return clean_headline(fragment)


def shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Cut ``text`` at a word boundary so that it is at most ``limit`` characters, ending "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"
