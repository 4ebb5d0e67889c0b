"""RFC 3463 enhanced status codes: reading them from a reply or a report, and what they
say about the recipient. Shared by delivery (the relay's reply to RCPT or DATA,
:mod:`digest.deliver.classify`), bounce processing (:mod:`digest.bounces.status`) and the
ledger's failure groups (:mod:`digest.store.failures`), so one rule decides everywhere.

Codes are ``class.subject.detail``: class 2 success, 4 persistent transient failure, 5
permanent failure; the subject says what failed (RFC 3463 section 3: 1 addressing, 2
mailbox, 3 mail system, 4 network and routing, 5 protocol, 6 content, 7 security and
policy). The basic reply code (RFC 5321 section 4.2) decides permanent or transient; the
enhanced code says what about.

- **The most specific code wins** (:func:`most_specific`): ``X.Y.Z`` beats ``X.Y.0`` beats
  ``X.0.0``; the first of equals.
- **Hard** (:data:`HARD_DETAILS`): only permanent failures about the recipient's address
  itself: 5.1.1 bad mailbox, 5.1.2 bad domain, 5.1.3 bad address syntax, 5.1.6 mailbox
  moved, 5.1.10 null MX (RFC 7505), 5.2.1 mailbox disabled.
- **Soft about the reader**: every other failure of the reader's mailbox, address, domain
  or its mail system (X.1.x, X.2.x, X.3.x, X.4.x, X.0.0, transient or not).
- **Soft about us** (:data:`ABOUT_US_SUBJECTS`, :data:`ABOUT_US_DETAILS`): failures about our
  message, our sender or the receiver's policy towards us: 5.1.7 / 5.1.8 (the *sender's*
  address, RFC 3463 section 3.2), 5.2.3 and 5.3.4 (message too big), 5.3.3, every X.5.x
  (protocol), X.6.x (content) and X.7.x (security, policy, spam, DMARC: RFC 3463 3.8,
  RFC 7372). They say nothing about the reader and never count against them.

The server's wording can only take evidence away from the reader, never make anything hard:
wording about us (spam, policy, blocklists, authentication, rate limits, our sender) makes
any failure one about us, even under a hard code (a server that writes 5.2.1 for "receiving
mail at a rate that prevents additional messages"); wording about the reader (user unknown,
invalid recipient) counts only under a generic code of the protocol, content or policy
subjects (a 5.5.0 "invalid recipient" is a soft bounce of the reader's, not ours). A code
of ``X.0.0`` or a bare reply code without such wording is a soft bounce of the reader's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ABOUT_US_DETAILS",
    "ABOUT_US_SUBJECTS",
    "HARD_DETAILS",
    "Verdict",
    "about_us",
    "assess",
    "codes_in",
    "most_specific",
    "specificity",
]

HARD_DETAILS = frozenset({"1.1", "1.2", "1.3", "1.6", "1.10", "2.1"})
ABOUT_US_SUBJECTS = frozenset({"5", "6", "7"})
ABOUT_US_DETAILS = frozenset({"1.7", "1.8", "2.3", "3.3", "3.4"})

# Subjects are 0-7 (RFC 3463 section 3); "Exim 4.94.2" is a version, not a code.
_CODE = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?![\d.]*\d)")
_SCAN = 4000

_ABOUT_US_TEXT = re.compile(
    r"spam|unsolicited|\bjunk\b|black ?list|block ?list|deny ?list|\bblocked\b|\bbanned\b|"
    r"\bdnsbl|\brbl\b|spamhaus|spamcop|barracuda|reputation|\bpolic(?:y|ies)\b|dmarc|"
    r"\bspf\b|dkim|unauthenticated|authentication|\bvirus(?:es)? (?:found|detected)|"
    r"\binfected\b|malware|phish|content (?:rejected|refused|filter)|"
    r"rejected (?:due to|because of) (?:its )?content|rate limit|\bat a rate\b|"
    r"too many (?:connections|messages|recipients|sessions|concurrent|e?mails)|"
    r"\bsender(?: address| domain)? (?:address )?"
    r"(?:rejected|refused|denied|blocked|unknown|not (?:allowed|verified))|sender verif|"
    r"reverse dns|\bptr\b|rfc ?5322|not accepting connections|mismatches client ip",
    re.IGNORECASE)
_ABOUT_READER_TEXT = re.compile(
    r"user unknown|unknown (?:user|recipient|mailbox|address)|user not found|"
    r"no such (?:user|mailbox|recipient|address|account|domain)|"
    r"(?:user|mailbox|recipient|address|account)\S*(?: \S+)? (?:does not|doesn't) exist|"
    r"(?:invalid|bad) (?:recipient|mailbox|address)|recipient (?:address )?rejected|"
    r"mailbox (?:unavailable|not found|(?:is )?full|disabled|inactive)|over ?quota|"
    r"quota exceeded|account (?:is )?(?:disabled|inactive|suspended|closed|frozen)|"
    r"mailbox is frozen|not our (?:user|customer)|no longer (?:on|at|with)|"
    r"(?:domain|host) (?:name )?not found|domain is not reachable|unrouteable|"
    r"have a [\w.-]+ account",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a failure means: ``kind`` "hard" or "soft"; ``about`` "reader" (the failure
    concerns the reader's address, mailbox or mail system) or "us" (our message, our
    sender or the receiver's policy towards us)."""

    kind: str
    about: str


def codes_in(text: str, limit: int = _SCAN) -> list[str]:
    """The RFC 3463 codes in the first ``limit`` characters of ``text``, in order
    (``"5.1.1"``; ``#5.1.1`` as qmail writes it counts too)."""
    return [".".join(m.groups()) for m in _CODE.finditer(text[:limit])]


def specificity(code: str) -> int:
    """2 for ``X.Y.Z`` with Z not 0, 1 for ``X.Y.0`` (Y not 0) or ``X.0.Z``, 0 for ``X.0.0``."""
    _, subject, detail = code.split(".")
    if detail != "0" and subject != "0":
        return 2
    return 1 if (subject, detail) != ("0", "0") else 0


def most_specific(codes: Iterable[str]) -> str | None:
    """The most specific of ``codes`` (the first of equals), or None when there is none.

    >>> most_specific(["5.0.0", "5.1.1", "5.1.0"])
    '5.1.1'
    """
    best: str | None = None
    for code in codes:
        if best is None or specificity(code) > specificity(best):
            best = code
    return best


def about_us(text: str) -> bool:
    """True when a server's ``text`` speaks of us (spam, policy, blocklists, our sender,
    rate limits) rather than of the recipient."""
    return bool(_ABOUT_US_TEXT.search(text[:_SCAN]))


def assess(status: str | None, text: str = "") -> Verdict:
    """Hard or soft, about the reader or about us, for a failed delivery's ``status``
    (None when the report has no code) and the server's wording ``text``.
    """
    wording_us = bool(_ABOUT_US_TEXT.search(text[:_SCAN]))
    if status is None or status.startswith("2."):
        about = "us" if wording_us else "reader"
        return Verdict("soft", about)
    klass, subject, detail = status.split(".")
    pair = f"{subject}.{detail}"
    if subject in ABOUT_US_SUBJECTS or pair in ABOUT_US_DETAILS:
        if specificity(status) == 2 or not _ABOUT_READER_TEXT.search(text[:_SCAN]):
            return Verdict("soft", "us")
        # A generic 5.5.0 / 5.7.0 saying "invalid recipient": the reader's side after all.
        return Verdict("soft", "us" if wording_us else "reader")
    if wording_us:
        return Verdict("soft", "us")
    if klass == "5" and pair in HARD_DETAILS:
        return Verdict("hard", "reader")
    return Verdict("soft", "reader")
