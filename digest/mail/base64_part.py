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
from dataclasses import dataclass, field

__all__ = ["Base64Part", "base64_lines"]

_LINE_BYTES = 57  # 57 input bytes -> 76 base64 characters
_DONE_MAX = 256


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


#: A static segment prepared for one alignment: ``head`` completes the group the bytes before
#: it started, ``body`` is the encoded middle, ``tail`` waits for what follows.
_Segment = tuple[bytes, bytes, bytes]  # (head, body, tail)


def _prepare(raw: bytes, carry: int) -> _Segment:
    need = (3 - carry) % 3
    if len(raw) <= need:
        return raw, b"", b""
    whole = (len(raw) - need) // 3 * 3
    return raw[:need], base64_lines(raw[need:need + whole]), raw[need + whole:]


def _fill(pending: bytes, value: str, prepared: tuple[_Segment, _Segment, _Segment]
          ) -> tuple[bytes, bytes, bytes]:
    """A slot's value between the bytes left before it and the segment after it:
    ``(its encoded lines, the segment's encoded middle, the bytes left after it)``."""
    data = pending + (value.encode("utf-8") if "\n" not in value and "\r" not in value
                      else _canonical(value))
    head, body, tail = prepared[len(data) % 3]
    chunk = data + head
    size = len(chunk)
    cut = size - size % 3
    if cut != size:  # a segment shorter than a group: its bytes wait with the slot's
        tail = chunk[cut:] + tail
        chunk = chunk[:cut]
    if cut > _LINE_BYTES:
        return base64_lines(chunk), body, tail
    return (binascii.b2a_base64(chunk, newline=False) + b"\r\n" if cut else b""), body, tail


@dataclass(frozen=True, slots=True)
class Base64Part:
    """One text part (``segments`` around ``slots``, one more segment than slots) encoded in
    base64 once; :meth:`encode` fills the slots."""

    slots: tuple[str, ...]
    first: bytes
    first_tail: bytes
    segments: tuple[tuple[_Segment, _Segment, _Segment], ...]
    # (slot number, slot, prepared segment after it), made by __post_init__.
    _plan: tuple[tuple[int, str, tuple[_Segment, _Segment, _Segment]], ...] = field(
        init=False, repr=False, compare=False)
    # What the first slot values seen became (at most _DONE_MAX): the values shared by many
    # messages (the view-in-browser URL, the greeting without a name) come with the first.
    _done: dict[tuple[int, bytes, str], tuple[bytes, bytes, bytes]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plan", tuple(
            (i, slot, prepared) for i, (slot, prepared)
            in enumerate(zip(self.slots, self.segments, strict=True))))
        object.__setattr__(self, "_done", {})

    @classmethod
    def build(cls, segments: Sequence[str], slots: Sequence[str]) -> Base64Part:
        """Encode the static ``segments`` (UTF-8, CRLF line ends) for every alignment."""
        raws = [_canonical(s) for s in segments]
        _, first, first_tail = _prepare(raws[0], 0)
        return cls(slots=tuple(slots), first=first, first_tail=first_tail,
                   segments=tuple((_prepare(r, 0), _prepare(r, 1), _prepare(r, 2))
                                  for r in raws[1:]))

    @property
    def holes(self) -> int:
        """How many pieces :meth:`pieces` returns (a message format holds one hole each)."""
        return 2 * len(self.slots) + 2

    def pieces(self, values: Mapping[str, str]) -> tuple[bytes, ...]:
        """The part body for one subscriber's slot ``values``, as :attr:`holes` pieces to
        join (the large static ones are shared, not copied).

        :raises KeyError: naming a slot without a value.
        """
        out = [self.first]
        append = out.append
        pending = self.first_tail
        cache = self._done
        for key_index, slot, prepared in self._plan:
            value = values[slot]
            key = (key_index, pending, value)
            done = cache.get(key)
            if done is None:
                done = _fill(pending, value, prepared)
                if len(cache) < _DONE_MAX:
                    cache[key] = done
            line, body, pending = done
            append(line)
            append(body)
        append(base64_lines(pending))
        return tuple(out)

    def encode(self, values: Mapping[str, str]) -> bytes:
        """The whole part body for one subscriber's slot ``values``.

        :raises KeyError: naming a slot without a value.
        """
        return b"".join(self.pieces(values))
