"""DKIM signing of the exact bytes that will be sent (dkimpy, relaxed/relaxed).

dkimpy does everything DKIM needs (canonicalization, hashes, the header) but computes the
RSA signature in pure Python: about 8 ms of a ~10 ms signature per message with a 2048-bit
key. RSASSA-PKCS1-v1_5 signatures are deterministic, so when ``cryptography`` is installed
that one step is handed to OpenSSL (under 1 ms) and the bytes stay exactly dkimpy's (tests
compare both). Keys OpenSSL refuses go through dkimpy's own code, errors included.
"""

from __future__ import annotations

import functools
from typing import Any

import dkim

from digest.config import DkimSettings
from digest.errors import ConfigError

__all__ = ["SIGNED_HEADERS", "dkim_sign"]

# dkimpy's default list omits List-Unsubscribe-Post, which RFC 8058 §4 requires to be signed.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
)

_DKIMPY_RSA_SIGN = dkim.RSASSA_PKCS1_v1_5_sign
# dkimpy's parsed key (RFC 8017 RSAPrivateKey fields) in RSAPrivateNumbers' order.
_KEY_FIELDS = ("modulus", "publicExponent", "privateExponent", "prime1", "prime2",
               "exponent1", "exponent2", "coefficient")


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


try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
except ImportError:  # dkimpy's pure-Python arithmetic, ~10x slower
    pass
else:
    _HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}

    @functools.lru_cache(maxsize=8)
    def _openssl_key(n: int, e: int, d: int, p: int, q: int, dp: int, dq: int,
                     qinv: int) -> rsa.RSAPrivateKey | None:
        try:
            return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv,
                                         rsa.RSAPublicNumbers(e, n)).private_key()
        except ValueError:  # inconsistent or unsupported numbers: dkimpy decides
            return None

    def _rsa_sign(hash: Any, private_key: dict[str, int]) -> bytes:
        """dkimpy's ``RSASSA_PKCS1_v1_5_sign`` with OpenSSL doing the arithmetic."""
        algorithm = _HASHES.get(hash.name.lower())
        key = _openssl_key(*(private_key[f] for f in _KEY_FIELDS)) if algorithm else None
        if key is None:
            return _DKIMPY_RSA_SIGN(hash, private_key)  # type: ignore[no-any-return]
        try:
            return key.sign(hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm()))
        except ValueError:  # a key too short for the digest: dkimpy's own error
            return _DKIMPY_RSA_SIGN(hash, private_key)  # type: ignore[no-any-return]

    # dkim.sign looks the function up in its module at every call.
    dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign
