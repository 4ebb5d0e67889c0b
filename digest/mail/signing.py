"""DKIM signing of the exact bytes that will be sent (dkimpy, relaxed/relaxed)."""

from __future__ import annotations

import dkim

from digest.config import DkimSettings
from digest.errors import ConfigError

__all__ = ["SIGNED_HEADERS", "dkim_sign"]

# dkimpy's default list omits List-Unsubscribe-Post, which RFC 8058 §4 requires to be signed.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
)


def dkim_sign(message: bytes, settings: DkimSettings) -> bytes:
    """``message`` with a ``DKIM-Signature`` header prepended; nothing else changes.

    :raises ConfigError: when the configured key cannot sign (wrong format, too short).
    """
    try:
        header = dkim.sign(
            message,
            settings.selector.encode("ascii"),
            settings.domain.encode("ascii"),
            settings.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
            linesep=b"\r\n",
        )
    except dkim.DKIMException as exc:
        raise ConfigError(f"The DKIM key for {settings.domain} cannot sign messages ({exc}); "
                          "check [dkim] and DIGEST_DKIM_PRIVATE_KEY.") from exc
    return header + message
