"""Plaintext helpers: wrapping at 78 columns, numbered link references, tidy blank lines."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

__all__ = ["LINE_WIDTH", "LinkRefs", "is_url_line", "reference", "tidy_text", "wrap_greeting",
           "wrap_text"]

LINE_WIDTH = 78
_URL = re.compile(r"^(?:https?|mailto):\S+$", re.IGNORECASE)
_BLANK_RUN = re.compile(r"\n(?:[ \t]*\n)+")
# Breakable white space only: a no-break space (French "Lire\u00a0: [1]") keeps its words
# together on one line.
_SPACES = re.compile(r"[^\S\u00a0\u202f\u2007\u2060]+")


def is_url_line(line: str) -> bool:
    """True for a line that is only a URL (such a line may be longer than 78 characters)."""
    return bool(_URL.match(line.strip()))


def _split_long_words(words: list[str], width: int) -> list[str]:
    out: list[str] = []
    for word in words:
        if len(word) <= width or _URL.match(word):
            out.append(word)
        else:
            out.extend(word[i:i + width] for i in range(0, len(word), width))
    return out


def wrap_text(text: str | None, width: int = LINE_WIDTH, indent: str = "",
              subsequent_indent: str | None = None) -> str:
    """Wrap ``text`` to ``width`` columns; a URL longer than a line gets a line of its own.

    Whitespace (newlines included) is collapsed first, so the result is one paragraph; no-break
    spaces are kept and never broken at.
    Over-long words that are not URLs are cut, so no line is ever wider than ``width``
    unless it is only a URL.
    """
    if not text:
        return ""
    rest = indent if subsequent_indent is None else subsequent_indent
    words = _split_long_words(_SPACES.sub(" ", text).strip(" ").split(" "),
                              width - max(len(indent), len(rest)))
    lines: list[str] = []
    current = indent
    blank = True
    for word in words:
        if _URL.match(word) and len(current) + (0 if blank else 1) + len(word) > width:
            if not blank or current.strip():
                lines.append(current.rstrip())  # a bullet keeps a line of its own
            lines.append(word)
            current, blank = rest, True
            continue
        candidate = current + ("" if blank else " ") + word
        if len(candidate) > width and not blank:
            lines.append(current)
            current, blank = rest + word, False
        else:
            current, blank = candidate, False
    if not blank:
        lines.append(current)
    return "\n".join(lines)


def tidy_text(text: str) -> str:
    """Drop trailing spaces, keep at most one blank line in a row, end with one newline."""
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_RUN.sub("\n\n", text).strip("\n") + "\n"


@dataclass
class LinkRefs:
    """Numbers links in the order they are first met; the same URL keeps its number."""

    numbers: dict[str, int] = field(default_factory=dict)

    def ref(self, url: str | None) -> int | None:
        """The reference number for ``url`` (None for no URL)."""
        if not url:
            return None
        return self.numbers.setdefault(url, len(self.numbers) + 1)

    @property
    def links(self) -> list[tuple[int, str]]:
        """``(number, url)`` pairs in number order."""
        return [(n, url) for url, n in self.numbers.items()]


def reference(number: int, url: str) -> str:
    """``[3] https://...`` on one line when it fits in 78 columns, else the URL on its own line."""
    label = f"[{number}]"
    one_line = f"{label} {url}"
    return one_line if len(one_line) <= LINE_WIDTH else f"{label}\n{url}"


def wrap_greeting(greeting: str) -> str:
    """The greeting for the text part, wrapped like any paragraph."""
    if len(greeting) <= LINE_WIDTH:
        return greeting
    return textwrap.fill(greeting, LINE_WIDTH, break_long_words=True, break_on_hyphens=False)
