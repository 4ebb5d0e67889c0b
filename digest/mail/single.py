"""One message outside an edition (the double opt-in confirmation, "already subscribed", the
editors' notices): the same header code as every edition message, a whole body encoded once.

Pure and I/O-free, like :mod:`digest.mail.template`, and built from the same pieces: every
header line comes from :mod:`digest.mail.headers` (free text cleaned, RFC 2047 encoded-words
on lines of at most 76 characters, RFC 2047 section 2), so no message digest writes is
folded by another rule. Each text part goes out in quoted-printable or base64, whichever is
smaller (a part mostly in a non-Latin script is smaller in base64, RFC 2045 section 6.8).
"""

from __future__ import annotations

import binascii
import hashlib
from datetime import datetime
from email.utils import format_datetime

from digest.mail.base64_part import base64_lines
from digest.mail.headers import (
    clean_text,
    format_address,
    header_line,
    parse_mailbox,
    to_header,
    unstructured_tokens,
    utf8_to_header,
    validate_message_id,
)

__all__ = ["single_message", "smaller_encoding"]


def _canonical(text: str) -> str:
    """Every line end as LF (the encoders below write CRLF)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _qp(text: str) -> bytes:
    out = binascii.b2a_qp(_canonical(text).encode("utf-8"), istext=True)
    out = out.replace(b"\n", b"\r\n")
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def _b64(text: str) -> bytes:
    return base64_lines(_canonical(text).replace("\n", "\r\n").encode("utf-8"))


def smaller_encoding(text: str) -> tuple[str, bytes]:
    """``(Content-Transfer-Encoding, encoded body)`` for one text part: quoted-printable,
    or base64 when that is smaller (lines ≤ 76 characters, CRLF ends, either way)."""
    qp = _qp(text)
    if text.isascii():
        return "quoted-printable", qp
    b64 = _b64(text)
    return ("base64", b64) if len(b64) < len(qp) else ("quoted-printable", qp)


def _part(subtype: str, text: str) -> bytes:
    cte, body = smaller_encoding(text)
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode("ascii") + body


def single_message(*, from_header: str, to: str, subject: str, text: str,
                   message_id: str, date: datetime, to_name: str | None = None,
                   html: str | None = None, reply_to: str | None = None,
                   auto_submitted: bool = True) -> bytes:
    """The bytes of one RFC 5322 message: CRLF line ends, every line ≤ 998 octets, every
    header line holding an encoded-word ≤ 76 characters.

    :param from_header: ``Name <address>`` (or a bare address) of the sender.
    :param to: the recipient's address; one with a non-ASCII local part is written as
        UTF-8 (RFC 6532) and must travel with SMTPUTF8 (RFC 6531).
    :param subject: free text; controls and line breaks become spaces.
    :param text: the ``text/plain`` part; with ``html`` the message is
        ``multipart/alternative`` (text first, RFC 2046 section 5.1.4).
    :param message_id: ``<left@right>``.
    :param date: an aware datetime for the ``Date`` header (RFC 5322 section 3.3).
    :param auto_submitted: adds ``Auto-Submitted: auto-generated`` (RFC 3834): a machine's
        message, which auto-responders must not answer.
    :raises HeaderError: when an address, the Message-ID or a header cannot be written.
    :raises ValueError: when ``date`` is naive.
    """
    if date.tzinfo is None:
        raise ValueError("The message date must be timezone-aware.")
    head = [
        header_line("From", format_address(*parse_mailbox(from_header))),
        to_header(to_name, to) if to.isascii() else utf8_to_header(to_name, to),
        header_line("Subject", unstructured_tokens(clean_text(subject, limit=400))),
        header_line("Date", [format_datetime(date)]),
        b"Message-ID: " + validate_message_id(message_id).encode("ascii") + b"\r\n",
    ]
    if reply_to:
        head.append(header_line("Reply-To", format_address(*parse_mailbox(reply_to))))
    head.append(b"MIME-Version: 1.0\r\n")
    if auto_submitted:
        head.append(b"Auto-Submitted: auto-generated\r\n")
    if html is None:
        return b"".join(head) + _part("plain", text)
    # "=_" never occurs in quoted-printable or base64 output: the boundary cannot collide.
    seed = f"{subject}\x00{text}\x00{html}\x00{message_id}".encode()
    boundary = "=_digest_" + hashlib.sha256(seed).hexdigest()[:24]
    return (b"".join(head)
            + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
              f"This is a multi-part message in MIME format.\r\n--{boundary}\r\n".encode()
            + _part("plain", text) + f"\r\n--{boundary}\r\n".encode()
            + _part("html", html) + f"\r\n--{boundary}--\r\n".encode())
