"""Why a ledger row did not deliver, as one short label that groups like failures together.

The ledger keeps, for a row that ended badly, its ``reason`` (``smtp 550``, ``refused``,
``retries exhausted``, why a row was skipped) and the relay's last words in ``last_error``,
written by the delivery stage as ``<code> at <PHASE>: <reply text>`` with addresses
redacted (``550 at RCPT: 5.1.1 <address>: User unknown``). The reply code alone merges
reasons that have nothing in common: under ``550`` a mailbox that does not exist (5.1.1)
and a refusal by policy (5.7.1). So the label adds, where the text carries them, the
RFC 3463 enhanced status code (the most specific one the reply quotes, in the reply
code's class, as RFC 3463 section 2 and RFC 2034 place it) and the SMTP phase.
"""

from __future__ import annotations

import re

from digest.smtpstatus import codes_in, most_specific

__all__ = ["failure_label", "reply_status"]

_PREFIX = re.compile(r"^\s*(?P<code>[2-5]\d\d)\s+at\s+(?P<phase>[A-Za-z]+)\s*:?\s*")
_SCAN = 300  # the code is near the start of a reply; the rest is prose


def reply_status(text: str, code: int | None = None) -> str | None:
    """The RFC 3463 status a reply's ``text`` quotes: the most specific code (``X.Y.Z``
    with non-zero parts beats ``X.Y.0`` beats ``X.0.0``; the first of equals), in the
    class of the reply ``code`` when known. None when the text quotes none.

    >>> reply_status("5.0.0 <address>: 5.1.1 user unknown", 550)
    '5.1.1'
    >>> reply_status("Recipient address rejected") is None
    True
    """
    best = most_specific(codes_in(text, _SCAN))  # digest.smtpstatus: RFC 3463's rules
    if best is None:
        return None
    klass, subject, detail = best.split(".")
    if code is not None and 200 <= code < 600:
        klass = str(code)[0]
    return f"{klass}.{int(subject)}.{int(detail)}"


def failure_label(reason: str | None, last_error: str | None,
                  last_code: int | None = None) -> str:
    """The group a row belongs to: its stored ``reason`` refined by the enhanced status
    code and the phase found in ``last_error``.

    >>> failure_label("smtp 550", "550 at RCPT: 5.1.1 <address>: User unknown", 550)
    'smtp 550 5.1.1 at RCPT'
    >>> failure_label("smtp 550", "550 at RCPT: 5.7.1 rejected by policy", 550)
    'smtp 550 5.7.1 at RCPT'
    >>> failure_label("retries exhausted", "451 at RCPT: 4.7.1 Greylisted", 451)
    'retries exhausted (last: 451 4.7.1 at RCPT)'
    >>> failure_label("smtp 550", None, 550)
    'smtp 550'
    """
    base = reason or ""
    text = last_error or ""
    prefix = _PREFIX.match(text)
    code = last_code
    phase = ""
    if prefix is not None:
        code = int(prefix.group("code"))
        phase = prefix.group("phase").upper()
        text = text[prefix.end():]
    status = reply_status(text, code)
    parts = [p for p in (status, f"at {phase}" if phase else "") if p]
    if not parts:
        return base or "no reason recorded"
    if base.startswith("smtp ") or base == "refused":
        if base == "refused" and code is not None:
            base = f"smtp {code}"
        return " ".join([base, *parts])
    detail = " ".join([*([str(code)] if code else []), *parts])
    return f"{base} (last: {detail})" if base else detail
