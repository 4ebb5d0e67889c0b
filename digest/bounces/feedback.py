"""Feedback reports: ARF (RFC 5965) and Outlook.com's junk-mail reports (JMRP).

Only a reader's own abuse or fraud complaint is evidence against the reader. The
``Feedback-Type`` values (IANA's MARF registry) are read so:

========================  ===================================================================
``abuse`` (RFC 5965)      complaint: the reader marked our message as spam or abuse
``fraud`` (RFC 5965)      complaint: the reader reported it as fraud or phishing
``opt-out``               unsubscribe: the reader asked to be removed (the pre-RFC ARF draft's
                          type, still sent by some providers); names the list's message
``not-spam`` (RFC 6430)   no action: the reporter says the message is *not* spam
``auth-failure``          no action: a DMARC/SPF/DKIM failure report (RFC 6591) about how
(RFC 6591)                our mail was authenticated, written by a receiving system
``virus`` (RFC 5965)      no action: a virus was found in the message; a fault of the
                          message, not the reader's wish
``other`` (RFC 5965)      no action: unspecified feedback is no evidence of a complaint
missing or unknown        no action: RFC 5965 section 3.1 requires the field, so a report
                          without a known type is not read as a complaint
========================  ===================================================================

A JMRP report (Microsoft's Junk Mail Reporting Program) is not ARF: a ``multipart/mixed`` or
``multipart/report`` message without a ``message/feedback-report`` part, sent by
``staff@hotmail.com`` with the subject "complaint about message from <IP>", that attaches the
reported message with an ``X-HmXmrOriginalRecipient`` header naming the reader who marked it
as junk. It is a complaint about that reader, attributed (like every report) by our
Message-ID in the attached original.
"""

from __future__ import annotations

import re
from email.message import Message

from .events import BounceEvent
from .originals import identify, original_headers
from .text import decoded_header, report_address, report_fields

__all__ = ["COMPLAINT_TYPES", "arf_event", "is_jmrp", "jmrp_event"]

COMPLAINT_TYPES = frozenset({"abuse", "fraud"})
_OPT_OUT_TYPES = frozenset({"opt-out", "opt-out-list"})
_NO_ACTION = {
    "not-spam": "not-spam (the reporter says it is not spam)",
    "auth-failure": "auth-failure (a DMARC/SPF/DKIM report about our mail, RFC 6591)",
    "virus": "virus (about the message, not a reader's complaint)",
    "other": "other (unspecified feedback, not a complaint)",
}
_JMRP_SUBJECT = re.compile(r"^\s*complaint about message from\b", re.IGNORECASE)
_JMRP_HEADER = "X-HmXmrOriginalRecipient"


def arf_event(msg: Message, parts: list[Message], domain: str | None) -> BounceEvent:
    """The event an ARF report calls for (see the table above)."""
    fields = Message()
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            blocks = report_fields(part)
            if blocks:
                fields = blocks[0]
            break
    feedback = " ".join(str(fields.get("Feedback-Type") or "").split()).lower()
    recipient = (report_address(fields.get("Original-Rcpt-To"))
                 or report_address(fields.get("Removal-Recipient")))
    message_id, token = identify(msg, parts, domain)
    if feedback in COMPLAINT_TYPES:
        kind, reason = "complaint", f"complaint ({feedback})"
    elif feedback in _OPT_OUT_TYPES:
        kind, reason = "unsubscribe", f"feedback report asking to opt out ({feedback})"
    else:
        label = _NO_ACTION.get(feedback) or (f"of unknown type {feedback[:40]!r}" if feedback
                                             else "without a Feedback-Type")
        kind, reason = "feedback", f"feedback report {label}"
    return BounceEvent(kind, message_id=message_id, token=token, recipient=recipient,
                       reason=reason)


def is_jmrp(msg: Message, parts: list[Message]) -> bool:
    """True for an Outlook.com / Hotmail junk-mail report (see the module docstring)."""
    if not msg.is_multipart() or msg.get_content_type() not in ("multipart/mixed",
                                                                  "multipart/report"):
        return False
    if any(p.get_content_type() == "message/feedback-report" for p in parts):
        return False
    if any(headers.get(_JMRP_HEADER) for headers in original_headers(parts)):
        return True
    sender = decoded_header(msg, "From").lower()
    return bool(_JMRP_SUBJECT.match(decoded_header(msg, "Subject"))
                and re.search(r"\bstaff@hotmail\.com\b", sender))


def jmrp_event(msg: Message, parts: list[Message], domain: str | None) -> BounceEvent:
    """A complaint about the reader the reported original was sent to."""
    recipient = None
    for headers in original_headers(parts):
        recipient = (report_address(headers.get(_JMRP_HEADER))
                     or report_address(decoded_header(headers, "To")))
        if recipient:
            break
    message_id, token = identify(msg, parts, domain)
    return BounceEvent("complaint", message_id=message_id, token=token, recipient=recipient,
                       reason="complaint (Outlook.com junk-mail report)")
