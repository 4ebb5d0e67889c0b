"""Classify one received message: DSN bounce, ARF complaint, mailto unsubscribe, auto-reply or other.

Pure functions of bytes: :func:`classify` never raises and never touches the store, and
:func:`decide` says what a :class:`BounceEvent` should do (the processor applies it only when
the event names one of our deliveries or carries a valid signed token).
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from .text import (
    decoded_header,
    find_message_ids,
    find_unsubscribe_token,
    header_block,
    part_text,
    status_reason,
)

__all__ = ["ACTION_KINDS", "EVENT_KINDS", "Action", "BounceEvent", "classify", "decide"]

EVENT_KINDS = ("hard", "soft", "complaint", "unsubscribe", "auto-reply", "unknown")
ACTION_KINDS = ("suppress-bounced", "suppress-complained", "unsubscribe", "record-soft",
                "ignore")
MAX_BYTES = 2_000_000

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?:[ -])")
_SUBJECT_UNSUBSCRIBE = re.compile(r"^\s*(?:(?:re|fwd?|aw)\s*:\s*)*unsubscribe(?:\s+(\S+))?\s*$",
                                  re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"delivery status notification \((?:failure|delay)\)|undeliver(?:ed|able)|"
    r"mail delivery (?:failed|failure|system)|returned mail|failure notice|"
    r"delivery (?:failure|has failed|problem)|could not be delivered|non[- ]?delivery|"
    r"warning: could not send message|delayed mail", re.IGNORECASE)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (?:subsystem|system)",
                            re.IGNORECASE)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|"
    r"autoreply|auto:|vacation|away from (?:my|the) (?:office|desk)|abwesenheit|"
    r"r[ée]ponse automatique|absence|respuesta autom[áa]tica|risposta automatica)",
    re.IGNORECASE)
_DELAY_WORDS = re.compile(r"\bdelayed\b|will (?:continue|keep) trying|"
                          r"has not yet been delivered|temporar", re.IGNORECASE)
_QUOTED_ORIGINAL = re.compile(
    r"^[ \t]*-{2,}.*(?:original message|copy of the message|below this line)|"
    r"^[ \t]*original message headers:", re.IGNORECASE | re.MULTILINE)
_PERMANENT_WORDS = re.compile(r"permanent(?:ly)? (?:error|failure|fatal)|"
                              r"could not be delivered|user unknown|no such user|"
                              r"does not exist|mailbox unavailable", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BounceEvent:
    """What one received message says.

    ``message_id`` is the Message-ID of our original message when the report carries it
    (attached or quoted headers, an ARF report's original, In-Reply-To/References);
    ``token`` an unsubscribe token (mailto subject, or our List-Unsubscribe URL in an
    attached original); ``recipient`` the Final-/Original-Recipient the report names, if
    any (never trusted on its own); ``status`` an RFC 3463 code such as "5.1.1".
    """

    kind: str
    message_id: str | None = None
    token: str | None = None
    recipient: str | None = None
    status: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """What to do about an event (``kind`` one of :data:`ACTION_KINDS`)."""

    kind: str
    reason: str


def decide(event: BounceEvent) -> Action:
    """The action an event calls for, before attribution (the processor still checks that
    ``message_id`` is one of our deliveries or ``token`` is a valid signature).

    Hard bounces and complaints suppress, soft bounces are counted, a mailto unsubscribe
    unsubscribes; auto-replies and anything unrecognised never change anything, and an event
    that carries neither a Message-ID nor a token cannot be attributed, so it is ignored.
    """
    if event.kind == "auto-reply":
        return Action("ignore", "auto-reply")
    if event.kind == "unknown":
        return Action("ignore", event.reason or "not a bounce")
    if event.kind == "unsubscribe":
        if not event.token and not event.message_id:
            return Action("ignore", "unattributed: unsubscribe request without a token")
        return Action("unsubscribe", "mailto unsubscribe")
    if not event.message_id and not event.token:
        return Action("ignore", f"unattributed: {event.kind} report names none of our messages")
    if event.kind == "hard":
        return Action("suppress-bounced", event.reason or "hard bounce")
    if event.kind == "soft":
        return Action("record-soft", event.reason or "soft bounce")
    if event.kind == "complaint":
        return Action("suppress-complained", event.reason or "complaint")
    return Action("ignore", f"unhandled event kind {event.kind!r}")


def classify(raw: bytes, *, domain: str | None = None) -> BounceEvent:
    """Classify the bytes of one message (never raises: unreadable input is "unknown").

    :param domain: our Message-ID domain; Message-IDs on it are preferred when a report
        quotes several.
    """
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        return BounceEvent("unknown", reason="empty message")
    if len(raw) > MAX_BYTES:
        raw = raw[:MAX_BYTES]
    try:
        msg = email.message_from_bytes(bytes(raw), policy=compat32)
        if not msg.keys():
            return BounceEvent("unknown", reason="not an email message")
        return _classify(msg, domain)
    except Exception as exc:  # noqa: BLE001 - hostile input must never stop a run
        return BounceEvent("unknown", reason=f"unreadable message ({type(exc).__name__})")


def _classify(msg: Message, domain: str | None) -> BounceEvent:
    ctype = msg.get_content_type()
    report_type = (msg.get_param("report-type") or "")
    report_type = report_type.lower() if isinstance(report_type, str) else ""
    parts = list(msg.walk()) if msg.is_multipart() else [msg]
    part_types = {p.get_content_type() for p in parts}
    if report_type == "feedback-report" or "message/feedback-report" in part_types:
        return _arf(msg, parts, domain)
    if report_type == "delivery-status" or "message/delivery-status" in part_types:
        return _dsn(msg, parts, domain)
    if ctype == "multipart/report":
        return BounceEvent("unknown", reason=f"report of type {report_type or 'unknown'}")

    subject = decoded_header(msg, "Subject")
    sub_match = _SUBJECT_UNSUBSCRIBE.match(subject)
    to = decoded_header(msg, "To").lower()
    to_us = re.search(r"(?:^|[<\s,])unsubscribe@", to) and not _is_auto_reply(msg, subject)
    if sub_match or to_us:
        token = sub_match.group(1) if sub_match and sub_match.group(1) else None
        if token is None:
            token = find_unsubscribe_token(subject)
        return BounceEvent("unsubscribe", token=token,
                           message_id=_first(find_message_ids(_reply_ids(msg), domain)),
                           reason="mailto unsubscribe")

    if _looks_like_bounce(msg, subject):
        return _plain_bounce(msg, parts, domain)
    if _is_auto_reply(msg, subject):
        return BounceEvent("auto-reply", message_id=_first(find_message_ids(_reply_ids(msg),
                                                                            domain)),
                           reason="auto-reply")
    return BounceEvent("unknown", reason="not a bounce, complaint or unsubscribe")


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _reply_ids(msg: Message) -> str:
    return " ".join(decoded_header(msg, name) for name in ("In-Reply-To", "References"))


def _originals(parts: list[Message]) -> list[str]:
    """The header text of attached originals (message/rfc822 or text/rfc822-headers)."""
    found: list[str] = []
    for part in parts:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found.append(header_block(payload[0]))
            elif isinstance(payload, str):
                found.append(payload)
        elif ctype in ("text/rfc822-headers", "text/rfc822-header", "message/rfc822-headers",
                       "message/global-headers"):
            found.append(part_text(part))
    return found


def _identify(msg: Message, parts: list[Message], domain: str | None,
              extra_text: str = "") -> tuple[str | None, str | None]:
    """``(message_id, token)`` of our original, looking in the attached original headers
    first, then the report's In-Reply-To/References, then quoted text."""
    originals = _originals(parts)
    message_id = None
    token = None
    for text in originals:
        headers = HeaderParser(policy=compat32).parsestr(text, headersonly=True)
        own = find_message_ids(headers.get("Message-ID", "") or "", domain, ledger_only=False)
        message_id = message_id or _first(find_message_ids(text, domain)) or _first(own)
        token = token or find_unsubscribe_token(headers.get("List-Unsubscribe", "") or "")
    message_id = message_id or _first(find_message_ids(_reply_ids(msg), domain))
    if message_id is None and extra_text:
        message_id = _first(find_message_ids(extra_text, domain))
    if token is None:
        token = next(filter(None, (find_unsubscribe_token(t) for t in [*originals, extra_text])),
                     None)
    return message_id, token


# --------------------------------------------------------------------------- ARF (RFC 5965)


def _arf(msg: Message, parts: list[Message], domain: str | None) -> BounceEvent:
    fields = Message()
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            blocks = _report_fields(part)
            if blocks:
                fields = blocks[0]
            break
    feedback = (fields.get("Feedback-Type") or "abuse").strip().lower()
    recipient = _address(fields.get("Original-Rcpt-To") or fields.get("Removal-Recipient"))
    message_id, token = _identify(msg, parts, domain)
    if feedback == "not-spam":
        return BounceEvent("unknown", message_id=message_id, token=token,
                           recipient=recipient, reason="feedback report: not-spam")
    return BounceEvent("complaint", message_id=message_id, token=token, recipient=recipient,
                       reason=f"complaint ({feedback})")


def _report_fields(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        blocks = [p for p in payload if p.keys()]
        if blocks:
            return blocks
    text = part_text(part) if not isinstance(payload, list) else ""
    blocks = []
    for chunk in re.split(r"\r?\n\s*\r?\n", text.strip()):
        if chunk.strip():
            blocks.append(HeaderParser(policy=compat32).parsestr(chunk.strip() + "\n"))
    return blocks


def _address(value: str | None) -> str | None:
    if not value:
        return None
    value = str(value).strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>").strip()
    if "@" not in value or len(value) > 320 or any(c.isspace() for c in value):
        return None
    return value


# --------------------------------------------------------------------------- DSN (RFC 3464)


def _dsn(msg: Message, parts: list[Message], domain: str | None) -> BounceEvent:
    recipients: list[Message] = []
    for part in parts:
        if part.get_content_type() in ("message/delivery-status",
                                       "message/global-delivery-status"):
            blocks = _report_fields(part)
            # The first block is per-message unless it already names a recipient.
            recipients += [b for b in blocks if b.get("Final-Recipient")
                           or b.get("Original-Recipient") or b.get("Action")]
    best: tuple[int, BounceEvent] | None = None
    for block in recipients:
        event = _recipient_event(block)
        rank = {"hard": 3, "soft": 2, "unknown": 1}.get(event.kind, 0)
        if best is None or rank > best[0]:
            best = (rank, event)
    text = _human_text(parts)
    message_id, token = _identify(msg, parts, domain, extra_text=text)
    if best is None:
        return _replace(_from_text(text, default="soft"), message_id, token)
    return _replace(best[1], message_id, token)


def _replace(event: BounceEvent, message_id: str | None, token: str | None) -> BounceEvent:
    return BounceEvent(event.kind, message_id=message_id, token=token,
                       recipient=event.recipient, status=event.status, reason=event.reason)


def _recipient_event(block: Message) -> BounceEvent:
    action = (block.get("Action") or "").strip().lower().split(" ")[0]
    recipient = _address(block.get("Original-Recipient")) or _address(
        block.get("Final-Recipient"))
    status_field = block.get("Status") or ""
    diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
    match = _STATUS.search(status_field) or _STATUS.search(diagnostic)
    status = ".".join(match.groups()) if match else None
    if status is None:
        reply = _REPLY_CODE.search(diagnostic + " ")
        if reply:
            status = f"{reply.group(1)[0]}.0.0"
    if action in ("delivered", "relayed", "expanded"):
        return BounceEvent("unknown", recipient=recipient, status=status,
                           reason=f"delivery notification ({action})")
    if action == "delayed":
        return BounceEvent("soft", recipient=recipient, status=status,
                           reason="delayed: " + status_reason(status))
    return BounceEvent(_severity(status), recipient=recipient, status=status,
                       reason=status_reason(status))


#: Permanent failures that say nothing bad about the address: mailbox full or message too
#: big for it (5.2.2, 5.2.3), the receiving system (5.3.x), the message's content (5.6.x)
#: and policy (5.7.x: often our server or content blocked as spam, for every user there).
_NOT_THE_ADDRESS = ("5.2.2", "5.2.3", "5.3.", "5.6.", "5.7.")


def _severity(status: str | None) -> str:
    """Hard only for a permanent (5.x.x) failure about the address itself."""
    if status is None or not status.startswith("5."):
        return "soft"
    if status.startswith(_NOT_THE_ADDRESS):
        return "soft"
    return "hard"


def _human_text(parts: list[Message]) -> str:
    texts = [part_text(p) for p in parts
             if p.get_content_type() == "text/plain" and not p.is_multipart()]
    return "\n".join(texts)


# --------------------------------------------------------------------------- the rest


def _looks_like_bounce(msg: Message, subject: str) -> bool:
    sender = decoded_header(msg, "From")
    if msg.get("X-Failed-Recipients"):
        return True
    if _BOUNCE_SENDER.search(sender) and not _AUTO_REPLY_SUBJECT.match(subject):
        return True
    return bool(_BOUNCE_SUBJECT.search(subject))


def _plain_bounce(msg: Message, parts: list[Message], domain: str | None) -> BounceEvent:
    """A bounce that is not a DSN (old Exim, qmail, some webmail): best effort from text."""
    text = "\n".join(part_text(p) for p in parts if p.get_content_maintype() in ("text",)
                     and not p.is_multipart())
    event = _from_text(text, default="soft")
    failed = _address(msg.get("X-Failed-Recipients"))
    message_id, token = _identify(msg, parts, domain, extra_text=text)
    return BounceEvent(event.kind, message_id=message_id, token=token,
                       recipient=failed or event.recipient, status=event.status,
                       reason=event.reason)


def _from_text(text: str, *, default: str) -> BounceEvent:
    """Severity from human-readable text: the first enhanced status code, else a basic
    reply code, else the wording (delays are soft; nothing certain is soft too)."""
    cut = _QUOTED_ORIGINAL.search(text)
    if cut is not None and cut.start() > 0:
        text = text[:cut.start()]  # codes in the quoted original are not the diagnosis
    match = _STATUS.search(text)
    status = ".".join(match.groups()) if match else None
    if status is None:
        reply = _REPLY_CODE.search(text)
        if reply and reply.group(1) in ("550", "551", "553"):
            status = "5.0.0"
        elif reply:
            status = f"{reply.group(1)[0]}.0.0"
    if status is None and _DELAY_WORDS.search(text):
        return BounceEvent("soft", reason="delayed (no status code)")
    if status is None and _PERMANENT_WORDS.search(text):
        return BounceEvent("soft", reason="failure without a status code")
    if status is None:
        return BounceEvent(default, reason="bounce without a status code")
    if status.startswith("4.") and _DELAY_WORDS.search(text):
        return BounceEvent("soft", status=status, reason="delayed: " + status_reason(status))
    return BounceEvent(_severity(status), status=status, reason=status_reason(status))


def _is_auto_reply(msg: Message, subject: str) -> bool:
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Autoreply-From"):
        return True
    precedence = (msg.get("Precedence") or "").strip().lower()
    if precedence == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.match(subject))
