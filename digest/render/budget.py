"""The size budget: Gmail clips an HTML part over ~102 KB, so we keep ours under 90 KB.

Gmail counts the part as transmitted, after its Content-Transfer-Encoding, so the budget is
measured in the encoding the part will use: :func:`transfer_encoding` picks quoted-printable
or base64, whichever is smaller (base64 for text mostly in non-Latin script, where
quoted-printable spends 9 bytes on a 3-byte character), and the mail stage uses that choice.
"""

from __future__ import annotations

import math
import re
from email import quoprimime

from digest.models import Edition

__all__ = [
    "HTML_BUDGET",
    "SLOT_RESERVE",
    "STYLE_BUDGET",
    "base64_size",
    "estimate_drop_count",
    "pick_drops",
    "qp_size",
    "style_bytes",
    "transfer_encoding",
    "transmitted_size",
]

HTML_BUDGET = 90 * 1024
"""Bytes of the HTML part as transmitted (quoted-printable, CRLF line ends)."""
SLOT_RESERVE = 2 * 1024
"""Room kept free for per-subscriber values filled into the slots after the budget check."""
STYLE_BUDGET = 16 * 1024
"""Gmail drops every <style> beyond 16 KB in total; over this we warn."""

_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)


def qp_size(text: str) -> int:
    """Bytes of ``text`` as a UTF-8 quoted-printable MIME body with CRLF line ends.

    This is what :mod:`email` produces for ``set_content(text, subtype="html",
    cte="quoted-printable")``.
    """
    raw = text.encode("utf-8").decode("latin-1")
    body = quoprimime.body_encode(raw, 76)
    if not body.endswith("\n"):
        body += "\n"
    return len(body) + body.count("\n")


def base64_size(text: str) -> int:
    """Bytes of ``text`` as a UTF-8 base64 MIME body: its line ends encoded as CRLF (the
    canonical form of text), 76-character lines with CRLF after each."""
    raw = text.replace("\r\n", "\n").encode("utf-8")
    chars = 4 * math.ceil((len(raw) + raw.count(b"\n")) / 3)
    return chars + 2 * max(1, math.ceil(chars / 76))


def transfer_encoding(text: str) -> tuple[str, int]:
    """``(encoding, bytes transmitted)`` for a text part: ``"base64"`` when that is smaller
    than quoted-printable, else ``"quoted-printable"`` (RFC 2045 sections 6.7, 6.8)."""
    qp, b64 = qp_size(text), base64_size(text)
    return ("base64", b64) if b64 < qp else ("quoted-printable", qp)


def transmitted_size(html: str) -> int:
    """Bytes of ``html`` as transmitted in the smaller of the two encodings (Gmail's clipping
    counts these bytes, not the characters)."""
    return transfer_encoding(html)[1]


def style_bytes(html: str) -> int:
    """Total UTF-8 bytes inside every ``<style>`` element of ``html``."""
    return sum(len(m.group(1).encode("utf-8")) for m in _STYLE.finditer(html))


def pick_drops(edition: Edition, sections: frozenset[str], already: list[tuple[str, str]],
               count: int) -> list[tuple[str, str]]:
    """Choose ``count`` more teasers to drop, always from the section that has most left.

    Ties go to the section listed later (earlier sections are the more prominent ones);
    within a section the last teaser (the oldest) goes first.

    :param already: ``(section, story id)`` pairs dropped before.
    :returns: the new ``(section, story id)`` pairs, in drop order.
    """
    gone = set(already)
    left = {sec.name: [s.id for s in sec.teasers if (sec.name, s.id) not in gone]
            for sec in edition.sections if sec.name in sections}
    order = [sec.name for sec in edition.sections if sec.name in sections]
    picked: list[tuple[str, str]] = []
    for _ in range(count):
        candidates = [name for name in order if left[name]]
        if not candidates:
            break
        longest = max(len(left[name]) for name in candidates)
        name = [n for n in candidates if len(left[n]) == longest][-1]
        picked.append((name, left[name].pop()))
    return picked


def estimate_drop_count(size: int, budget: int, teasers_left: int) -> int:
    """How many teasers to drop at once so that ``size`` gets under ``budget``.

    Each teaser is taken to cost ``size / teasers_left`` bytes, more than it really does
    (the page around them counts too), so the estimate errs towards dropping too few and
    the caller renders again; at least one goes.
    """
    if teasers_left <= 0 or size <= budget:
        return 0
    per_teaser = max(1.0, size / teasers_left)
    return max(1, min(teasers_left, math.ceil((size - budget) / per_teaser)))
