"""What an SMTP reply or exception means for a ledger row: sent, retry, fail, suppress, stop.

The rules follow RFC 5321 (4yz temporary, 5yz permanent, 552 on RCPT temporary §4.5.3.1.10,
a dropped connection is a 451 §3.8) and aiosmtplib 5.1.3's fault map, which tests/test_deliver.py
checks against a fault-injecting server: a disconnect or timeout once the message and its final
dot were sent is ambiguous (the server may have the message, RFC 1047), everything before is
safe to retry. What a 5yz refusal at RCPT or DATA says about the recipient comes from its RFC
3463 enhanced status code, read by the rules bounce processing uses too
(:mod:`digest.smtpstatus`): only a hard code about the recipient's own address suppresses it,
and wording about us (spam, policy, our sender) never does.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

from digest.smtpstatus import about_us, assess, codes_in, most_specific

__all__ = ["Kind", "Outcome", "Phase", "classify_exception", "classify_reply", "redact"]


class Phase(StrEnum):
    """Where in the SMTP conversation something happened."""

    CONNECT = "connect"  # TCP, greeting, EHLO, TLS, AUTH
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # from the DATA command to the reply to the final dot


class Kind(StrEnum):
    """What the worker does with the row."""

    SENT = "sent"
    RETRY = "retry"  # mark_deferred with backoff (expire past the window)
    FAIL = "fail"  # mark_failed, address kept
    SUPPRESS = "suppress"  # mark_failed and suppress the address
    AUTH = "auth"  # credentials refused: counts towards stopping the run
    SENDER = "sender"  # the relay refuses our envelope sender: counts towards stopping
    RELAY = "relay"  # the relay cannot be reached or spoken to: no row is charged


@dataclass(frozen=True, slots=True)
class Outcome:
    """A classified result; ``reason`` is short and address-free so reports can group it."""

    kind: Kind
    reason: str
    code: int | None = None
    reconnect: bool = False  # the connection cannot be reused
    ambiguous: bool = False  # the server may have accepted the message (RFC 1047)


_ADDRESS = re.compile(r"<[^<>\s]*@[^<>\s]*>|[^\s<>\"']+@[^\s<>\"']+")


def redact(text: str, limit: int = 100) -> str:
    """Server text without addresses or line breaks, cut to ``limit`` characters."""
    text = _ADDRESS.sub("<address>", " ".join(str(text).split()))
    return text[:limit]


#: An enhanced code sits near the start of a reply; the rest is prose.
_STATUS_SCAN = 300


def _status(code: int, text: str) -> str | None:
    """The reply's most specific RFC 3463 code, in the class of the reply ``code``."""
    best = most_specific(codes_in(text or "", _STATUS_SCAN))
    return None if best is None else f"{str(code)[0]}{best[1:]}"


def _reason(code: int, text: str, phase: Phase) -> str:
    return f"{code} at {phase.upper()}: {redact(text)}".rstrip(": ")


def classify_reply(code: int, text: str, phase: Phase) -> Outcome:
    """Classify one SMTP reply ``code``/``text`` received at ``phase``.

    >>> classify_reply(550, "5.1.1 user unknown", Phase.RCPT).kind
    <Kind.SUPPRESS: 'suppress'>
    >>> classify_reply(552, "5.2.2 mailbox full", Phase.RCPT).kind
    <Kind.RETRY: 'retry'>
    """
    reason = _reason(code, text, phase)
    if 200 <= code < 300:
        return Outcome(Kind.SENT, reason, code)
    if code in (530, 535):
        return Outcome(Kind.AUTH, reason, code)
    if code < 0:  # malformed reply: the conversation is out of step
        reason = f"malformed reply at {phase.upper()}"
    if phase is Phase.CONNECT:  # greeting, EHLO, STARTTLS: the relay, not the recipient
        return Outcome(Kind.RELAY, reason, code, reconnect=True)
    if code < 0 or code == 421:
        return Outcome(Kind.RETRY, reason, code, reconnect=True)
    if 400 <= code < 500:
        return Outcome(Kind.RETRY, reason, code)
    if code < 500 or code > 599:
        return Outcome(Kind.RETRY, reason, code, reconnect=True)
    # 5yz from here on.
    if phase is Phase.MAIL:
        if code == 552:
            return Outcome(Kind.FAIL, "552 at MAIL: message too large for the relay", code)
        return Outcome(Kind.SENDER, reason, code)
    if phase is Phase.RCPT and code == 552:
        return Outcome(Kind.RETRY, reason, code)  # RFC 5321 §4.5.3.1.10
    status = _status(code, text)
    if status is not None:
        if status.endswith(".2.2"):  # mailbox full: soft, retried
            return Outcome(Kind.RETRY, reason, code)
        # Hard only for the recipient's own address (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10,
        # 5.2.1) and wording that is not about us; 5.1.7/5.1.8 (the sender's address),
        # 5.7.x policy, 5.6.x content and the rest end the row without suppressing.
        if assess(status, text).kind == "hard":
            return Outcome(Kind.SUPPRESS, reason, code)
        return Outcome(Kind.FAIL, reason, code)
    if phase is Phase.RCPT and code in (550, 551, 553) and not about_us(text):
        return Outcome(Kind.SUPPRESS, reason, code)  # "no such user" with no enhanced code
    return Outcome(Kind.FAIL, reason, code)


def classify_exception(exc: BaseException, phase: Phase, *,
                       payload_sent: bool | None = None) -> Outcome:
    """Classify an exception raised by aiosmtplib (or our own deadline) at ``phase``.

    A disconnect or timeout at DATA is ambiguous (the server may hold the message, RFC
    1047) only once the message and its final dot were written: ``payload_sent`` False
    (the connection was gone before, or the 354 never came) makes it a plain retry; None
    (not known) counts as written."""
    where = phase.upper()
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Outcome(Kind.AUTH, _reason(exc.code, "authentication failed", Phase.CONNECT),
                       exc.code)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify_reply(first.code, first.message, Phase.RCPT)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(exc.code, exc.message, phase)
    if phase is Phase.CONNECT:
        if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
            return Outcome(Kind.RELAY, "TLS handshake or certificate refused", reconnect=True)
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return Outcome(Kind.RELAY, "timed out connecting to the relay", reconnect=True)
        if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
            return Outcome(Kind.RELAY, "could not connect to the relay", reconnect=True)
        if isinstance(exc, aiosmtplib.SMTPException):
            return Outcome(Kind.RELAY, f"relay setup failed: {redact(exc.message)}",
                           reconnect=True)
        return Outcome(Kind.RELAY, f"relay setup failed: {type(exc).__name__}",
                       reconnect=True)
    in_data = phase is Phase.DATA and payload_sent is not False
    if phase is Phase.DATA and not in_data:
        where = "DATA, before the message was sent"
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Outcome(Kind.FAIL, f"not supported by the relay: {redact(exc.message)}")
    if isinstance(exc, ValueError):
        return Outcome(Kind.FAIL, "address or command refused by the client (control "
                                  "characters)")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError | asyncio.TimeoutError):
        what = "timed out during DATA (outcome unknown)" if in_data else \
            f"timed out at {where}"
        return Outcome(Kind.RETRY, what, reconnect=True, ambiguous=in_data)
    if isinstance(exc, ConnectionError | OSError | aiosmtplib.SMTPServerDisconnected):
        what = "disconnected during DATA (outcome unknown)" if in_data else \
            f"disconnected at {where}"
        return Outcome(Kind.RETRY, what, reconnect=True, ambiguous=in_data)
    return Outcome(Kind.RETRY, f"unexpected {type(exc).__name__} at {where}", reconnect=True,
                   ambiguous=in_data)
