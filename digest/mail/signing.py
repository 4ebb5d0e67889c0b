"""DKIM signatures (RFC 6376) over the exact bytes sent: rsa-sha256, and ed25519-sha256
(RFC 8463) beside it when configured.

dkimpy is the reference. Its functions lay out the ``DKIM-Signature`` field (``fold``,
``RE_BTAG``), parse messages (``rfc822_parse``) and canonicalize whole bodies; where a step runs
per message it is done without regexes in ways tested to be equal to dkimpy's (the header
block, relaxed header canonicalization, dkimpy's ``select_headers`` choice of header
instances). A signature made here is byte for byte the one ``dkim.sign`` makes at the same
second (tests compare them, and verify every signature with ``dkim.verify``). What differs is
where the time goes:

* the keys are parsed once, when the configuration loads (:mod:`digest.config_dkim`), and the
  signature is computed by ``cryptography`` (OpenSSL) instead of dkimpy's Python arithmetic;
* the body of a template message is canonicalized and hashed once per variant for everything
  that does not change (:class:`BodyHashTemplate`): per message the SHA-256 state at the end of
  the fixed prefix is copied, and only the slot values and the bytes next to them are
  canonicalized, the rest is fed to the hash as it was canonicalized at build time;
* both signatures share one body hash and one canonicalized header block.

Over-signing (RFC 6376 §8.15): ``h=`` lists every header of :data:`OVERSIGNED_HEADERS` once
more than the message carries it, so a verifier finds no instance for the extra entry and a
forged copy added on top (a second ``List-Unsubscribe``) breaks the signature. A signed header
the message lacks is listed once, which forbids adding it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim import RE_BTAG, fold, rfc822_parse  # type: ignore[import-untyped]
from dkim.canonicalization import (  # type: ignore[import-untyped]
    CanonicalizationPolicy,
    Relaxed,
    Simple,
)

from digest.config_dkim import DkimSettings

__all__ = ["OVERSIGNED_HEADERS", "SIGNED_HEADERS", "BodyHashTemplate", "DkimSigner",
           "UnsignedMessage", "sign_function", "signed_header_names"]

# dkimpy's default list omits List-Unsubscribe-Post, which RFC 8058 §4 requires to be signed.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
)
# Listed once more in h= than they occur (RFC 6376 §8.15; issue 14).
OVERSIGNED_HEADERS: frozenset[bytes] = frozenset({
    b"from", b"to", b"subject", b"date", b"reply-to", b"list-id", b"list-unsubscribe",
    b"list-unsubscribe-post",
})
_NAME = b"DKIM-Signature"
_B_PLACEHOLDER = b"0" * 60  # dkimpy's b= while the field is folded and hashed
_BARE_LF = re.compile(rb"(?<!\r)\n")
# dkimpy's strip_trailing_whitespace and compress_whitespace patterns, compiled once.
_TRAILING_WSP = re.compile(b"[\t ]+\r\n")
_WSP = re.compile(b"[\t ]+")
_CACHE_MAX = 512  # header layouts and canonical header lines kept per signer
_LARGE = 512  # body values of this many bytes or more are remembered (BodyHashTemplate)
_LARGE_MAX = 64  # ... at most this many per template
_NAME_BYTES = bytes(range(0x21, 0x7F))  # a field name's bytes (rfc822_parse's pattern)


def signed_header_names(names: Sequence[bytes]) -> tuple[bytes, ...]:
    """The ``h=`` list for a message whose header fields are ``names`` (any case, top to
    bottom): each of :data:`SIGNED_HEADERS` as often as it occurs, once more for the
    over-signed ones and for any that is absent (RFC 6376 §5.4.2, §8.15)."""
    lower = [n.lower() for n in names]
    out: list[bytes] = []
    for name in SIGNED_HEADERS:
        count = lower.count(name)
        out += [name] * (count + 1 if count == 0 or name in OVERSIGNED_HEADERS else count)
    return tuple(out)


class _BodyCanon:
    """One body canonicalization (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) as dkimpy applies
    it, in pieces.

    dkimpy reads the body as CRLF lines (a bare LF becomes CRLF), then canonicalizes. Only the
    bytes after the last "regular" byte (anything but CR, LF and, for relaxed, space and tab)
    can still change with what follows, so a stream keeps them pending; everything before can
    be canonicalized and hashed at once. A piece that follows a regular byte (or starts the
    body) and ends with one is canonicalized the same alone as in any context.
    """

    __slots__ = ("_ends", "algorithm", "relaxed", "strip")

    def __init__(self, name: str) -> None:
        self.relaxed = name == "relaxed"
        self.algorithm = Relaxed if self.relaxed else Simple
        self.strip = b" \t\r\n" if self.relaxed else b"\r\n"
        # end()'s results: a template's body ends the same way in every message.
        self._ends: dict[tuple[bytes, bool], bytes] = {}

    def middle(self, data: bytes) -> bytes:
        """Canonical form of ``data``, which follows a regular byte (or starts the body) and
        ends with one."""
        if b"\n" in data and data.count(b"\n") != data.count(b"\r\n"):
            data = _BARE_LF.sub(b"\r\n", data)
        if self.relaxed and (b" " in data or b"\t" in data):
            data = _WSP.sub(b" ", _TRAILING_WSP.sub(b"\r\n", data))
        return data

    def end(self, pending: bytes, emitted: bool) -> bytes:
        """Canonical form of the body's last bytes ``pending`` (no regular byte among them);
        ``emitted``: whether a regular byte came before them."""
        found = self._ends.get((pending, emitted))
        if found is not None:
            return found
        data = _BARE_LF.sub(b"\r\n", pending) if b"\n" in pending else pending
        if emitted:
            found = self.algorithm.canonicalize_body(b"x" + data)[1:]
        else:
            found = self.algorithm.canonicalize_body(data)
        if len(self._ends) < _CACHE_MAX:
            self._ends[pending, emitted] = found
        return found

    def feed(self, h: hashlib._Hash, pending: bytes, data: bytes) -> tuple[bytes, bool]:
        """Hash what ``pending + data`` settles; returns (the new pending bytes, whether a
        regular byte was hashed)."""
        data = pending + data
        keep = len(data.rstrip(self.strip))
        if not keep:
            return data, False
        h.update(self.middle(data[:keep]))
        return data[keep:], True


class BodyHashTemplate:
    """The body hash of messages whose body is ``pieces[0] + v[0] + pieces[1] + ... + v[n-1]
    + pieces[n]`` for per-message values ``v`` (bytes as transmitted, whatever the transfer
    encoding): the fixed pieces canonicalized once, only the values and their neighbourhood
    per message. :meth:`digest` equals SHA-256 of dkimpy's canonicalized body (tested).
    """

    __slots__ = ("_canon", "_emitted", "_large", "_pending", "_segments", "_start")

    def __init__(self, canon: _BodyCanon, pieces: Sequence[bytes]) -> None:
        self._canon = canon
        # Large values come back as the same objects (a base64 part's static runs, shared
        # by every message): where their regular bytes start and end, and their canonical
        # middle when it differs from theirs (else None).
        self._large: dict[bytes, tuple[int, int, bytes | None]] = {}
        self._start = hashlib.sha256()
        self._pending, self._emitted = canon.feed(self._start, b"", pieces[0])
        # Per later piece: (head up to its first regular byte, the canonical middle up to its
        # last regular byte, the rest), or (the piece, None, b"") when it has no regular byte.
        segments: list[tuple[bytes, bytes | None, bytes]] = []
        for piece in pieces[1:]:
            first = len(piece) - len(piece.lstrip(canon.strip))
            if first == len(piece):
                segments.append((piece, None, b""))
                continue
            last = len(piece.rstrip(canon.strip))
            segments.append((piece[:first + 1], canon.middle(piece[first + 1:last]),
                             piece[last:]))
        self._segments = tuple(segments)

    @property
    def slots(self) -> int:
        """How many values :meth:`digest` takes."""
        return len(self._segments)

    def digest(self, values: Sequence[bytes]) -> bytes:
        """SHA-256 of the canonicalized body with ``values`` in the slots (32 bytes).

        :raises ValueError: when the number of values is not :attr:`slots`.
        """
        canon = self._canon
        h = self._start.copy()
        pending, emitted = self._pending, self._emitted
        for value, (head, middle, tail) in zip(values, self._segments, strict=True):
            if len(value) >= _LARGE:
                pending, emitted, value = self._large_value(h, pending, emitted, value)
            if middle is None:
                pending, hashed = canon.feed(h, pending, value + head)
                emitted = emitted or hashed
            else:  # value + head end with a regular byte: all of it settles
                h.update(canon.middle(pending + value + head))
                h.update(middle)
                pending, emitted = tail, True
        h.update(canon.end(pending, emitted))
        return h.digest()

    def _large_value(self, h: hashlib._Hash, pending: bytes, emitted: bool,
                     value: bytes) -> tuple[bytes, bool, bytes]:
        """Hash a large value's settled bytes without copying or rescanning it when it was
        seen before; returns (pending, emitted, what is left of the value)."""
        canon = self._canon
        found = self._large.get(value)
        if found is None:
            first = len(value) - len(value.lstrip(canon.strip))
            if first == len(value):  # no regular byte: nothing settles inside it
                return pending, emitted, value
            last = len(value.rstrip(canon.strip))
            inner = canon.middle(value[first + 1:last])
            found = (first, last, None if inner == value[first + 1:last] else inner)
            if len(self._large) < _LARGE_MAX:
                self._large[value] = found
        first, last, changed = found
        h.update(canon.middle(pending + value[:first + 1]))
        h.update(memoryview(value)[first + 1:last] if changed is None else changed)
        return value[last:], True, b""


def sign_function(key: object) -> Callable[[bytes], bytes]:
    """Signs a SHA-256 digest: RSASSA-PKCS1-v1_5 (RFC 8017) or Ed25519 over the digest as
    RFC 8463 §3 and dkimpy do it."""
    if isinstance(key, rsa.RSAPrivateKey):
        pad, prehashed = padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        return lambda digest: key.sign(digest, pad, prehashed)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign
    raise TypeError(f"no DKIM signature with a {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class UnsignedMessage:
    """A message whose ``DKIM-Signature`` fields lack only their signatures (RFC 6376 §3.7):
    every hash is done. :meth:`signatures` is the private-key step (OpenSSL through
    ``cryptography``; during a delivery a child process makes them instead,
    :mod:`digest.mail.sign_process`, with the same bytes); :meth:`signed` puts the fields
    on top. ``signed(signatures())`` is what
    :meth:`DkimSigner.sign_with_body_hash` returns. It satisfies
    :class:`digest.models.Unsigned`."""

    message: bytes
    #: Per key: the field's tags up to ``b=``, the digest to sign, the signing function.
    parts: tuple[tuple[bytes, bytes, Callable[[bytes], bytes]], ...]

    def signatures(self) -> list[bytes]:
        """One raw signature per key, in order (the expensive part: ~0.3 ms for RSA-2048)."""
        return [sign(digest) for _, digest, sign in self.parts]

    def signed(self, signatures: Sequence[bytes]) -> bytes:
        """The message with its ``DKIM-Signature`` fields on top, laid out as dkimpy does."""
        return b"".join(
            _NAME + b": " + fold(tags + base64.b64encode(signature) + b"\r\n",
                                 namelen=len(_NAME), linesep=b"\r\n")
            for (tags, _, _), signature in zip(self.parts, signatures, strict=True)
        ) + self.message


class DkimSigner:
    """Signs messages with every key of a :class:`DkimSettings`; made once per run or
    edition (the keys are already parsed), shared by every message.

    Each signature is a ``DKIM-Signature`` field put on top of the message, in the order of the
    keys; ``i=@domain``, ``q=dns/txt``, ``t=`` the signing second, no ``l=`` or ``x=``.
    """

    def __init__(self, settings: DkimSettings) -> None:
        self.settings = settings
        c_value = f"{settings.header_canonicalization}/{settings.body_canonicalization}"
        self._c = c_value.encode("ascii")
        self._policy = CanonicalizationPolicy.from_c_value(self._c)
        self._relaxed_headers = settings.header_canonicalization == "relaxed"
        self._body = _BodyCanon(settings.body_canonicalization)
        self._domain = settings.domain.encode("ascii")
        # Per key: the tags up to t= (v, a, c, d, i, q, s) and its signing function.
        self._keys = tuple((b"v=1; a=%b; c=%b; d=%b; i=@%b; q=dns/txt; s=%b; t=" % (
            k.algorithm.encode("ascii"), self._c, self._domain, self._domain,
            k.selector.encode("ascii")), sign_function(k.private_key)) for k in settings.keys)
        self._plans: dict[tuple[bytes, ...], tuple[tuple[bytes, ...], tuple[int, ...]]] = {}
        self._canonical: dict[tuple[bytes, bytes], bytes] = {}

    def body_template(self, pieces: Sequence[bytes]) -> BodyHashTemplate:
        """The per-variant body hash for a body made of ``pieces`` with values between them."""
        return BodyHashTemplate(self._body, pieces)

    def body_hash(self, body: bytes) -> bytes:
        """SHA-256 of a whole body, canonicalized by dkimpy (``body`` as dkimpy parses it)."""
        return hashlib.sha256(self._policy.canonicalize_body(body)).digest()

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """``message`` (CRLF or LF lines) with its signatures on top; nothing else changes.

        :param timestamp: the t= tag in seconds since the epoch (default: now).
        """
        headers, body = rfc822_parse(message)
        pending = UnsignedMessage(message, self._parts(headers, self.body_hash(body), timestamp))
        return pending.signed(pending.signatures())

    def sign_with_body_hash(self, message: bytes, body_hash: bytes, *,
                            timestamp: int | None = None) -> bytes:
        """:meth:`sign` for a CRLF message whose body hash is already known (from a
        :class:`BodyHashTemplate`); only its header block is read."""
        pending = self.prepare_with_body_hash(message, body_hash, timestamp=timestamp)
        return pending.signed(pending.signatures())

    def prepare_with_body_hash(self, message: bytes, body_hash: bytes, *,
                               timestamp: int | None = None) -> UnsignedMessage:
        """:meth:`sign_with_body_hash` without the private-key step: every hash done, the
        signatures left to :meth:`UnsignedMessage.signatures` or a signing process."""
        end = message.find(b"\r\n\r\n")
        headers = _header_fields(message[:end + 2] if end >= 0 else message)
        return UnsignedMessage(message, self._parts(headers, body_hash, timestamp))

    def _canonical_line(self, name: bytes, value: bytes) -> bytes:
        """``name:value`` canonicalized as dkimpy's policy does it (RFC 6376 §3.4.1-2); the
        relaxed one without its regex calls (equal, tested)."""
        if not self._relaxed_headers:
            return name + b":" + value
        if b"\n" in value:  # unfold: drop every LF and a CR right before it
            value = value.replace(b"\r\n", b"").replace(b"\n", b"")
        if b"\t" in value or b"  " in value:
            value = _WSP.sub(b" ", value)
        return name.lower().rstrip() + b":" + value.strip() + b"\r\n"

    def _parts(self, headers: list[list[bytes]], body_hash: bytes, timestamp: int | None
               ) -> tuple[tuple[bytes, bytes, Callable[[bytes], bytes]], ...]:
        """Per key: the field's tags up to ``b=``, the digest to sign, its signing
        function (RFC 6376 §3.7: the signed headers, then the field itself with b= empty)."""
        names = tuple(name for name, _ in headers)
        plan = self._plans.get(names)
        if plan is None:
            plan = _signing_plan(names)
            if len(self._plans) < _CACHE_MAX:
                self._plans[names] = plan
        include, picks = plan
        # The canonical form of each hashed header, cached: most are the same in every
        # message (dkimpy canonicalizes every header, then selects the instances to hash).
        cache, lines = self._canonical, []
        for i in picks:
            name, value = headers[i]
            line = cache.get((name, value))
            if line is None:
                line = self._canonical_line(name, value)
                if len(cache) < _CACHE_MAX:
                    cache[name, value] = line
            lines.append(line)
        signed = b"".join(lines)
        stamp = b"%d" % (int(time.time()) if timestamp is None else timestamp)
        # The tags after t=, the same for every key; before them, each key's own.
        rest = b"; h=" + b" : ".join(include) + b"; bh=" + base64.b64encode(body_hash) + b"; b="
        parts = []
        for head, sign in self._keys:
            # DomainSigner.sign and gen_header in dkimpy 1.1: the same tags, order and folds.
            value = _empty_b(fold(head + stamp + rest + _B_PLACEHOLDER, namelen=len(_NAME),
                                  linesep=b"\r\n"))
            h = hashlib.sha256(signed)
            h.update(self._canonical_line(_NAME, b" " + value).rstrip())
            parts.append((head + stamp + rest, h.digest(), sign))
        return tuple(parts)


def _empty_b(value: bytes) -> bytes:
    """``RE_BTAG.sub(b"\\1", value)`` (the b= tag emptied) for a value whose last tag is
    the b= placeholder, without running that regex over the whole field."""
    start = value.rfind(b"b=") + 2
    if start < 2 or value[start:].translate(None, b"0\r\n\t "):
        return RE_BTAG.sub(b"\\1", value)
    return value[:start]


def _signing_plan(names: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    """(the h= list, the index of the header instance hashed for each entry that has one):
    dkimpy's ``select_headers`` (the n-th entry for a name takes the n-th instance from the
    bottom; an entry with no instance left hashes nothing), worked out once per header
    layout."""
    include = signed_header_names(names)
    lower = [n.lower() for n in names]
    below = {name: [i for i in range(len(lower) - 1, -1, -1) if lower[i] == name]
             for name in set(include)}
    picks = []
    for name in include:
        if below[name]:
            picks.append(below[name].pop(0))
    return include, tuple(picks)


def _header_fields(block: bytes) -> list[list[bytes]]:
    """``rfc822_parse``'s (name, value) list for a CRLF header block (each value keeps its
    continuation lines and ends with CRLF), read without regexes; anything unusual goes
    through ``rfc822_parse`` itself."""
    if not block.endswith(b"\r\n") or block.count(b"\n") != block.count(b"\r\n"):
        return rfc822_parse(block)[0]
    fields: list[list[bytes]] = []
    for line in block[:-2].split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += line + b"\r\n"
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _NAME_BYTES):
            return rfc822_parse(block)[0]
        fields.append([name, value + b"\r\n"])
    return fields
