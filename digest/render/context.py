"""What the templates see: plain view objects built from an Edition and the settings."""

from __future__ import annotations

import gettext
import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from digest.config import ListSettings, SiteSettings
from digest.models import Edition, Story
from digest.patterns import PREHEADER_MAX, SUBJECT_MAX, fill_pattern, pattern_fields
from digest.render.environment import format_date, format_day, relative_time
from digest.render.text import LinkRefs

__all__ = ["ImageView", "SectionView", "StoryView", "SummaryPart", "build_context",
           "reference_now", "summary_parts", "variant_subject_preheader"]

_IMAGE_SUFFIXES_REFUSED = (".svg", ".svgz", ".webp")


def safe_link(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL without whitespace, else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    return url


@dataclass(frozen=True)
class ImageView:
    """An image the email may show: https only, no SVG or WebP (mail clients refuse them)."""

    url: str
    alt: str
    width: int | None
    height: int | None

    def height_for(self, display_width: int) -> int | None:
        """The height in pixels at ``display_width``, when the intrinsic size is known."""
        if not self.width or not self.height:
            return None
        return max(1, round(self.height * display_width / self.width))


@dataclass(frozen=True)
class SummaryPart:
    """A run of a summary's text; with ``url`` it is a link (``ref``: its number in the
    text part, where only the lead's summary is shown)."""

    text: str
    url: str | None = None
    ref: int | None = None


# The sanitiser's links: nh3 writes ``<a href="..." rel="noopener">`` (sources/markup.py).
_ANCHOR = re.compile(r'<a\s+href="([^"]*)"[^>]*>(.*?)</a\s*>', re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
#: Jinja's ``truncate`` leeway: a summary at most this much over the limit is kept whole.
_LEEWAY = 5


def _summary_link(url: str) -> str | None:
    if url[:7].lower() == "mailto:":
        return url if "@" in url and not any(ch.isspace() or ord(ch) < 32 for ch in url) \
            else None
    return safe_link(url)


def summary_parts(summary: str, summary_html: str | None) -> tuple[SummaryPart, ...]:
    """The plain ``summary`` cut into runs, each run that is the text of a link of the
    sanitised ``summary_html`` carrying that link, in order ("Read the explainer." keeps
    the explainer's address instead of pointing at nothing). Links that are not absolute
    http(s) or mailto, and link texts the (shortened) summary no longer holds, stay text.
    """
    if not summary_html or "<a" not in summary_html:
        return (SummaryPart(summary),) if summary else ()
    parts: list[SummaryPart] = []
    pos = 0
    for match in _ANCHOR.finditer(summary_html):
        url = _summary_link(html.unescape(match.group(1)))
        text = " ".join(html.unescape(_TAG.sub("", match.group(2))).split())
        at = summary.find(text, pos) if url and text else -1
        if at < 0:
            continue
        if at > pos:
            parts.append(SummaryPart(summary[pos:at]))
        parts.append(SummaryPart(text, url))
        pos = at + len(text)
    if pos < len(summary):
        parts.append(SummaryPart(summary[pos:]))
    return tuple(parts)


@dataclass(frozen=True)
class StoryView:
    """A story as the templates use it; ``ref`` is its link number in the text part.

    ``summary_parts`` is the summary as runs of text and links (:class:`SummaryPart`);
    :meth:`summary_within` shortens them for a teaser and :meth:`summary_with_refs` writes
    them for the text part, each link followed by its ``[number]``.
    """

    id: str
    section: str
    headline: str
    url: str | None
    summary: str | None
    paragraphs: tuple[str, ...]
    image: ImageView | None
    author: str | None
    published_at: datetime | None
    time_label: str
    ref: int | None
    summary_parts: tuple[SummaryPart, ...] = ()

    def summary_within(self, limit: int, end: str = "…") -> tuple[SummaryPart, ...]:
        """The summary's runs cut to about ``limit`` characters at a word boundary, ending
        with ``end``, as Jinja's ``truncate(limit, killwords=False)`` cuts the text."""
        if sum(len(p.text) for p in self.summary_parts) <= limit + _LEEWAY:
            return self.summary_parts
        room = limit - len(end)
        out: list[SummaryPart] = []
        for part in self.summary_parts:
            if len(part.text) <= room:
                out.append(part)
                room -= len(part.text)
                continue
            head = part.text[:room].rsplit(" ", 1)[0] if " " in part.text[:room] else ""
            if head.strip():
                out.append(SummaryPart(head.rstrip(), part.url, part.ref))
            break
        while out and not out[-1].text.strip():
            out.pop()
        if out and out[-1].url is None:
            out[-1] = SummaryPart(out[-1].text.rstrip())
        return (*out, SummaryPart(end))

    def summary_with_refs(self) -> str:
        """The summary for the text part: each link's text followed by `` [number]``."""
        return "".join(f"{p.text} [{p.ref}]" if p.ref else p.text for p in self.summary_parts)


@dataclass(frozen=True)
class SectionView:
    """One section of a variant with the teasers it keeps after the size budget."""

    name: str
    teasers: tuple[StoryView, ...]


def _image(story: Story) -> ImageView | None:
    img = story.image
    if img is None:
        return None
    url = safe_link(img.url)
    if url is None or not url.lower().startswith("https://"):
        return None
    if urlsplit(url).path.lower().endswith(_IMAGE_SUFFIXES_REFUSED):
        return None
    width = img.width if img.width and img.width > 0 else None
    height = img.height if img.height and img.height > 0 else None
    return ImageView(url=url, alt=img.alt.strip(), width=width, height=height)


def _view(story: Story, now: datetime | None, lst: ListSettings, refs: LinkRefs,
          translations: gettext.NullTranslations | None, *, numbered: bool = False
          ) -> StoryView:
    url = safe_link(story.url)
    paragraphs = tuple(b.text.strip() for b in story.body
                       if b.kind == "paragraph" and b.text.strip())
    ref = refs.ref(url)
    summary = (story.summary or "").strip()
    parts = summary_parts(summary, story.summary_html)
    if numbered:  # the text part shows this summary: its links join the numbered list
        parts = tuple(SummaryPart(p.text, p.url, refs.ref(p.url)) if p.url else p
                      for p in parts)
    return StoryView(
        id=story.id,
        section=story.section,
        headline=story.headline.strip(),
        url=url,
        summary=(story.summary or "").strip() or None,
        paragraphs=paragraphs,
        image=_image(story),
        author=(story.author or "").strip() or None,
        published_at=story.published_at,
        # A story its source dated in the future shows its date, never "just now".
        time_label=(format_date(story.published_at, lst.timezone, lst.language)
                    if story.future_dated and story.published_at
                    else relative_time(story.published_at, now, lst.timezone, lst.language,
                                       translations)),
        ref=ref,
        summary_parts=parts,
    )


def reference_now(edition: Edition, lst: ListSettings, as_of: datetime | None) -> datetime:
    """The moment relative ages are measured from.

    ``as_of`` when given; otherwise the later of the edition's scheduled send time (its date
    at the list's ``send_time`` in the list's timezone) and the newest ``published_at`` in the
    edition, so that a story is never "in the future" and the email does not depend on when
    the render happens to run. Stories marked ``future_dated`` do not count.
    """
    if as_of is not None:
        return as_of
    scheduled = datetime.combine(edition.date, lst.send_time, tzinfo=lst.timezone)
    stamps = [s.published_at for s in edition.stories
              if s.published_at is not None and not s.future_dated]
    return max([scheduled, *stamps])


def variant_subject_preheader(edition: Edition, lst: ListSettings, site: SiteSettings,
                              teaser_headlines: list[str]) -> tuple[str, str]:
    """The subject and preheader of one variant: the list's patterns filled from the lead and
    the teasers this variant shows (:mod:`digest.patterns`), not from the whole edition.

    :raises ConfigError: when a pattern cannot be filled.
    """
    if edition.lead is None:
        return edition.subject, edition.preheader
    fields = pattern_fields(lead_headline=edition.lead.headline,
                            lead_section=edition.lead.section,
                            teaser_headlines=teaser_headlines, title=lst.title,
                            site=site.name, day=edition.date,
                            language=lst.language)
    return (fill_pattern(lst.subject, fields, "subject", SUBJECT_MAX),
            fill_pattern(lst.preheader, fields, "preheader", PREHEADER_MAX))


def build_context(*, edition: Edition, site: SiteSettings, lst: ListSettings,
                  sections: frozenset[str], dropped: frozenset[str], now: datetime,
                  web_base_url: str, slots: dict[str, str], greeting_text: str,
                  translations: gettext.NullTranslations | None = None) -> dict[str, Any]:
    """The variables for ``email/edition.html`` and ``email/edition.txt``.

    ``subject`` and ``preheader`` are this variant's (:func:`variant_subject_preheader`).

    Dates and ages are in the list's language; ``translations`` (the list's catalogs)
    supplies the words Babel has no CLDR data for ("just now").

    :param sections: the section names to show (the lead is always shown).
    :param dropped: ids of teasers the size budget removed.
    :param slots: per-subscriber values (or slot markers) for the HTML template.
    :param greeting_text: the greeting (or its marker) for the text template.
    """
    refs = LinkRefs()
    lead = (_view(edition.lead, now, lst, refs, translations, numbered=True)
            if edition.lead else None)
    views = []
    for sec in edition.sections:
        if sec.name not in sections:
            continue
        teasers = tuple(_view(s, now, lst, refs, translations)
                        for s in sec.teasers if s.id not in dropped)
        if teasers:
            views.append(SectionView(name=sec.name, teasers=teasers))
    subject, preheader = variant_subject_preheader(
        edition, lst, site, [s.headline for sec in edition.sections if sec.name in sections
                             for s in sec.teasers if s.id not in dropped])
    return {
        "edition": edition,
        "subject": subject,
        "preheader": preheader,
        "date_long": format_day(edition.date, lst.language),
        "now": now,
        "site": site,
        "list": lst,
        "lead": lead,
        "sections": views,
        "links": refs.links,
        "web_base_url": web_base_url.rstrip("/"),
        "greeting": slots["greeting"],
        "text_greeting": greeting_text,
        "unsubscribe_url": slots["unsubscribe_url"],
        "manage_url": slots["manage_url"],
        "browser_url": slots["browser_url"],
    }
