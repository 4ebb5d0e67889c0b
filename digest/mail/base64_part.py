"""A base64 MIME body with holes: encoded once per variant, filled per subscriber cheaply.

Base64 cannot be cut into independently encoded pieces the way quoted-printable can: every
3 input bytes become 4 characters, so what a static segment encodes to depends on how many
bytes came before it (modulo 3). Each static segment is therefore encoded once for each of
the three alignments a slot value can leave. Per subscriber only the slot value, the one or
two bytes left over before it and the one or two bytes of the next segment that complete its
last group are encoded; the rest is joined as it is.

Lines are at most 76 characters and end with CRLF (RFC 2045 section 6.8); they may be
shorter where a slot meets a segment, which decoders accept (line breaks carry no data).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Base64Part", "base64_lines"]

_LINE_BYTES = 57  # 57 input bytes -> 76 base64 characters


def base64_lines(raw: bytes) -> bytes:
    """``raw`` as base64 in lines of at most 76 characters, each ending with CRLF; padding
    only when ``len(raw)`` is not a multiple of 3 (so only the last chunk of a part may
    have any)."""
    if len(raw) <= _LINE_BYTES:
        return binascii.b2a_base64(raw, newline=False) + b"\r\n" if raw else b""
    return b"".join([binascii.b2a_base64(raw[i:i + _LINE_BYTES], newline=False) + b"\r\n"
                     for i in range(0, len(raw), _LINE_BYTES)])


def _canonical(text: str) -> bytes:
    """UTF-8 with every line end (LF, CRLF or a lone CR) as CRLF, the canonical form of a
    text part (RFC 2046 section 4.1.1), as the quoted-printable pieces write them."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Segment:
    """A static segment prepared for one alignment: ``head`` completes the group the bytes
    before it started, ``body`` is the encoded middle, ``tail`` waits for what follows."""

    head: bytes
    body: bytes
    tail: bytes


def _prepare(raw: bytes, carry: int) -> _Segment:
    need = (3 - carry) % 3
    if len(raw) <= need:
        return _Segment(raw, b"", b"")
    whole = (len(raw) - need) // 3 * 3
    return _Segment(raw[:need], base64_lines(raw[need:need + whole]), raw[need + whole:])


@dataclass(frozen=True, slots=True)
class Base64Part:
    """One text part (``segments`` around ``slots``, one more segment than slots) encoded in
    base64 once; :meth:`encode` fills the slots."""

    slots: tuple[str, ...]
    first: bytes
    first_tail: bytes
    segments: tuple[tuple[_Segment, _Segment, _Segment], ...]

    @classmethod
    def build(cls, segments: Sequence[str], slots: Sequence[str]) -> Base64Part:
        """Encode the static ``segments`` (UTF-8, CRLF line ends) for every alignment."""
        raws = [_canonical(s) for s in segments]
        first = _prepare(raws[0], 0)
        return cls(slots=tuple(slots), first=first.body, first_tail=first.tail,
                   segments=tuple((_prepare(r, 0), _prepare(r, 1), _prepare(r, 2))
                                  for r in raws[1:]))

    def encode(self, values: Mapping[str, str]) -> bytes:
        """The whole part body for one subscriber's slot ``values``.

        :raises KeyError: naming a slot without a value.
        """
        out = [self.first]
        pending = self.first_tail
        for slot, prepared in zip(self.slots, self.segments, strict=True):
            value = values[slot]
            data = pending + (value.encode("utf-8") if "\n" not in value and "\r" not in value
                              else _canonical(value))
            seg = prepared[len(data) % 3]
            chunk = data + seg.head
            cut = len(chunk) - len(chunk) % 3
            out.append(base64_lines(chunk[:cut]))
            out.append(seg.body)
            pending = chunk[cut:] + seg.tail
        out.append(base64_lines(pending))
        return b"".join(out)
