"""Text helpers for reading reports: decoded headers and parts, our Message-IDs and tokens, status names."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message

__all__ = [
    "decoded_header",
    "find_message_ids",
    "find_unsubscribe_token",
    "header_block",
    "part_text",
    "status_reason",
]

MAX_TEXT = 500_000
# The shape publish_edition gives ledger Message-IDs: <e{edition}.s{subscriber}.{random}@{domain}>.
_LEDGER_ID = re.compile(r"<e\d{1,18}\.s\d{1,18}\.[0-9A-Za-z]{4,64}@[A-Za-z0-9.-]{1,253}>")
_ANY_ID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,253}>")
# itsdangerous URL-safe tokens: base64url segments joined by dots.
_TOKEN = r"(\.?[A-Za-z0-9_-]{4,200}(?:\.[A-Za-z0-9_-]{2,200}){1,3})"
_TOKEN_PATTERNS = (
    re.compile(r"/unsubscribe/" + _TOKEN),
    re.compile(r"subject=unsubscribe(?:%20|\+|%2B|\s)+" + _TOKEN, re.IGNORECASE),
    re.compile(r"^\s*(?:(?:re|fwd?|aw)\s*:\s*)*unsubscribe\s+" + _TOKEN + r"\s*$",
               re.IGNORECASE),
)

# RFC 3463 / RFC 5248 names for the codes bounces most often carry.
_DETAILS = {
    "1.0": "other address status", "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address", "1.3": "bad destination mailbox address syntax",
    "1.6": "destination mailbox has moved", "1.10": "recipient address has null MX",
    "2.0": "other or undefined mailbox status", "2.1": "mailbox disabled",
    "2.2": "mailbox full", "2.3": "message length exceeds administrative limit",
    "3.0": "other or undefined mail system status", "3.1": "mail system full",
    "3.4": "message too big for system", "4.0": "other or undefined network or routing status",
    "4.1": "no answer from host", "4.2": "bad connection", "4.4": "unable to route",
    "4.6": "routing loop detected", "4.7": "delivery time expired",
    "5.0": "other or undefined protocol status", "7.0": "other or undefined security status",
    "7.1": "delivery not authorized, message refused", "7.26": "multiple authentication checks failed",
}
_CLASSES = {"2": "success", "4": "persistent transient failure", "5": "permanent failure"}


def decoded_header(msg: Message, name: str) -> str:
    """A header as text with RFC 2047 words decoded and whitespace folded ("" if absent)."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError, TypeError):
        text = str(value)
    return " ".join(text.split())[:2000]


def header_block(msg: Message) -> str:
    """The headers of ``msg`` as ``Name: value`` lines."""
    return "\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in msg.items())


def part_text(part: Message) -> str:
    """The decoded text of a non-multipart part (undecodable bytes replaced), capped."""
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        data = None
    if data is None:
        payload = part.get_payload()
        return payload[:MAX_TEXT] if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data[:MAX_TEXT].decode(charset, errors="replace")
    except LookupError:
        return data[:MAX_TEXT].decode("utf-8", errors="replace")


def find_message_ids(text: str, domain: str | None, *, ledger_only: bool = True) -> list[str]:
    """Message-IDs in ``text``, in order, those on ``domain`` first; only the ledger's
    shape unless ``ledger_only`` is false."""
    if not text:
        return []
    pattern = _LEDGER_ID if ledger_only else _ANY_ID
    seen: dict[str, None] = {}
    for found in pattern.findall(text[:MAX_TEXT]):
        seen.setdefault(found, None)
    ids = list(seen)
    if domain:
        suffix = "@" + domain.lower() + ">"
        ids.sort(key=lambda i: not i.lower().endswith(suffix))
    return ids


def find_unsubscribe_token(text: str) -> str | None:
    """An unsubscribe token from our List-Unsubscribe URL or mailto subject in ``text``."""
    if not text:
        return None
    for pattern in _TOKEN_PATTERNS:
        match = pattern.search(text[:MAX_TEXT])
        if match:
            return match.group(1)
    return None


def status_reason(status: str | None) -> str:
    """``"5.1.1 bad destination mailbox address"`` for an RFC 3463 code."""
    if not status:
        return "no status code"
    klass, _, rest = status.partition(".")
    detail = _DETAILS.get(rest) or _CLASSES.get(klass, "unknown status")
    return f"{status} {detail}"
