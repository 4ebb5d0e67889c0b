"""What goes on the wire for one SMTP transaction: envelope addresses and the DATA payload.

Pure byte work, apart from the network code in :mod:`digest.deliver.pool` (as aiosmtplib
keeps its message code apart from its protocol). Both functions give exactly the bytes
aiosmtplib 5 would write for the same input, and fall back to aiosmtplib's own code for
anything off the fast path:

* :func:`envelope_address` is ``aiosmtplib.email.quote_address`` (RFC 5321 section 4.1.2
  ``Path``): ``<local@domain>``. An address that is a plain dot-atom on both sides (what
  email-validator leaves after an import) is the path as it stands; anything else goes
  through ``quote_address`` (``email.utils.parseaddr`` and its injection checks).
* :func:`data_payload` is what ``SMTPProtocol.execute_data_command`` writes after the 354:
  every line ending made CRLF, a line that starts with "." given a second one (RFC 5321
  section 4.5.2, transparency), the message ended with CRLF, then ".\\r\\n". aiosmtplib does
  it with two regular-expression substitutions over the whole message, about 0.3 ms for a
  25 KB message here, on every message; a digest's messages are CRLF throughout and rarely
  have a line starting with ".", which three ``bytes`` scans (memchr speed, ~10 us) prove,
  and then the message goes out as it is.

``tests/test_wire.py`` compares both with aiosmtplib's functions over generated inputs.
"""

from __future__ import annotations

import re

from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

__all__ = ["data_payload", "envelope_address"]

# RFC 5322 atext, dot-separated atoms; a domain of LDH labels. For these, parseaddr returns
# the address unchanged and aiosmtplib's injection check has nothing to refuse.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def envelope_address(address: str) -> str:
    """The ``<path>`` for MAIL FROM or RCPT TO, as ``aiosmtplib.email.quote_address``.

    :raises ValueError: an address aiosmtplib refuses (whitespace, angle brackets or quotes
        outside a quoted local part: command injection).
    """
    if _PLAIN.fullmatch(address):
        return f"<{address}>"
    return quote_address(address)


def data_payload(message: bytes) -> bytes:
    """The bytes to write after DATA's 354 reply: the message with CRLF line endings and
    leading dots doubled, ending in ``CRLF.CRLF`` (RFC 5321 sections 4.1.1.4 and 4.5.2),
    the same bytes as ``aiosmtplib.SMTPProtocol.execute_data_command`` writes."""
    lf = message.count(b"\n")
    crlf = message.count(b"\r\n")
    if lf != crlf or message.count(b"\r") != crlf:  # a bare LF or CR somewhere
        message = normalize_message_line_endings(message)
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b".") or b"\n." in message:
        message = PERIOD_REGEX.sub(b"..", message)
    return message + b".\r\n"
