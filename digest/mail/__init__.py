"""Mail: turns a rendered edition and one subscriber into the exact RFC 5322 bytes to send.

Pure and I/O-free. :class:`MessageTemplate` is built once per (edition, variant) from the
renderer's segments and slots; :meth:`MessageTemplate.render` fills one :class:`Recipient`.
The one exception is :mod:`digest.mail.sign_process`, not imported here: it runs DKIM's
private-key step in a child process during a delivery (the pipeline starts it).
"""

from __future__ import annotations

from digest.mail.headers import HeaderError, validate_addr_spec
from digest.mail.signing import (
    OVERSIGNED_HEADERS,
    SIGNED_HEADERS,
    DkimSigner,
    UnsignedMessage,
)
from digest.mail.template import MessageTemplate, Recipient, qp_encode

__all__ = [
    "OVERSIGNED_HEADERS",
    "SIGNED_HEADERS",
    "DkimSigner",
    "HeaderError",
    "MessageTemplate",
    "Recipient",
    "UnsignedMessage",
    "qp_encode",
    "validate_addr_spec",
]
