"""Text helpers for reading reports: decoded headers and parts, our Message-IDs and tokens, status names."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

__all__ = [
    "address_key",
    "decoded_header",
    "find_message_ids",
    "find_unsubscribe_token",
    "header_block",
    "own_parts",
    "part_text",
    "report_address",
    "report_fields",
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
# RFC 6533 section 3: a utf-8 address type may write characters as \x{HEX}.
_UNITEXT = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_ADDRESS = re.compile(r"[^\s@<>()\[\]\\,;:\"]{1,64}@[^\s@<>()\[\]\\,;:\"]{1,253}")


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


def own_parts(msg: Message) -> list[Message]:
    """``msg`` and its parts, in order, without descending into attached messages: a
    returned original's parts (its text, a DSN it quotes) are not the report's own."""
    found: list[Message] = []
    stack = [msg]
    while stack and len(found) < 500:
        part = stack.pop()
        found.append(part)
        if part.is_multipart() and part.get_content_maintype() != "message":
            children = [p for p in part.get_payload() if isinstance(p, Message)]
            stack.extend(reversed(children))
    return found


def part_text(part: Message) -> str:
    """The decoded text of a non-multipart part (undecodable bytes replaced), capped."""
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        data = None
    if not isinstance(data, bytes):
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


def report_address(value: object) -> str | None:
    """The address in a report field (``rfc822; reader@example.org``, ``utf-8; …`` with
    RFC 6533 ``\\x{HEX}`` escapes, ``<reader@example.org>`` or a bare address), or None when
    it is not one plausible address (empty local part, no domain dot, spaces, a path)."""
    if not value:
        return None
    text = " ".join(str(value).split())
    if ";" in text:
        kind, _, text = text.partition(";")
        if kind.strip().lower() == "utf-8":
            text = _UNITEXT.sub(lambda m: _char(m.group(1)), text)
    text = text.strip().strip("<>").strip()
    if len(text) > 320 or not _ADDRESS.fullmatch(text):
        return None
    local, _, domain = text.rpartition("@")
    if not local or "." not in domain.strip(".") or local.startswith("|"):
        return None
    return text


def _char(hex_digits: str) -> str:
    code = int(hex_digits, 16)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def address_key(address: str) -> str:
    """``address`` compared as the store compares subscribers: the domain IDNA-encoded and
    the whole address case-folded (``Ann@Bücher.example`` and ``ann@xn--bcher-kva.example``
    are one key)."""
    local, _, domain = address.strip().rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}".casefold()


def report_fields(part: Message) -> list[Message]:
    """The field blocks of a ``message/delivery-status``, ``message/global-delivery-status``
    or ``message/feedback-report`` part, each as a message whose headers are the fields.

    Python splits only ``message/delivery-status`` into blocks; any other ``message/*``
    part arrives as one message holding the first block, with the rest as its body.
    """
    payload = part.get_payload()
    texts: list[str] = []
    blocks: list[Message] = []
    if isinstance(payload, list):
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            if sub.keys():
                blocks.append(sub)
            body = sub.get_payload()
            if isinstance(body, str) and body.strip():
                texts.append(body)
    else:
        texts.append(part_text(part))
    for text in texts:
        for chunk in re.split(r"\r?\n[ \t]*\r?\n", text.strip()):
            if chunk.strip():
                block = HeaderParser(policy=compat32).parsestr(chunk.strip() + "\n")
                if block.keys():
                    blocks.append(block)
    return blocks
