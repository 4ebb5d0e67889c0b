"""The ``[dkim]`` settings: which algorithms sign, each one's selector and private key, read
and parsed once when the configuration loads (used by :mod:`digest.config`).

::

    [dkim]
    domain = "news.example.org"                    # d= (default: site.domain)
    algorithms = ["rsa-sha256", "ed25519-sha256"]  # default ["rsa-sha256"]
    canonicalization = "relaxed/relaxed"           # header/body (RFC 6376 §3.4)

    [dkim.rsa-sha256]
    selector = "mail2026"
    private_key_file = "keys/mail2026.rsa.pem"     # or DIGEST_DKIM_PRIVATE_KEY

    [dkim.ed25519-sha256]
    selector = "mail2026e"
    private_key_file = "keys/mail2026.ed25519.pem" # or DIGEST_DKIM_ED25519_PRIVATE_KEY

``selector`` and ``private_key_file`` written directly in ``[dkim]`` are the short form of the
``[dkim.rsa-sha256]`` table (the only form before Ed25519). An RSA key is PEM (PKCS#1 or
PKCS#8) of at least 1024 bits (RFC 8301 §3.2; 2048 recommended). An Ed25519 key (RFC 8463) is
PEM (PKCS#8, as ``openssl genpkey -algorithm ed25519`` writes it) or the base64 seed that
dkimpy's ``dknewkey --ktype ed25519`` writes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.config_table import Table
from digest.errors import ConfigError

__all__ = ["ALGORITHMS", "DkimKey", "DkimSettings", "load_private_key", "read_dkim"]

# Algorithm (the a= tag) -> the environment variable holding its key.
ALGORITHMS: Mapping[str, str] = {
    "rsa-sha256": "DIGEST_DKIM_PRIVATE_KEY",
    "ed25519-sha256": "DIGEST_DKIM_ED25519_PRIVATE_KEY",
}
CANONICALIZATIONS = ("relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple")
MIN_RSA_BITS = 1024  # RFC 8301 §3.2: signers MUST use at least 1024 bits
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_KIND = {"rsa-sha256": "an RSA", "ed25519-sha256": "an Ed25519"}

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One signing key: ``algorithm`` is the a= tag (``rsa-sha256`` or ``ed25519-sha256``),
    ``selector`` the s= tag (its public key is published at ``selector._domainkey.domain``)."""

    algorithm: str
    selector: str
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def load(cls, algorithm: str, selector: str, data: bytes | str) -> DkimKey:
        """A key from its text (see :func:`load_private_key`).

        :raises ValueError: with the reason, when ``data`` is not a usable key for ``algorithm``.
        """
        return cls(algorithm, selector, load_private_key(algorithm, data))

    def dns_record(self) -> bytes:
        """The TXT record to publish (RFC 6376 §3.6.1; ``k=ed25519`` per RFC 8463 §4.2)."""
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@dataclass(frozen=True, slots=True)
class DkimSettings:
    """DKIM signing (on when ``[dkim]`` is configured): one signature per key, in order, with
    ``d=domain`` and ``c=header_canonicalization/body_canonicalization``."""

    domain: str
    keys: tuple[DkimKey, ...]
    header_canonicalization: str = "relaxed"
    body_canonicalization: str = "relaxed"


def load_private_key(algorithm: str, data: bytes | str) -> PrivateKey:
    """Parse a private key for ``algorithm`` (module docstring: the accepted forms).

    :raises ValueError: with a reason naming what is wrong (wrong type, too short, encrypted,
        not a key), and KeyError for an algorithm not in :data:`ALGORITHMS`.
    """
    if algorithm not in ALGORITHMS:
        raise KeyError(algorithm)
    text = data.encode("ascii", "replace") if isinstance(data, str) else data
    if b"-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except TypeError:
            raise ValueError("holds an encrypted key; store it without a passphrase") from None
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("does not hold a readable PEM private key") from None
    elif algorithm == "ed25519-sha256":
        try:
            seed = base64.b64decode(b"".join(text.split()), validate=True)
        except binascii.Error:
            seed = b""
        if len(seed) != 32:
            raise ValueError("holds neither a PEM private key nor a base64 Ed25519 seed "
                             "(32 bytes)")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    else:
        raise ValueError("does not hold a PEM private key")
    if algorithm == "rsa-sha256":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"holds {_describe(key)}, but rsa-sha256 signs with an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"holds a {key.key_size}-bit RSA key; DKIM needs at least "
                             f"{MIN_RSA_BITS} bits (RFC 8301), 2048 recommended")
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"holds {_describe(key)}, but ed25519-sha256 signs with an Ed25519 "
                         "key (RFC 8463)")
    return key


def _describe(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "an RSA key"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "an Ed25519 key"
    return f"a {type(key).__name__.removeprefix('_').replace('PrivateKey', '')} key"


def read_dkim(dk: Table, env: Mapping[str, str], base_dir: Path,
              default_domain: str) -> DkimSettings:
    """Read the ``[dkim]`` table ``dk`` and load every key it names, once.

    :raises ConfigError: one sentence naming the setting (or environment variable), the file
        and the fix: an unknown algorithm, a missing or unreadable key, a key of the wrong
        type or too short, a bad selector, domain or canonicalization.
    """
    domain = dk.str("domain", default_domain)
    if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+", domain):
        raise dk.error("dkim.domain", f"must be an ASCII domain name (punycode for an "
                       f"international one), not {domain!r}", "fix the value")
    algorithms = dk.strings("algorithms", ("rsa-sha256",))
    for name in algorithms:
        if name not in ALGORITHMS:
            hint = " (RFC 8301 forbids signing with SHA-1)" if name == "rsa-sha1" else ""
            raise dk.error("dkim.algorithms", f"names {name!r}, which digest cannot sign "
                           f"with{hint}", 'use "rsa-sha256" and/or "ed25519-sha256"')
    if not algorithms or len(set(algorithms)) != len(algorithms):
        raise dk.error("dkim.algorithms", "must list each algorithm once, at least one",
                       'write e.g. algorithms = ["rsa-sha256", "ed25519-sha256"]')
    canon = dk.str("canonicalization", "relaxed/relaxed")
    if canon not in CANONICALIZATIONS:
        raise dk.error("dkim.canonicalization", f"must be one of {', '.join(CANONICALIZATIONS)}"
                       f" (header/body), not {canon!r}", 'write e.g. canonicalization = '
                       '"relaxed/relaxed"')

    flat = [k for k in ("selector", "private_key_file") if k in dk.data]
    for name in ALGORITHMS:
        if name in dk.data and name not in algorithms:
            raise dk.error(f"dkim.{name}", "is configured but dkim.algorithms does not list it",
                           f'add "{name}" to dkim.algorithms or remove the table')
    if flat and "rsa-sha256" not in algorithms:
        raise dk.error(f"dkim.{flat[0]}", "belongs to rsa-sha256, which dkim.algorithms does "
                       "not list", "move it into the table of an algorithm you use, e.g. "
                       "[dkim.ed25519-sha256]")
    keys = []
    for name in algorithms:
        if flat and name == "rsa-sha256":
            if name in dk.data:
                raise dk.error("dkim.selector", "is set both in [dkim] and in [dkim.rsa-sha256]",
                               "keep the [dkim.rsa-sha256] table only")
            table, prefix = dk, "dkim"
        else:
            table, prefix = dk.table(name), f"dkim.{name}"
        keys.append(_read_key(table, prefix, name, env, base_dir))
        if table is not dk:
            table.finish()
    settings = DkimSettings(domain=domain, keys=tuple(keys),
                            header_canonicalization=canon.split("/")[0],
                            body_canonicalization=canon.split("/")[1])
    dk.finish()
    return settings


def _read_key(t: Table, prefix: str, algorithm: str, env: Mapping[str, str],
              base_dir: Path) -> DkimKey:
    selector = t.raw("selector")
    if not isinstance(selector, str) or not _SELECTOR.fullmatch(selector):
        raise t.error(f"{prefix}.selector", "is missing" if selector is None else
                      f"must be a DNS label such as \"mail2026\", not {selector!r}",
                      f"add selector = \"...\" for {algorithm}")
    variable = ALGORITHMS[algorithm]
    where, text = variable, env.get(variable)
    key_file = t.str("private_key_file")
    if not text:
        if not key_file:
            raise t.error(f"{prefix}.private_key_file", "is missing",
                          f"set it or {variable} to the {algorithm} private key")
        where = f"Setting {prefix}.private_key_file in {t.path}"
        try:
            text = (base_dir / key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise t.error(f"{prefix}.private_key_file", f"points to {key_file!r}, which cannot "
                          "be read", f"fix the path or set {variable}") from None
    else:
        where = f"The environment variable {variable}"
    try:
        return DkimKey.load(algorithm, selector, text)
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}; give it {_KIND[algorithm]} private key for "
                          f"selector {selector!r}.") from None
