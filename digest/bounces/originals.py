"""Find our original message in a report: its headers, its Message-ID, its unsubscribe token.

Reports return the original in several shapes: a whole ``message/rfc822`` or
``message/global`` part (RFC 6532), its headers only as ``text/rfc822-headers`` (RFC 6522),
``message/rfc822-headers`` or ``message/global-headers`` (RFC 6533), or quoted as text
below the diagnosis (old Exim, qmail, webmail). Python's parser reads every ``message/*``
part except ``message/delivery-status`` as one embedded message, so header-only parts
arrive as a message with headers and no body; both forms are read here.

Only the original's *own* ``Message-ID`` identifies it: a ``References`` or ``In-Reply-To``
in the original names some other message (a reader's reply to us, say), and a report about
that message is not about our delivery.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from .text import (
    decoded_header,
    find_message_ids,
    find_unsubscribe_token,
    header_block,
    part_text,
)

__all__ = ["HEADER_PARTS", "ORIGINAL_PARTS", "diagnosis", "identify", "message_ids_named",
           "original_headers", "reply_ids"]

ORIGINAL_PARTS = ("message/rfc822", "message/global")
HEADER_PARTS = ("text/rfc822-headers", "text/rfc822-header", "message/rfc822-headers",
                "message/global-headers")
_QUOTED_ID = re.compile(r"^[ \t>]*(?:X-)?(?:Original-)?Message-ID:[ \t]*"
                        r"(<[^<>\s@]{1,200}@[^<>\s@]{1,253}>)", re.IGNORECASE | re.MULTILINE)
_QUOTED_IDS = re.compile(r"^[ \t>]*(?:(?:X-)?(?:Original-)?Message-ID|References|In-Reply-To):"
                         r"(.*(?:\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_BARE_ID = re.compile(r"[^<>\s@]{1,200}@[^<>\s@]{1,253}")
_QUOTED_ORIGINAL = re.compile(
    r"^[ \t]*-{2,}.*(?:original message|copy of the message|below this line|undelivered message)|"
    r"^[ \t]*original message headers:", re.IGNORECASE | re.MULTILINE)


def original_headers(parts: list[Message]) -> list[Message]:
    """The headers of every original attached to a report, in order, as messages."""
    found: list[Message] = []
    for part in parts:
        ctype = part.get_content_type()
        if ctype not in ORIGINAL_PARTS and ctype not in HEADER_PARTS:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            inner = payload[0] if payload and isinstance(payload[0], Message) else None
            if inner is not None and inner.keys():
                found.append(inner)
                continue
            # A blank line before the original's headers leaves them in the body.
            body = inner.get_payload() if inner is not None else None
            text = body if isinstance(body, str) else ""
        else:
            text = part_text(part)
        if text.strip():
            headers = HeaderParser(policy=compat32).parsestr(text.lstrip(), headersonly=True)
            if headers.keys():
                found.append(headers)
    return found


def reply_ids(msg: Message) -> str:
    """The report's own In-Reply-To and References (auto-replies and some MTAs set them)."""
    return " ".join(decoded_header(msg, name) for name in ("In-Reply-To", "References"))


def diagnosis(text: str) -> str:
    """``text`` up to where a quoted original begins (codes below it are not the diagnosis)."""
    cut = _QUOTED_ORIGINAL.search(text)
    return text[:cut.start()] if cut is not None and cut.start() > 0 else text


def identify(msg: Message, parts: list[Message], domain: str | None,
             text: str = "") -> tuple[str | None, str | None]:
    """``(message_id, token)`` of our original in a report.

    The Message-ID comes from, in order: the attached originals' own ``Message-ID``, the
    report's ``In-Reply-To`` / ``References`` (ledger-shaped only), ``Message-ID:`` lines
    quoted in ``text``, and ledger-shaped IDs in the diagnosis part of ``text``. Among
    these a ledger-shaped ID on ``domain`` is preferred, then any ledger-shaped one, then
    the first found (a foreign one names no delivery of ours and attributes nothing).
    The token comes from an original's ``List-Unsubscribe`` or, failing that, the text.
    """
    originals = original_headers(parts)
    candidates: list[str] = []
    for headers in originals:
        own = decoded_header(headers, "Message-ID")
        if "<" not in own and _BARE_ID.fullmatch(own):
            own = f"<{own}>"  # some feedback generators drop the angle brackets
        candidates += find_message_ids(own, domain, ledger_only=False)
    candidates += find_message_ids(reply_ids(msg), domain)
    if text:
        candidates += _QUOTED_ID.findall(text[:500_000])
        candidates += find_message_ids(diagnosis(text), domain)
    message_id = _best(candidates, domain)
    token = None
    for headers in originals:
        token = token or find_unsubscribe_token(decoded_header(headers, "List-Unsubscribe"))
    if token is None:
        blocks = [header_block(h) for h in originals] + [text]
        token = next(filter(None, (find_unsubscribe_token(t) for t in blocks)), None)
    return message_id, token


def message_ids_named(msg: Message, parts: list[Message], text: str) -> set[str]:
    """Every Message-ID the report and its originals name (headers and quoted lines), bare
    and lower-cased: a bounce's recipient line is never one of these."""
    values = [reply_ids(msg), decoded_header(msg, "Message-ID")]
    for headers in original_headers(parts):
        values += [decoded_header(headers, name)
                   for name in ("Message-ID", "In-Reply-To", "References")]
    values += _QUOTED_IDS.findall(text[:500_000])
    ids = find_message_ids(" ".join(values), None, ledger_only=False)
    return {i.strip("<>").lower() for i in ids}


def _best(candidates: list[str], domain: str | None) -> str | None:
    if not candidates:
        return None
    ledger = find_message_ids(" ".join(candidates), domain)
    return ledger[0] if ledger else candidates[0]
