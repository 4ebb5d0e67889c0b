"""Plain data the stages exchange: stories, editions and what was skipped on the way.

Nothing here does I/O or imports another digest module; every object is frozen so a
stage can hand it on without copying.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

__all__ = [
    "Block",
    "CarriedStory",
    "Edition",
    "EditionSection",
    "Image",
    "RepeatKeys",
    "Signer",
    "SkippedItem",
    "SourceResult",
    "Story",
    "Unsigned",
    "is_derived_id",
    "normalise_headline",
    "story_id",
]

class Unsigned(Protocol):
    """What a message builder may hand delivery instead of bytes: a DKIM-signed message
    whose private-key step is still to run (``digest.mail.UnsignedMessage``). Delivery has
    a :class:`Signer` make the signatures beside its event loop and sends :meth:`signed`;
    RFC 6376 §3.7."""

    def signatures(self) -> list[bytes]:
        """The raw signature of each key, in order (in-process: the fallback)."""
        ...

    def signed(self, signatures: Sequence[bytes]) -> bytes:
        """The whole message to send: the DKIM-Signature fields on top."""
        ...


class Signer(Protocol):
    """Makes the signatures of an :class:`Unsigned` message somewhere other than the
    delivery's event loop (``digest.mail.sign_process.SigningProcess``: a child process)."""

    async def signatures(self, message: Any) -> list[bytes]:
        """What ``message.signatures()`` returns."""
        ...


_PUNCT_OR_SPACE = re.compile(r"[\W_]+", re.UNICODE)
_DERIVED_PREFIX = "sha1:"


def normalise_headline(headline: str) -> str:
    """Fold case, spacing and punctuation so near-identical headlines compare equal.

    >>> normalise_headline("  Oil Prices  Surge — following EU sanctions! ")
    'oil prices surge following eu sanctions'
    """
    text = unicodedata.normalize("NFKC", headline).casefold()
    return _PUNCT_OR_SPACE.sub(" ", text).strip()


def story_id(section: str, headline: str) -> str:
    """A stable id for a story that has neither guid nor url: a hash of section + headline."""
    key = f"{normalise_headline(section)}\x1f{normalise_headline(headline)}"
    return _DERIVED_PREFIX + hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def is_derived_id(value: str) -> bool:
    """True for an id :func:`story_id` made from section and headline (not a guid or url)."""
    return value.startswith(_DERIVED_PREFIX) and len(value) == len(_DERIVED_PREFIX) + 20


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of a story body: a paragraph or a subheading."""

    kind: Literal["paragraph", "subheading"]
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image to show with a story; width and height in CSS pixels when known."""

    url: str
    alt: str = ""
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Story:
    """One story from any source.

    ``summary`` is plain text; ``summary_html`` is sanitised HTML when the source had
    markup. ``published_at`` is timezone-aware or None. ``is_lead`` marks the story a
    page put first. ``future_dated`` marks a story whose source dated it later than the
    time it was read (beyond a small clock skew): it keeps that date, is reported, and is
    never chosen as the lead.
    """

    id: str
    section: str
    headline: str
    url: str | None = None
    summary: str | None = None
    summary_html: str | None = None
    body: tuple[Block, ...] = ()
    image: Image | None = None
    author: str | None = None
    published_at: datetime | None = None
    source: str = ""
    is_lead: bool = False
    future_dated: bool = False

    def to_json(self) -> dict[str, Any]:
        """The story as JSON-ready data (``build --json``)."""
        return {
            "id": self.id,
            "section": self.section,
            "headline": self.headline,
            "url": self.url,
            "summary": self.summary,
            "summary_html": self.summary_html,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "author": self.author,
            "image": (
                {
                    "url": self.image.url,
                    "alt": self.image.alt,
                    "width": self.image.width,
                    "height": self.image.height,
                }
                if self.image
                else None
            ),
            "body": [{"kind": b.kind, "text": b.text} for b in self.body],
            "source": self.source,
            "is_lead": self.is_lead,
            "future_dated": self.future_dated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Story:
        """Rebuild a story from :meth:`to_json` output (stored editions)."""
        image = data.get("image")
        published = data.get("published_at")
        return cls(
            id=data["id"],
            section=data["section"],
            headline=data["headline"],
            url=data.get("url"),
            summary=data.get("summary"),
            summary_html=data.get("summary_html"),
            body=tuple(Block(b["kind"], b["text"]) for b in data.get("body", ())),
            image=Image(**image) if image else None,
            author=data.get("author"),
            published_at=datetime.fromisoformat(published) if published else None,
            source=data.get("source", ""),
            is_lead=bool(data.get("is_lead", False)),
            future_dated=bool(data.get("future_dated", False)),
        )


@dataclass(frozen=True, slots=True)
class SkippedItem:
    """An item or line a source could not use, and why; ``line`` is 1-based or None."""

    source: str
    line: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "reason": self.reason}


@dataclass(slots=True)
class SourceResult:
    """What reading one or more sources gave: stories, skipped items, whole-source errors."""

    stories: list[Story] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def extend(self, other: SourceResult) -> None:
        self.stories.extend(other.stories)
        self.skipped.extend(other.skipped)
        self.errors.extend(other.errors)


@dataclass(frozen=True, slots=True)
class EditionSection:
    """A section of an edition: its name and its teasers, newest first."""

    name: str
    teasers: tuple[Story, ...]


@dataclass(frozen=True, slots=True)
class Edition:
    """One list's edition for one day: subject, preheader, the lead and the sections.

    ``subject`` and ``preheader`` are the list's patterns filled for the whole edition (the
    archive and the store show them); each section variant fills its own from what it shows
    (:mod:`digest.patterns`).

    ``excluded`` counts stories left out and why (``"already sent"``, ``"duplicate"``,
    ``"too old"``, ``"over the per-section limit"``) so a report can say so.
    """

    list_name: str
    date: date
    subject: str
    preheader: str
    lead: Story | None
    sections: tuple[EditionSection, ...]
    skipped: tuple[SkippedItem, ...] = ()
    excluded: tuple[tuple[str, int], ...] = ()

    @property
    def stories(self) -> tuple[Story, ...]:
        """Every story the edition carries, lead first."""
        lead = (self.lead,) if self.lead else ()
        return lead + tuple(s for sec in self.sections for s in sec.teasers)

    @property
    def section_names(self) -> tuple[str, ...]:
        return tuple(sec.name for sec in self.sections)

    def to_json(self) -> dict[str, Any]:
        """The edition as the JSON object ``build --json`` prints."""
        return {
            "list": self.list_name,
            "date": self.date.isoformat(),
            "subject": self.subject,
            "preheader": self.preheader,
            "lead": self.lead.to_json() if self.lead else None,
            "sections": [
                {"name": sec.name, "teasers": [s.to_json() for s in sec.teasers]}
                for sec in self.sections
            ],
            "skipped": [s.to_json() for s in self.skipped],
            "excluded": dict(self.excluded),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Edition:
        """Rebuild an edition from :meth:`to_json` output (stored editions)."""
        return cls(
            list_name=data["list"],
            date=date.fromisoformat(data["date"]),
            subject=data["subject"],
            preheader=data.get("preheader", ""),
            lead=Story.from_json(data["lead"]) if data.get("lead") else None,
            sections=tuple(
                EditionSection(sec["name"], tuple(Story.from_json(t) for t in sec["teasers"]))
                for sec in data["sections"]
            ),
            skipped=tuple(SkippedItem(**s) for s in data.get("skipped", ())),
            excluded=tuple(sorted(data.get("excluded", {}).items())),
        )


@dataclass(frozen=True, slots=True)
class RepeatKeys:
    """What earlier editions of a list carried, as the edition builder needs it.

    ``identities`` are normalised guids and links (:func:`digest.identity.identity_keys`)
    of every story readers received, ever; ``headlines`` are headline keys
    (:func:`digest.identity.headline_key`) of stories received within the list's
    ``repeat_window``. Both hold only keys of the stories being assembled (the store is
    asked about those, not for its whole history).
    """

    identities: frozenset[str] = frozenset()
    headlines: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CarriedStory:
    """Whether readers received one story of a sent edition, and through which variants.

    A variant is named by the sorted section names it showed. ``shown_in`` are the sent
    variants that showed the story, ``dropped_from`` those whose size budget left it out
    (the story's section was in them). ``carried`` follows the rule in
    :func:`digest.edition.carried_stories`.
    """

    story_id: str
    carried: bool
    shown_in: tuple[tuple[str, ...], ...] = ()
    dropped_from: tuple[tuple[str, ...], ...] = ()
