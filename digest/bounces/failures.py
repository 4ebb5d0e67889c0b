"""Delivery failures: RFC 3464 DSNs (and RFC 6533 global DSNs), and bounces written in prose.

A DSN says per recipient what happened (``Action``, ``Status``, ``Diagnostic-Code``); the
code the report means and what it says about the reader follow :mod:`.status`. Bounces
that are not DSNs (old Exim, qmail, Yahoo, Exchange 2003 …) are read with flufl.bounce,
which knows the recipient lines of many such formats, and our own reading of the codes and
wording of the diagnosis above the quoted original.
"""

from __future__ import annotations

import email
import logging
import re
from email.message import Message
from email.policy import compat32

from flufl.bounce import all_failures

from digest.mailboxes import mailbox

from .events import BounceEvent
from .originals import HEADER_PARTS, diagnosis, identify, message_ids_named
from .status import assess, codes_in, pick_status, reply_status, specificity
from .text import address_key, part_text, report_address, report_fields, status_reason

__all__ = ["DSN_PARTS", "FLUFL_BYTES", "dsn_event", "prose_bounce_event", "prose_recipients"]

FLUFL_BYTES = 256_000
DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
_RANK = {("hard", "reader"): 4, ("soft", "reader"): 3, ("soft", "us"): 2}
_DELAY_WORDS = re.compile(r"\bdelayed\b|will (?:continue|keep) trying|has not yet been delivered|"
                          r"\btemporar", re.IGNORECASE)



def _drop(record: logging.LogRecord) -> bool:
    return False


# flufl.bounce logs a failing detector's traceback (which can quote the message, addresses
# included) before re-raising; the exception is caught below and the message read without
# it, so those records are dropped (a logger's own filter holds whatever the logging setup).
logging.getLogger("flufl.bounce").addFilter(_drop)


def dsn_event(msg: Message, parts: list[Message], domain: str | None,
              recipient: str | None = None) -> BounceEvent | None:
    """The event for a DSN, from the recipient block that matters most (hard over soft
    about the reader over soft about us over notices) or, given ``recipient``, from the
    block whose original or final recipient has that address. None when the DSN has no
    recipient block to read.

    A block's ``recipient`` is its ``Final-Recipient`` (RFC 3464 2.3.2: the address the
    failure is about, after any forwarding), its ``Original-Recipient`` only when it has no
    final one; ``recipients`` names both of every block, so the processor can find the
    reader's block and see that a failure is a forward target's, not the reader's.
    """
    blocks: list[Message] = []
    for part in parts:
        if part.get_content_type() in DSN_PARTS:
            blocks += [b for b in report_fields(part) if b.get("Final-Recipient")
                       or b.get("Original-Recipient") or b.get("Action")]
    if not blocks:
        return None
    events = [_block_event(block) for block in blocks]
    originals = [report_address(b.get("Original-Recipient")) for b in blocks]
    named = tuple(dict.fromkeys(a for e, o in zip(events, originals, strict=True)
                                for a in (o, e.recipient) if a))
    chosen = None
    if recipient is not None:
        box = mailbox(recipient)
        chosen = next((e for e, o in zip(events, originals, strict=True)
                       if any(a and mailbox(a) == box for a in (o, e.recipient))), None)
    if chosen is None:
        chosen = max(events, key=lambda e: _RANK.get((e.kind, e.about), 1))
    message_id, token = identify(msg, parts, domain, _human_text(parts))
    return BounceEvent(chosen.kind, message_id=message_id, token=token,
                       recipient=chosen.recipient, status=chosen.status,
                       reason=chosen.reason, about=chosen.about, recipients=named)


def _block_event(block: Message) -> BounceEvent:
    action = (block.get("Action") or "").strip().lower().split(" ")[0]
    recipient = (report_address(block.get("Final-Recipient"))
                 or report_address(block.get("Original-Recipient")))
    diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
    status = pick_status(str(block.get("Status") or ""), diagnostic)
    # Postfix's address probes (sendmail -bv) say "deliverable" with a 2.x.x status.
    if action in ("delivered", "relayed", "expanded", "deliverable") or (
            status and status.startswith("2.")):
        return BounceEvent("unknown", recipient=recipient, status=status,
                           reason=f"delivery notification ({action or 'success status'})")
    verdict = assess(status, diagnostic)
    if action == "delayed" or (not action and status and status.startswith("4.")):
        return BounceEvent("soft", recipient=recipient, status=status, about=verdict.about,
                           reason="delayed: " + status_reason(status))
    return BounceEvent(verdict.kind, recipient=recipient, status=status, about=verdict.about,
                       reason=status_reason(status))


def _human_text(parts: list[Message]) -> str:
    """The report's own prose: its text parts (HTML too: some NDRs have nothing else), not
    the returned original's headers."""
    return "\n".join(part_text(p) for p in parts
                     if p.get_content_maintype() == "text" and not p.is_multipart()
                     and p.get_content_type() not in HEADER_PARTS)


def prose_recipients(msg: Message, parts: list[Message],
                     raw: bytes = b"") -> tuple[tuple[str, ...], bool]:
    """The failed recipients flufl.bounce finds in a bounce written in prose (only plausible
    addresses, never a Message-ID the report quotes), and whether it found only temporary
    failures ("will keep trying").

    Of a message longer than :data:`FLUFL_BYTES` (``raw``, its bytes) only that much is
    read: the diagnosis comes first, and flufl.bounce's patterns take seconds over megabytes
    of a returned original.
    """
    ids = message_ids_named(msg, parts, _human_text(parts))
    if len(raw) > FLUFL_BYTES:
        msg = email.message_from_bytes(raw[:FLUFL_BYTES], policy=compat32)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector tripping on hostile input finds nothing
        return (), False
    found = []
    for value in sorted(permanent) + sorted(temporary - permanent):
        address = report_address(value.decode("ascii", "replace"))
        if address and address.lower() not in ids:
            found.append(address)
    return tuple(dict.fromkeys(found)), bool(temporary) and not permanent


def prose_bounce_event(msg: Message, parts: list[Message], domain: str | None,
                       recipient: str | None = None, *, raw: bytes = b"",
                       found: tuple[tuple[str, ...], bool] | None = None) -> BounceEvent:
    """A bounce that is not a DSN: the code and wording of its diagnosis, the recipients
    from ``X-Failed-Recipients`` or flufl.bounce (``found``, when :func:`prose_recipients`
    ran already); ``recipient`` picks one of several."""
    text = _human_text(parts)
    failed = [report_address(a) for a in str(msg.get("X-Failed-Recipients") or "").split(",")]
    named = tuple(a for a in failed if a)
    flufl_named, only_temporary = (found if found is not None
                                   else prose_recipients(msg, parts, raw))
    if not named:
        named = flufl_named
    event = _from_text(diagnosis(text), delayed=only_temporary)
    chosen = named[0] if len(named) == 1 else None
    if recipient is not None:
        key = address_key(recipient)
        chosen = next((a for a in named if address_key(a) == key), chosen)
    message_id, token = identify(msg, parts, domain, text)
    return BounceEvent(event.kind, message_id=message_id, token=token, recipient=chosen,
                       status=event.status, reason=event.reason, about=event.about,
                       recipients=named)


def _from_text(text: str, *, delayed: bool) -> BounceEvent:
    """Severity from the diagnosis: its most specific code (the first of equals), judged
    with the wording around it; without a code, the wording alone (always soft)."""
    codes = [c for c in codes_in(text) if c[0] in "45"]
    if not codes:
        status = reply_status(text)
        window = text
    else:
        status = max(codes, key=specificity)
        at = text.find(status)
        window = text[max(0, at - 300):at + 400]
    verdict = assess(status, window)
    if status is None or status.startswith("4."):
        delayed = delayed or bool(_DELAY_WORDS.search(text))
    if status is None:
        reason = "delayed (no status code)" if delayed else "bounce without a status code"
        return BounceEvent("soft", reason=reason, about=verdict.about)
    if delayed or status.startswith("4."):
        return BounceEvent("soft", status=status, about=verdict.about,
                           reason="delayed: " + status_reason(status))
    return BounceEvent(verdict.kind, status=status, about=verdict.about,
                       reason=status_reason(status))
