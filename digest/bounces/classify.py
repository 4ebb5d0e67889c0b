"""Classify one received message: DSN bounce, feedback report, mailto unsubscribe, auto-reply or other.

Pure functions of bytes: :func:`classify` never raises and never touches the store, and
:func:`decide` says what a :class:`BounceEvent` should do (the processor applies it only when
the event names one of our deliveries or carries a valid signed token).

What counts as evidence against a reader (the rule every branch follows): a permanent
failure of the reader's own address (:mod:`.status`), an abuse or fraud complaint by the
reader (:mod:`.feedback`), or the reader's own unsubscribe request. Failures about our
mail (policy, content, sender, authentication), feedback that is not a complaint, delivery
notices and auto-replies change nothing.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, replace
from email.message import Message
from email.policy import compat32

from .events import EVENT_KINDS, BounceEvent
from .failures import DSN_PARTS, dsn_event, prose_bounce_event, prose_recipients
from .feedback import arf_event, is_jmrp, jmrp_event
from .originals import reply_ids
from .text import decoded_header, find_message_ids, find_unsubscribe_token, own_parts

__all__ = ["ACTION_KINDS", "EVENT_KINDS", "Action", "BounceEvent", "classify", "decide"]

#: What an event calls for; "note-complaint" (a complaint by someone the reader forwarded
#: the edition to: noted, never suppressing) is decided by the processor, which knows the
#: address the delivery went to.
ACTION_KINDS = ("suppress-bounced", "suppress-complained", "unsubscribe", "record-soft",
                "note-complaint", "ignore")
MAX_BYTES = 2_000_000

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


@dataclass(frozen=True, slots=True)
class Action:
    """What to do about an event (``kind`` one of :data:`ACTION_KINDS`)."""

    kind: str
    reason: str


def decide(event: BounceEvent) -> Action:
    """The action an event calls for, before attribution (the processor still checks that
    ``message_id`` is one of our deliveries or ``token`` is a valid signature, and that the
    failure names the address it was delivered to).

    Hard bounces and complaints suppress; soft bounces about the reader's mailbox are
    counted; a mailto or opt-out request unsubscribes. Failures about our own mail, other
    feedback reports, auto-replies and anything unrecognised never change anything, and an
    event that carries neither a Message-ID nor a token cannot be attributed, so it is
    ignored.
    """
    if event.kind == "auto-reply":
        return Action("ignore", "auto-reply")
    if event.kind in ("unknown", "feedback"):
        return Action("ignore", event.reason or "not a bounce")
    if event.kind == "unsubscribe":
        if not event.token and not event.message_id:
            return Action("ignore", "unattributed: unsubscribe request without a token")
        return Action("unsubscribe", event.reason or "mailto unsubscribe")
    if event.kind in ("hard", "soft") and event.about == "us":
        return Action("ignore", f"{event.reason or 'failure'}: about our mail, not the "
                      "reader's address")
    if not event.message_id and not event.token:
        return Action("ignore", f"unattributed: {event.kind} report names none of our messages")
    if event.kind == "hard":
        return Action("suppress-bounced", event.reason or "hard bounce")
    if event.kind == "soft":
        return Action("record-soft", event.reason or "soft bounce")
    if event.kind == "complaint":
        return Action("suppress-complained", event.reason or "complaint")
    return Action("ignore", f"unhandled event kind {event.kind!r}")


def classify(raw: bytes, *, domain: str | None = None,
             recipient: str | None = None) -> BounceEvent:
    """Classify the bytes of one message (never raises: unreadable input is "unknown").

    :param domain: our Message-ID domain; Message-IDs on it are preferred when a report
        quotes several.
    :param recipient: when a failure report names several recipients, read the one with
        this address (the address our delivery went to).
    """
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        return BounceEvent("unknown", reason="empty message")
    if len(raw) > MAX_BYTES:
        raw = raw[:MAX_BYTES]
    try:
        msg = email.message_from_bytes(bytes(raw), policy=compat32)
        if not msg.keys():
            return BounceEvent("unknown", reason="not an email message")
        event = _classify(msg, bytes(raw), domain, recipient)
        own = find_message_ids(decoded_header(msg, "Message-ID"), None, ledger_only=False)
        return replace(event, report_id=own[0]) if own else event
    except Exception as exc:  # noqa: BLE001 - hostile input must never stop a run
        return BounceEvent("unknown", reason=f"unreadable message ({type(exc).__name__})")


def _classify(msg: Message, raw: bytes, domain: str | None,
              recipient: str | None) -> BounceEvent:
    report_type = msg.get_param("report-type") if msg.get_content_type() == \
        "multipart/report" else None
    report_type = report_type.lower() if isinstance(report_type, str) else ""
    parts = own_parts(msg)
    part_types = {p.get_content_type() for p in parts}
    if report_type == "feedback-report" or "message/feedback-report" in part_types:
        return arf_event(msg, parts, domain)
    if is_jmrp(msg, parts):
        return jmrp_event(msg, parts, domain)
    if report_type == "delivery-status" or part_types.intersection(DSN_PARTS):
        event = dsn_event(msg, parts, domain, recipient)
        # A DSN without readable recipient blocks is read as prose below.
        return event or prose_bounce_event(msg, parts, domain, recipient, raw=raw)
    if report_type == "disposition-notification" or \
            "message/disposition-notification" in part_types:
        return BounceEvent("unknown", reason="disposition notification (RFC 8098), not a "
                           "bounce")
    if report_type == "tlsrpt":
        return BounceEvent("unknown", reason="SMTP TLS report (RFC 8460), not a bounce")

    subject = decoded_header(msg, "Subject")
    sub_match = _SUBJECT_UNSUBSCRIBE.match(subject)
    to = decoded_header(msg, "To").lower()
    to_us = re.search(r"(?:^|[<\s,])unsubscribe@", to) and not _is_auto_reply(msg, subject)
    if sub_match or to_us:
        token = sub_match.group(1) if sub_match and sub_match.group(1) else None
        if token is None:
            token = find_unsubscribe_token(subject)
        return BounceEvent("unsubscribe", token=token,
                           message_id=_first(find_message_ids(reply_ids(msg), domain)),
                           reason="mailto unsubscribe")

    # A multipart/report of no or an unknown report-type is read like any other bounce.
    if _looks_like_bounce(msg, subject):
        return prose_bounce_event(msg, parts, domain, recipient, raw=raw)
    if _is_auto_reply(msg, subject):
        return BounceEvent("auto-reply", message_id=_first(find_message_ids(reply_ids(msg),
                                                                            domain)),
                           reason="auto-reply")
    found = prose_recipients(msg, parts, raw)
    if found[0]:
        return prose_bounce_event(msg, parts, domain, recipient, found=found)
    return BounceEvent("unknown", reason="not a bounce, complaint or unsubscribe")


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _looks_like_bounce(msg: Message, subject: str) -> bool:
    if msg.get("X-Failed-Recipients"):
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    sender = decoded_header(msg, "From")
    if _BOUNCE_SENDER.search(sender) and not _AUTO_REPLY_SUBJECT.match(subject):
        return True
    return bool(_BOUNCE_SUBJECT.search(subject))


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
