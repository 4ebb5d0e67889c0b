"""What a failure report's status codes say, and whether they are about the reader.

The rules (RFC 3463 codes, the most specific one wins, hard only for the reader's own
address, wording can only take evidence away) live in :mod:`digest.smtpstatus`, shared with
delivery and the ledger's failure groups; they are re-exported here. This module adds what
is particular to reports: a DSN carries a ``Status`` field (written by the reporting MTA;
Exim always writes ``5.0.0``) and the receiving server's own reply in ``Diagnostic-Code``
(Amazon SES quotes both its own code and the remote one), and :func:`pick_status` chooses
among them: the most specific, ties to the diagnostic, with the class of the ``Status``
field when the report has one (the reporting MTA's verdict after its retries).
"""

from __future__ import annotations

import re

from digest.smtpstatus import (
    ABOUT_US_DETAILS,
    ABOUT_US_SUBJECTS,
    HARD_DETAILS,
    Verdict,
    assess,
    codes_in,
    specificity,
)

__all__ = [
    "ABOUT_US_DETAILS",
    "ABOUT_US_SUBJECTS",
    "HARD_DETAILS",
    "Verdict",
    "assess",
    "codes_in",
    "pick_status",
    "reply_status",
    "specificity",
]

_REPLY = re.compile(r"(?<![\d.#])([245])\d\d(?=[ -]|$)", re.MULTILINE)
_SCAN = 4000


def pick_status(status_field: str, diagnostic: str) -> str | None:
    """The code a report means: the most specific of the ``Status`` field's code and the
    diagnostic's codes (ties go to the diagnostic), with the class of the ``Status`` field
    when it has one. Without any enhanced code, a basic reply code in the diagnostic gives
    ``X.0.0``; None when there is neither.
    """
    stated = codes_in(status_field)
    said = codes_in(diagnostic)
    candidates = said + stated[:1]
    if not candidates:
        reply = _REPLY.search(diagnostic[:_SCAN])
        return f"{reply.group(1)}.0.0" if reply else None
    # max() keeps the first of equals, and the diagnostic's codes come first.
    best = max(candidates, key=specificity)
    if stated:
        best = stated[0][0] + best[1:]
    return best


def reply_status(text: str) -> str | None:
    """``"5.0.0"`` or ``"4.0.0"`` for the first failure reply code (4xx, 5xx) in a
    transcript or prose without enhanced codes, else None."""
    for match in _REPLY.finditer(text[:_SCAN]):
        if match.group(1) in "45":
            return f"{match.group(1)}.0.0"
    return None
