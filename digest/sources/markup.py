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

__all__ = ["html_to_text", "markup_to_text", "sanitise_html", "summarise_html"]

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
# A summary needs the start of an article, not all of it; html5ever's time grows faster
# than the nesting depth, so the fragment is cut (before a tag) at this many characters.
MAX_FRAGMENT = 20_000
_ENDS_IN_WORD = re.compile(r"[^\W_]$")


@dataclass(slots=True)
class _Token:
    text: str  # the raw token: a tag or escaped text
    name: str = ""  # tag name; "" for text
    closing: bool = False

    @property
    def is_tag(self) -> bool:
        return bool(self.name)


def summarise_html(fragment: str) -> tuple[str, str]:
    """``(sanitise_html(fragment), html_to_text(fragment))``, parsing the fragment once."""
    tokens = _without_dead_links(_tokens(_first_pass(fragment)))
    return _sanitised(tokens), _text(tokens, sentences=True)


def sanitise_html(fragment: str) -> str:
    """Sanitise an HTML fragment to the small allowlist email templates may show.

    Allowed: ``p a em strong b i br ul ol li blockquote``; links keep ``href`` only for
    http(s) and mailto and get ``rel="noopener"``. Block boundaries are kept (see the
    module docstring); empty paragraphs are dropped. Only the first
    :data:`MAX_FRAGMENT` characters are read.
    """
    return _sanitised(_without_dead_links(_tokens(_first_pass(fragment))))


def _sanitised(tokens: list[_Token]) -> str:
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
    for _ in range(3):  # empty paragraphs nest rarely deeper; each pass is linear
        cleaned = _EMPTY_BLOCK.sub("", cleaned)
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
    if len(fragment) > MAX_FRAGMENT:
        cut = fragment.rfind("<", 0, MAX_FRAGMENT)
        fragment = fragment[: cut if cut > MAX_FRAGMENT // 2 else MAX_FRAGMENT]
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
    """Unwrap every refused link, or drop it with the sentence that only points at it.

    One pass to cut the tokens into sentences (block tags and sentence ends bound them),
    one to decide each sentence: linear in the size of the fragment.
    """
    if not any(token.text == _DEAD_LINK_OPEN for token in tokens):
        return tokens
    out: list[_Token] = []
    for sentence in _sentences(tokens):
        out.extend(_decide(sentence))
    return out


def _sentences(tokens: list[_Token]) -> list[list[_Token]]:
    """The tokens cut into runs: each boundary tag is a run of its own, and text tokens are
    split after every sentence end."""
    runs: list[list[_Token]] = [[]]
    for token in tokens:
        if token.is_tag:
            if _bounds_sentence(token):
                runs.extend(([token], []))
            else:
                runs[-1].append(token)
            continue
        position = 0
        for end in _SENTENCE_END.finditer(token.text):
            runs[-1].append(_Token(token.text[position : end.end()]))
            runs.append([])
            position = end.end()
        if position < len(token.text):
            runs[-1].append(_Token(token.text[position:]))
    return [run for run in runs if run]


def _decide(sentence: list[_Token]) -> list[_Token]:
    dead = False  # inside a refused link
    has_dead = has_live = False
    inside: list[str] = []
    outside: list[str] = []
    for token in sentence:
        if token.name == "a":
            if token.closing:
                dead = False
            elif token.text == _DEAD_LINK_OPEN:
                dead = has_dead = True
            else:
                has_live = True
        elif not token.is_tag:
            (inside if dead else outside).append(token.text)
    if not has_dead:
        return sentence
    outside_words = _WORD.findall(html.unescape(" ".join(outside)).casefold())
    if outside_words:
        pointer = outside_words[0] in _POINTERS or len(outside_words) <= _POINTER_WORDS
    else:  # the sentence is only the link(s)
        pointer = len(_WORD.findall(html.unescape(" ".join(inside)))) <= _POINTER_TEXT
    kept: list[_Token] = []
    dead = False
    for token in sentence:
        if token.name == "a" and not token.closing and token.text == _DEAD_LINK_OPEN:
            dead = True
            continue
        if token.name == "a" and token.closing and dead:
            dead = False
            continue
        if not pointer or (token.is_tag and token.name != "a"):
            kept.append(token)  # prose: the link is unwrapped
        elif has_live and not dead:
            kept.append(token)  # a live link stays with its sentence; the dead one goes
    return kept


def _bounds_sentence(tag: _Token) -> bool:
    return tag.name in _SENTENCE_BLOCKS or tag.name in ("br", "hr")
