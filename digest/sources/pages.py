"""Article pages (the newsroom's plain-text front page) parsed into the lead and its teasers.

The format, line by line::

    Politics                                   the lead's section (an age may be glued on)
    South Korean President ... in Tokyo        the lead's headline
    <paragraphs and subheadings>               the lead's body, one per line
    -                                          a separator line opens the teasers
    Sports4 weeks ago                          a teaser: section with its age glued on
    De Minaur Triumphs at Washington Open ...  ... and its headline
    -
    ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from digest.errors import ParseError
from digest.models import Block, SkippedItem, SourceResult, Story, story_id
from digest.sources.ages import parse_age, split_section_age
from digest.sources.charsets import Decoded, decode_text
from digest.sources.text import clean_text, map_section

__all__ = ["is_subheading", "parse_page"]

_NO_SECTIONS: Mapping[str, str] = MappingProxyType({})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Whitespace plus the invisible marks editors leave (a stray BOM, zero-width spaces).
_BLANK = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace()) + "\ufeff\u200b\u2060"
_SEPARATOR = re.compile(r"^\s*(?:[-–—_=*]\s*)+$")
# Markup, not a page: a comment, declaration, processing instruction or tag opens the text
# ("<!-- generated -->", "<!DOCTYPE html>", "<?xml", "<html lang=en>", "</div>"). A section
# line never starts so ("<3 Deno" does not: no letter, "!", "?" or "/" after the "<").
_MARKUP = re.compile(r"^\s*<(?:[!?]|/?[A-Za-z][\w:.-]*(?:[\s/>]|$))")
_FINAL_PUNCT = tuple(".!?:;,…\"'”’»)]")
_MAX_REPORTED_LINES = 20
_DEFAULT_SECTION = "News"
# Words a title-case heading leaves in lower case ("Upcoming Meeting with President Trump").
# fmt: off
_SMALL_WORDS = frozenset((
    "a", "an", "and", "as", "at", "but", "by", "en", "for", "from", "if", "in", "into", "nor",
    "of", "on", "onto", "or", "over", "per", "so", "the", "than", "to", "up", "upon", "via",
    "vs", "vs.", "with", "yet",
))
# fmt: on


@dataclass(slots=True)
class _Line:
    number: int
    text: str


def parse_page(
    data: bytes,
    *,
    source: str,
    as_of: datetime,
    section_map: Mapping[str, str] = _NO_SECTIONS,
    charset: str | None = None,
) -> SourceResult:
    """Parse an article page into the lead story and its teasers.

    The page is plain text: nothing shaped like a tag or an entity is removed from a
    headline. ``charset`` is what the server declared, if the page was fetched.
    Relative ages are resolved against ``as_of`` (a naive value is taken as UTC). Lines
    that cannot be used (a teaser without a headline, a duplicate) are listed in the
    result's ``skipped`` with their 1-based line number.

    :raises ParseError: when the page is empty, binary, in an encoding digest does not read,
        markup (any tag, comment or declaration before the first text), or has no headline.
    """
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    decoded = decode_text(data, source=source, declared=charset)
    lines = [
        _Line(n, text.strip(_BLANK)) for n, text in enumerate(_LINE_BREAK.split(decoded.text), 1)
    ]
    content = [line for line in lines if line.text]
    if not content:
        raise ParseError(
            f"{source} is empty; an article page starts with a section line and a headline.",
            source=source,
        )
    if _MARKUP.match(content[0].text):
        raise ParseError(
            f"{source} is an HTML or XML document, not an article page or a feed; "
            "give the plain-text page or the feed's address.",
            source=source,
        )
    parser = _PageParser(source=source, as_of=as_of, section_map=section_map)
    parser.report_decoding(decoded)
    parser.parse(content)
    if not parser.result.stories:
        raise ParseError(
            f"{source} has no usable headline; an article page starts with a section line "
            "and a headline.",
            source=source,
        )
    return parser.result


def is_subheading(text: str, *, is_last: bool = False) -> bool:
    """True when a body line reads as a subheading: short, title case, no final punctuation.

    Lines in scripts without letter case are never subheadings; neither is the last line.
    """
    text = text.strip()
    if is_last or not text or len(text) > 90 or text.endswith(_FINAL_PUNCT):
        return False
    words = text.split()
    if len(words) > 12 or not words[0][0].isupper():
        return False
    cased = [w for w in words if w[0].isalpha() and w[0].lower() != w[0].upper()]
    major = [w for w in cased if w.casefold() not in _SMALL_WORDS]
    if len(cased) < len(words) / 2 or not major:
        return False
    return all(w[0].isupper() for w in major)


class _PageParser:
    """One pass over a page's non-blank lines, collecting stories and skipped lines."""

    def __init__(self, *, source: str, as_of: datetime, section_map: Mapping[str, str]) -> None:
        self.source = source
        self.as_of = as_of
        self.section_map = section_map
        self.result = SourceResult()
        self._seen: dict[str, int] = {}
        self._last_line = 0

    def skip(self, line: int | None, reason: str) -> None:
        self.result.skipped.append(SkippedItem(self.source, line, reason))

    def report_decoding(self, decoded: Decoded) -> None:
        note = decoded.note
        if note is None:
            return
        if not decoded.repairs:
            self.skip(None, f"{note} (nothing was dropped)")
            return
        damaged = [repair.line for repair in decoded.repairs]
        for number in damaged[:_MAX_REPORTED_LINES]:
            self.skip(number, f"{note} on this line (the line was kept)")
        if len(damaged) > _MAX_REPORTED_LINES:
            self.skip(None, f"{note} on {len(damaged) - _MAX_REPORTED_LINES} more lines")

    def parse(self, content: list[_Line]) -> None:
        blocks: list[list[_Line]] = [[]]
        for line in content:
            if _SEPARATOR.match(line.text):
                blocks.append([])
            else:
                blocks[-1].append(line)
        lead, teasers = blocks[0], blocks[1:]
        if lead:
            self._lead(lead)
        self._last_line = content[-1].number
        for block in teasers:
            self._teasers(block)

    def _lead(self, block: list[_Line]) -> None:
        header = block[0]
        section, published = self._header(header)
        if len(block) < 2:
            self.skip(header.number, f"the lead section {header.text[:60]!r} has no headline")
            return
        headline_line, body_lines = block[1], block[2:]
        headline = clean_text(headline_line.text)
        if not _has_words(headline):
            self.skip(headline_line.number, "the lead headline is empty")
            return
        body = tuple(
            Block(
                "subheading"
                if is_subheading(text, is_last=i == len(body_lines) - 1)
                else "paragraph",
                text,
            )
            for i, line in enumerate(body_lines)
            if (text := clean_text(line.text))
        )
        summary = next((b.text for b in body if b.kind == "paragraph"), None)
        self._add(
            header.number,
            Story(
                id=story_id(section, headline),
                section=section,
                headline=headline,
                summary=summary,
                body=body,
                published_at=published,
                source=self.source,
                is_lead=True,
            ),
        )

    def _teasers(self, block: list[_Line]) -> None:
        pending: _Line | None = None
        for line in block:
            if pending is None:
                pending = line
                continue
            if _is_glued_header(line.text, self.section_map):
                self._no_headline(pending)
                pending = line
                continue
            self._teaser(pending, line)
            pending = None
        if pending is not None:
            self._no_headline(pending)

    def _teaser(self, header: _Line, headline_line: _Line) -> None:
        section, published = self._header(header)
        headline = clean_text(headline_line.text)
        if not _has_words(headline):
            self.skip(header.number, f"the teaser {header.text[:60]!r} has an empty headline")
            return
        story = Story(
            id=story_id(section, headline),
            section=section,
            headline=headline,
            published_at=published,
            source=self.source,
        )
        self._add(header.number, story)

    def _no_headline(self, header: _Line) -> None:
        _, age = split_section_age(header.text, known_sections=self.section_map)
        if age is None:
            reason = f"{header.text[:60]!r} is not a teaser (a section line then a headline)"
        else:
            reason = f"the teaser {header.text[:60]!r} has no headline"
            if header.number == self._last_line:
                reason += " (the page ends there: was it cut short?)"
        self.skip(header.number, reason)

    def _header(self, line: _Line) -> tuple[str, datetime | None]:
        raw_section, age = split_section_age(line.text, known_sections=self.section_map)
        section = map_section(clean_text(raw_section), self.section_map) or _DEFAULT_SECTION
        if age is None:
            return section, None
        try:
            return section, parse_age(age, self.as_of)
        except ParseError as exc:
            self.skip(line.number, f"{exc} The story is kept without a date.")
            return section, None

    def _add(self, line: int, story: Story) -> None:
        first = self._seen.get(story.id)
        if first is not None:
            self.skip(line, f"duplicate of line {first}")
            return
        self._seen[story.id] = line
        self.result.stories.append(story)


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _is_glued_header(text: str, section_map: Mapping[str, str]) -> bool:
    """True for "Sports4 weeks ago" (an age glued to a section), never for a spaced headline."""
    section, age = split_section_age(text, known_sections=section_map)
    if age is None or not section:
        return False
    stripped = text.strip()
    return stripped.startswith(section) and stripped[len(section) : len(section) + 1] == age[:1]
