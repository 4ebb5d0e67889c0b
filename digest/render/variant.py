"""Slots: an inlined variant split at per-subscriber markers, filled by string joins alone.

A variant is rendered and inlined once with a marker in place of each per-subscriber value.
Markers are ASCII letters and digits only, so Jinja2, Premailer and lxml pass them through
untouched, even inside ``href``. Filling a slot must give the same bytes a full render would,
so values are escaped exactly as lxml serializes them: in text ``& < >`` become entities; a
URL is first normalised (anything outside RFC 3986's characters percent-encoded, which lxml
would do too) so that in an attribute only ``&`` needs escaping.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from digest.errors import RenderError
from digest.render.text import wrap_greeting

__all__ = [
    "MARKER_PREFIX",
    "SLOT_NAMES",
    "URL_SLOTS",
    "Drop",
    "Personalisation",
    "RenderedVariant",
    "greeting_for",
    "make_markers",
    "normalise_url",
    "split_at_markers",
]

MARKER_PREFIX = "DGSLOT"
SLOT_NAMES = ("greeting", "unsubscribe_url", "manage_url", "browser_url")
URL_SLOTS = frozenset({"unsubscribe_url", "manage_url", "browser_url"})
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"
_SPACES = re.compile(r"\s+")
# An absolute http(s) URL made only of characters quote() keeps: returned unchanged, fast.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~!$&'()*+,;=:@%\[\]]+"
                        r"(?:[/?#][A-Za-z0-9\-._~!#$%&'()*+,/:;=?@\[\]]*)?", re.ASCII)


@dataclass(frozen=True)
class Personalisation:
    """The per-subscriber values of one email; URLs are absolute http(s) URLs."""

    email: str
    name: str | None
    unsubscribe_url: str
    manage_url: str
    browser_url: str


def make_markers(token: str) -> dict[str, str]:
    """One marker per slot, e.g. ``DGSLOT1a2b3c4dMANAGEURLX`` (``token``: lowercase hex)."""
    if not re.fullmatch(r"[0-9a-f]+", token):
        raise ValueError(f"marker token must be lowercase hex, not {token!r}")
    return {name: f"{MARKER_PREFIX}{token}{name.replace('_', '').upper()}X" for name in SLOT_NAMES}


def clean_name(name: str | None) -> str | None:
    """The display name with control characters removed and whitespace collapsed."""
    if not name:
        return None
    if name.isprintable():  # no control, separator or surrogate characters: the usual case
        # The only whitespace a printable string holds is the ASCII space.
        return " ".join(name.split()) or None
    name = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in name)
    name = name.encode("utf-8", "replace").decode("utf-8")
    name = _SPACES.sub(" ", name).strip()
    return name or None


def greeting_for(name: str | None, named: str = "Hi %(name)s,",
                 anonymous: str = "Hello,") -> str:
    """``Hi Ana,`` for a subscriber with a name, ``Hello,`` for one without; ``named`` and
    ``anonymous`` are those two in the list's language (translated once per variant), the
    name going where ``named`` says ``%(name)s``."""
    cleaned = clean_name(name)
    if not cleaned:
        return anonymous
    before, after = _name_slot(named)
    return before + cleaned + after


def _name_slot(named: str) -> tuple[str, str]:
    """``named`` split around its ``%(name)s`` (gettext's python-format, ``%%`` a percent);
    a translation without the placeholder greets without the name."""
    before, mark, after = named.partition("%(name)s")
    if not mark:
        return named.replace("%%", "%"), ""
    return before.replace("%%", "%"), after.replace("%%", "%")


def normalise_url(url: str, *, slot: str = "url") -> str:
    """``url`` with every character outside RFC 3986's set percent-encoded.

    :raises RenderError: when ``url`` is not an absolute http(s) URL.
    """
    url = url.strip()
    if _PLAIN_URL.fullmatch(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise RenderError(f"The {slot} {url[:80]!r} is not an absolute http(s) URL; "
                          "check the web base URL in the configuration.")
    return quote(url, safe=_URL_SAFE)


def _html_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, slots=True)
class Drop:
    """A teaser the size budget left out of a variant."""

    section: str
    story_id: str
    headline: str


@dataclass(frozen=True)
class RenderedVariant:
    """One inlined variant of an edition, ready to be personalised by string joins.

    ``html_segments`` and ``html_slots`` alternate: segment, slot, segment, ... so
    ``len(html_segments) == len(html_slots) + 1``; the same holds for the text part.
    ``html_size`` is the HTML part as transmitted (in ``html_encoding``, CRLF) with the
    markers in place; per-subscriber values are covered by a reserve kept in the budget.
    ``dropped`` lists the teasers the budget left out, in drop order; ``subject`` and
    ``preheader`` are filled from the stories this variant shows.
    ``greetings`` are the named and anonymous greetings in the list's language;
    ``html_encoding`` and ``text_encoding`` the parts' Content-Transfer-Encodings
    (``quoted-printable`` or ``base64``, whichever is smaller).
    """

    sections: frozenset[str]
    html_segments: tuple[str, ...]
    html_slots: tuple[str, ...]
    text_segments: tuple[str, ...]
    text_slots: tuple[str, ...]
    html_size: int
    dropped: tuple[Drop, ...]
    warnings: tuple[str, ...]
    subject: str = ""
    preheader: str = ""
    greetings: tuple[str, str] = ("Hi %(name)s,", "Hello,")
    html_encoding: str = "quoted-printable"
    text_encoding: str = "quoted-printable"

    def __post_init__(self) -> None:
        # The named greeting around the name, split once: per subscriber only a join.
        object.__setattr__(self, "_greeting_parts", _name_slot(self.greetings[0]))

    def slot_values(self, p: Personalisation) -> tuple[dict[str, str], dict[str, str]]:
        """The escaped values for the HTML slots and the raw values for the text slots."""
        return self.values_for(p.name, p.unsubscribe_url, p.manage_url, p.browser_url)

    def values_for(self, name: str | None, unsubscribe_url: str, manage_url: str,
                   browser_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """:meth:`slot_values` from the values themselves (the send loop's form)."""
        cleaned = clean_name(name)
        if cleaned:
            before, after = self._greeting_parts  # type: ignore[attr-defined]
            greeting = before + cleaned + after
        else:
            greeting = self.greetings[1]
        plain = _PLAIN_URL.fullmatch
        if plain(unsubscribe_url) and plain(manage_url) and plain(browser_url):
            unsubscribe, manage, browser = unsubscribe_url, manage_url, browser_url
        else:  # what normalise_url returns for a plain URL is the URL itself
            unsubscribe = normalise_url(unsubscribe_url, slot="unsubscribe_url")
            manage = normalise_url(manage_url, slot="manage_url")
            browser = normalise_url(browser_url, slot="browser_url")
        text = {"greeting": wrap_greeting(greeting), "unsubscribe_url": unsubscribe,
                "manage_url": manage, "browser_url": browser}
        if "&" in unsubscribe or "&" in manage or "&" in browser:
            unsubscribe, manage, browser = (unsubscribe.replace("&", "&amp;"),
                                            manage.replace("&", "&amp;"),
                                            browser.replace("&", "&amp;"))
        html = {"greeting": _html_text(greeting), "unsubscribe_url": unsubscribe,
                "manage_url": manage, "browser_url": browser}
        return html, text

    def fill(self, p: Personalisation) -> tuple[str, str]:
        """The ``(html, text)`` of one subscriber's email."""
        html_values, text_values = self.slot_values(p)
        return (_join(self.html_segments, self.html_slots, html_values),
                _join(self.text_segments, self.text_slots, text_values))


def _join(segments: tuple[str, ...], slots: tuple[str, ...], values: dict[str, str]) -> str:
    parts = [segments[0]]
    for slot, segment in zip(slots, segments[1:], strict=True):
        parts.append(values[slot])
        parts.append(segment)
    return "".join(parts)


def split_at_markers(document: str, markers: dict[str, str], *, html: bool,
                     template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Cut ``document`` at every marker; check each sits where its escaping is right.

    In HTML a URL marker must be a whole ``href`` value and the greeting must be in text
    (not inside a tag). In text every marker must be a line of its own, so wrapping holds.

    :raises RenderError: naming ``template`` when a marker is somewhere else, or when a
        marker prefix is left that matches no slot (a damaged marker).
    """
    by_marker = {m: name for name, m in markers.items()}
    pattern = re.compile("|".join(re.escape(m) for m in markers.values()))
    segments: list[str] = []
    slots: list[str] = []
    start = 0
    for match in pattern.finditer(document):
        name = by_marker[match.group(0)]
        before, after = document[:match.start()], document[match.end():]
        if html and name in URL_SLOTS:
            ok = before.endswith('href="') and after.startswith('"')
        elif html:
            ok = before.rfind(">") > before.rfind("<")
        else:
            ok = (before == "" or before.endswith("\n")) and (after == "" or after[0] == "\n")
        if not ok:
            where = "a whole href value" if html and name in URL_SLOTS else (
                "text between tags" if html else "a line of its own")
            raise RenderError(f"The template {template} puts {name} somewhere other than "
                              f"{where}; move it there.")
        segments.append(document[start:match.start()])
        slots.append(name)
        start = match.end()
    segments.append(document[start:])
    prefix = os.path.commonprefix(list(markers.values()))
    if any(prefix in seg for seg in segments):
        raise RenderError(f"A slot marker was damaged while rendering {template}; "
                          "do not pass slot values through filters.")
    return tuple(segments), tuple(slots)
