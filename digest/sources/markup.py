"""HTML from feeds made safe and readable: the sanitised fragment and its plain text.

nh3 (ammonia, on html5ever) parses and sanitises; everything after that works on its
normalised output, where every tag is ``<name>`` or ``</name>`` (links: ``<a href="..."
rel="noopener">``) and ``<``, ``>`` and ``&`` in text are escaped. Two rules shape what a
reader sees:

- Block elements are boundaries. ``div``, ``h1``-``h6``, ``figcaption``, ``li``, ``tr`` ...
  end a sentence (a full stop is added when the text before ends in a letter or digit);
  ``br`` and table cells separate words. In the HTML, ``div`` and the like become ``p``
  (headings ``p`` + ``strong``), cells are spaced, rows end with ``br``.
- A link whose address the sanitiser refused (``javascript:``, a relative URL with no
  base) is unwrapped, except in a sentence that exists to point at it ("Read the
  explainer.", "More:"), which goes with it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import nh3

__all__ = ["html_to_text", "markup_to_text", "sanitise_html"]

ALLOWED_TAGS = frozenset(
    {"p", "a", "em", "strong", "b", "i", "br", "ul", "ol", "li", "blockquote"}
)
_DROPPED_WITH_CONTENT = {"script", "style", "iframe", "noscript", "template", "object", "svg"}
# Blocks that end a sentence; in the HTML they become <p> (or stay, when allowed).
_SENTENCE_BLOCKS = frozenset(
    {"p", "div", "li", "dt", "dd", "blockquote", "figcaption", "caption", "pre", "section",
     "article", "header", "footer", "address", "ul", "ol", "dl", "table", "tr", "figure",
     "main", "aside", "details", "summary", "center"}
    | {f"h{n}" for n in range(1, 7)}
)
_WORD_BREAKS = frozenset({"br", "td", "th", "hr"})
_INLINE = frozenset({"a", "em", "strong", "b", "i", "u", "s", "span", "small", "sub", "sup",
                     "code", "q", "cite", "abbr", "mark", "font", "time", "tbody", "thead"})
_FIRST_PASS_TAGS = _SENTENCE_BLOCKS | _WORD_BREAKS | _INLINE
_TOKEN = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[a-zA-Z:-]+="[^"]*")*)\s*/?>')
_DEAD_LINK_OPEN = '<a rel="noopener">'
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*(?=\s|$)")
_WORD = re.compile(r"[^\W_]+")
# Words that open a sentence pointing at a link ("Read the explainer.", "More: ...").
_POINTERS = frozenset(
    {"read", "see", "watch", "listen", "click", "tap", "view", "visit", "learn", "find",
     "more", "continue", "download", "get", "sign", "subscribe", "register", "follow",
     "check", "explore", "discover", "join", "here", "details", "full", "related", "via",
     "source", "photo", "video", "also", "previously", "update"}
)
_POINTER_WORDS = 3
_POINTER_TEXT = 8  # a link longer than this many words is text, not a pointer
_EMPTY_BLOCK = re.compile(r"<(p|li|blockquote|strong|em|b|i)>(?:\s|<br>)*</\1>")
_SPACES = re.compile(r"[ \t\r\n\f]+")
_ENDS_IN_WORD = re.compile(r"[^\W_]$")


@dataclass(slots=True)
class _Token:
    text: str  # the raw token: a tag or escaped text
    name: str = ""  # tag name; "" for text
    closing: bool = False

    @property
    def is_tag(self) -> bool:
        return bool(self.name)


def sanitise_html(fragment: str) -> str:
    """Sanitise an HTML fragment to the small allowlist email templates may show.

    Allowed: ``p a em strong b i br ul ol li blockquote``; links keep ``href`` only for
    http(s) and mailto and get ``rel="noopener"``. Block boundaries are kept (see the
    module docstring); empty paragraphs are dropped.
    """
    tokens = _without_dead_links(_tokens(_first_pass(fragment)))
    out: list[str] = []
    for token in tokens:
        out.append(_as_allowed(token) if token.is_tag else token.text)
    cleaned = nh3.clean(
        "".join(out),
        tags=set(ALLOWED_TAGS),
        attributes={"*": set(), "a": {"href"}},  # "*" empty: no lang or title anywhere
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener",
    )
    previous = None
    while previous != cleaned:
        previous, cleaned = cleaned, _EMPTY_BLOCK.sub("", cleaned)
    return cleaned.strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment for a summary: sentences end at block boundaries,
    words are kept apart at cells and line breaks, dead links handled as in the HTML."""
    return _text(_without_dead_links(_tokens(_first_pass(fragment))), sentences=True)


def markup_to_text(fragment: str) -> str:
    """Plain text of a markup title (Atom ``type="html"``, an RSS title with tags): tags
    removed, entities decoded, a space at every block boundary, never a full stop added."""
    if "<" not in fragment and "&" not in fragment:
        return fragment
    return _text(_tokens(_first_pass(fragment)), sentences=False)


# --- parsing and tokens ----------------------------------------------------------------


def _first_pass(fragment: str) -> str:
    """nh3's normalised HTML with every block kept (no attributes but a safe href)."""
    return nh3.clean(
        fragment,
        tags=set(_FIRST_PASS_TAGS),
        clean_content_tags=_DROPPED_WITH_CONTENT,
        attributes={"*": set(), "a": {"href"}},  # "*" empty: no lang or title anywhere
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener",
        strip_comments=True,
    )


def _tokens(normalised: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    for match in _TOKEN.finditer(normalised):
        if match.start() > position:
            tokens.append(_Token(normalised[position : match.start()]))
        tokens.append(_Token(match.group(0), match.group(2).lower(), bool(match.group(1))))
        position = match.end()
    if position < len(normalised):
        tokens.append(_Token(normalised[position:]))
    return tokens


def _as_allowed(token: _Token) -> str:
    """A first-pass tag in the final allowlist's terms (see the module docstring)."""
    name, closing = token.name, token.closing
    if name in ALLOWED_TAGS:
        return token.text
    if name in ("td", "th"):
        return " "
    if name in ("tr", "hr"):
        return "<br>" if closing or name == "hr" else ""
    if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return "</strong></p>" if closing else "<p><strong>"
    if name in _SENTENCE_BLOCKS:
        return "</p>" if closing else "<p>"
    return ""


def _text(tokens: list[_Token], *, sentences: bool) -> str:
    parts: list[str] = []
    pending = ""  # "" none, " " word boundary, "." sentence boundary
    for token in tokens:
        if token.is_tag:
            if token.name in _SENTENCE_BLOCKS:
                pending = "." if sentences else " "
            elif token.name in _WORD_BREAKS and pending != ".":
                pending = " "
            continue
        text = html.unescape(token.text)
        if not text.strip():
            if text and parts and not pending:
                pending = " "
            continue
        if parts and pending:
            if pending == "." and _ENDS_IN_WORD.search(parts[-1].rstrip()):
                parts[-1] = parts[-1].rstrip() + "."
            parts.append(" ")
        pending = ""
        parts.append(text)
    return _SPACES.sub(" ", "".join(parts)).strip()


# --- links the sanitiser refused --------------------------------------------------------


def _without_dead_links(tokens: list[_Token]) -> list[_Token]:
    """Unwrap every refused link, or drop it with the sentence that only points at it."""
    index = 0
    while index < len(tokens):
        if tokens[index].text != _DEAD_LINK_OPEN:
            index += 1
            continue
        close = _closing(tokens, index)
        start, index, close, end = _sentence_bounds(tokens, index, close)
        inside = _WORD.findall(_plain(tokens[index + 1 : close]))
        outside = _WORD.findall(
            _plain(tokens[start:index] + tokens[close + 1 : end + 1]).casefold()
        )
        if outside:
            pointer = outside[0] in _POINTERS or len(outside) <= _POINTER_WORDS
        else:
            pointer = len(inside) <= _POINTER_TEXT  # the sentence is only the link
        if not pointer:
            del tokens[close]
            del tokens[index]
            continue
        live = any(t.name == "a" and t.text != _DEAD_LINK_OPEN for t in tokens[start:index])
        live = live or any(t.name == "a" for t in tokens[close + 1 : end + 1] if not t.closing)
        if live:
            del tokens[index : close + 1]
            continue
        tokens[start : end + 1] = [t for t in tokens[start : end + 1] if _keep_tag(t)]
        index = start
    return tokens


def _plain(tokens: list[_Token]) -> str:
    return html.unescape(" ".join(t.text for t in tokens if not t.is_tag))


def _keep_tag(token: _Token) -> bool:
    return token.is_tag and token.name != "a"


def _closing(tokens: list[_Token], open_index: int) -> int:
    for index in range(open_index + 1, len(tokens)):
        if tokens[index].name == "a" and tokens[index].closing:
            return index
    tokens.append(_Token("</a>", "a", True))
    return len(tokens) - 1


def _sentence_bounds(
    tokens: list[_Token], open_index: int, close_index: int
) -> tuple[int, int, int, int]:
    """``(start, open, close, end)`` token indexes of the sentence around a link; text
    tokens are split at the sentence ends that bound it (which moves the link's indexes)."""
    start = open_index
    while start > 0:
        before = tokens[start - 1]
        if before.is_tag:
            if _bounds_sentence(before):
                break
            start -= 1
            continue
        ends = list(_SENTENCE_END.finditer(before.text))
        if ends:
            cut = ends[-1].end()
            tokens[start - 1 : start] = [_Token(before.text[:cut]), _Token(before.text[cut:])]
            open_index += 1
            close_index += 1
            break
        start -= 1
    end = close_index
    while end + 1 < len(tokens):
        after = tokens[end + 1]
        if after.is_tag:
            if _bounds_sentence(after):
                break
            end += 1
            continue
        found = _SENTENCE_END.search(after.text)
        end += 1
        if found:
            cut = found.end()
            tokens[end : end + 1] = [_Token(after.text[:cut]), _Token(after.text[cut:])]
            break
    return start, open_index, close_index, end


def _bounds_sentence(tag: _Token) -> bool:
    return tag.name in _SENTENCE_BLOCKS or tag.name in ("br", "hr")
