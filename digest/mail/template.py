"""The per-edition message template: MIME bytes built once, slots filled per subscriber.

Each static piece of the text and HTML parts is quoted-printable encoded once and ends with a
soft line break (``=\\r\\n``), so independently encoded pieces concatenate into valid QP:
per subscriber only the short slot values are encoded, the header block is written, and the
pieces are put together by one bytes ``%``. No Jinja2 render and no ``EmailMessage`` round
trip per subscriber.

A part whose text is mostly non-Latin script is smaller in base64 (4 bytes per 3) than in
quoted-printable (up to 9 bytes per character); the renderer chooses, and such a part is a
:class:`~digest.mail.base64_part.Base64Part`, likewise encoded once with holes.
"""

from __future__ import annotations

import binascii
import hashlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from digest.mail.base64_part import Base64Part
from digest.mail.headers import (
    HeaderError,
    clean_text,
    format_address,
    format_list_id,
    header_line,
    list_unsubscribe,
    parse_mailbox,
    to_header,
    unstructured_tokens,
    utf8_to_header,
    validate_message_id,
)
from digest.mail.signing import BodyHashTemplate, DkimSigner, UnsignedMessage

__all__ = ["TRANSFER_ENCODINGS", "MessageTemplate", "Recipient", "qp_encode"]

#: The Content-Transfer-Encodings a text part may use (7bit/8bit are never sent).
TRANSFER_ENCODINGS = ("quoted-printable", "base64")


@dataclass(frozen=True, slots=True)
class Recipient:
    """What one subscriber's message needs on top of the edition's template."""

    email: str
    name: str | None
    message_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    slot_values_html: Mapping[str, str]
    slot_values_text: Mapping[str, str]


# Encoded slot values kept per template: the first ones seen, never cleared. The values
# shared by many messages (the view-in-browser URL, "Hello,") come with the first messages;
# a per-subscriber URL never comes back, and dropping or clearing entries costs more.
_ENCODED_MAX = 256
# Bytes quoted-printable writes as they are: printable ASCII and the space, but not "=".
_QP_LITERAL = bytes(range(0x20, 0x3D)) + bytes(range(0x3E, 0x7F))


def qp_encode(text: str) -> bytes:
    """Quoted-printable for one piece of a part: CRLF line ends, lines ≤ 76, and a trailing
    soft line break unless the piece ends with a hard one, so pieces can be concatenated."""
    if text.isascii():
        raw = text.encode("ascii")
        # Nothing to escape (URLs, most greetings): only soft breaks every 75 characters.
        # A space at either end and a "." that would start a line take the general path.
        if (len(raw) > 1 and raw[0] != 32 and raw[-1] != 32
                and not raw.translate(None, _QP_LITERAL) and 46 not in raw[::75]):
            if len(raw) <= 75:
                return raw + b"=\r\n"
            return b"".join([raw[i:i + 75] + b"=\r\n" for i in range(0, len(raw), 75)])
    return _qp_encode_general(text)


def _qp_encode_general(text: str) -> bytes:
    if not text:
        return b""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    if not out.endswith(b"\r\n"):
        start = out.rfind(b"\n") + 1
        if len(out) - start > 75:  # no room for the trailing "=": break the last line again
            cut = len(out) - 3 if out[-3:-2] == b"=" else len(out) - 1  # never split "=XY"
            out = out[:cut] + b"=\r\n" + out[cut:]
        out += b"=\r\n"
    if out.startswith(b".") or b"\n." in out:
        out = _no_leading_dots(out)
    return out


def _no_leading_dots(out: bytes) -> bytes:
    """Quoted-printable lines (CRLF, each at most 76 characters) with a "." that starts a
    line written ``=2E`` (RFC 2045 section 6.7: any octet may be encoded), re-broken where
    that makes a line too long. Every piece starts a line, so no line of a quoted-printable
    part starts with ".": SMTP's transparency (RFC 5321 section 4.5.2) then has nothing to
    double, and a message goes to the relay without being re-scanned
    (:func:`digest.deliver.wire.data_payload`). Same practice as ATL's
    ``ATLSMTP_QPENCODE_DOT``."""
    lines = []
    for line in out.split(b"\r\n"):
        while line.startswith(b"."):
            line = b"=2E" + line[1:]
            if len(line) <= 76:
                break
            cut = 75  # a soft break after 75 characters, never inside an "=XY"
            if line[cut - 1:cut] == b"=":
                cut -= 1
            elif line[cut - 2:cut - 1] == b"=":
                cut -= 2
            lines.append(line[:cut] + b"=")
            line = line[cut:]
        lines.append(line)
    return b"\r\n".join(lines)


def _check_slots(kind: str, segments: Sequence[str], slots: Sequence[str]) -> None:
    if len(segments) != len(slots) + 1:
        raise ValueError(f"The {kind} template has {len(segments)} segments for {len(slots)} "
                         "slots; it needs exactly one segment more than slots.")


@dataclass(frozen=True, slots=True, eq=False)
class MessageTemplate:
    """One (edition, variant) as MIME bytes with holes; :meth:`render` fills them."""

    # The whole message as a bytes ``%`` format: the To line, the Message-ID, the
    # List-Unsubscribe lines, then one ``%b`` per slot value in order; one ``%`` builds a
    # subscriber's message in C.
    format: bytes
    slot_keys: tuple[tuple[int, str], ...]  # (0 = text, 1 = html, slot name), in order
    dkim: DkimSigner | None = None
    # The body's DKIM hash with the fixed parts done (the body is the format after the
    # header block: its pieces with the holes' values between them).
    dkim_body: BodyHashTemplate | None = None
    # Per part (text, html): None for quoted-printable (its slots are ``%b`` in format),
    # else the base64 body, whose pieces fill ``Base64Part.holes`` holes in ``format``.
    base64_parts: tuple[Base64Part | None, Base64Part | None] = (None, None)
    # The first slot values encoded (at most _ENCODED_MAX): the shared ones among them.
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    # Made from slot_keys by __post_init__.
    _text_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _html_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _pick: Callable[[Sequence[bytes]], tuple[bytes, ...]] = field(
        init=False, repr=False, compare=False)

    @classmethod
    def build(cls, *, html_segments: Sequence[str], html_slots: Sequence[str],
              text_segments: Sequence[str], text_slots: Sequence[str], subject: str,
              from_header: str, list_id: str, reply_to: str | None = None,
              dkim: DkimSigner | None = None, date: datetime | None = None,
              text_encoding: str = "quoted-printable", html_encoding: str = "quoted-printable",
              ) -> MessageTemplate:
        """Encode everything that is the same for every subscriber, once.

        :param html_segments: static HTML around the slots (one more segment than slots).
        :param html_slots: slot names, filled from :attr:`Recipient.slot_values_html`.
        :param subject: free text; controls and line breaks become spaces, non-ASCII is
            RFC 2047-encoded.
        :param from_header: ``Name <address>`` of the list.
        :param list_id: ``Description <list.example.org>``.
        :param dkim: signs every message (made once per run; the body's fixed parts are
            hashed here, once).
        :param date: the ``Date`` of every message (default: now, UTC).
        :param text_encoding: ``"quoted-printable"`` or ``"base64"`` for the text part (the
            renderer picks the smaller, see ``digest.render.budget.transfer_encoding``).
        :param html_encoding: the same for the HTML part.
        :raises HeaderError: when the sender, reply-to or list id cannot be put in a header.
        :raises ValueError: for another transfer encoding.
        """
        _check_slots("HTML", html_segments, html_slots)
        _check_slots("text", text_segments, text_slots)
        for encoding in (text_encoding, html_encoding):
            if encoding not in TRANSFER_ENCODINGS:
                raise ValueError(f"The transfer encoding {encoding!r} is not one of "
                                 f"{', '.join(TRANSFER_ENCODINGS)}.")
        name, addr = parse_mailbox(from_header)
        when = date or datetime.now(UTC)
        if when.tzinfo is None:
            raise ValueError("The message date must be timezone-aware.")
        head = [
            header_line("From", format_address(name, addr)),
            header_line("Subject", unstructured_tokens(clean_text(subject, limit=400))),
            header_line("Date", [format_datetime(when)]),
            b"MIME-Version: 1.0\r\n",
        ]
        if reply_to:
            head.append(header_line("Reply-To", format_address(*parse_mailbox(reply_to))))
        head.append(format_list_id(list_id))

        digest_src = "\x00".join([*html_segments, *text_segments, subject]).encode("utf-8")
        boundary = "=_digest_" + hashlib.sha256(digest_src).hexdigest()[:24]
        # "=_" can never occur in quoted-printable output, so the boundary cannot collide.
        tail = (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"Auto-Submitted: auto-generated\r\n"
            + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode()
        )
        part_head = (
            "\r\n--{b}\r\nContent-Type: text/{sub}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: {cte}\r\n\r\n"
        )
        html_head = part_head.format(b=boundary, sub="html", cte=html_encoding).encode()
        closing = f"\r\n--{boundary}--\r\n".encode()
        pieces: list[bytes] = []
        keys: list[tuple[int, str]] = []
        b64: list[Base64Part | None] = [None, None]
        current = (b"This is a multi-part message in MIME format.\r\n"
                   + part_head.format(b=boundary, sub="plain", cte=text_encoding).encode())
        for kind, segments, slots, after, encoding in (
                (0, text_segments, text_slots, html_head, text_encoding),
                (1, html_segments, html_slots, closing, html_encoding)):
            keys.extend((kind, slot) for slot in slots)
            if encoding == "base64":
                part = b64[kind] = Base64Part.build(segments, slots)
                # The part body's pieces fill holes of their own: one copy, in the final %.
                pieces.append(current)
                pieces.extend(b"" for _ in range(part.holes - 1))
                current = after
                continue
            current += qp_encode(segments[0])
            for seg in segments[1:]:
                pieces.append(current)
                current = qp_encode(seg)
            current += after
        pieces.append(current)
        body = b"%b".join(piece.replace(b"%", b"%%") for piece in pieces)
        return cls(format=(b"".join(head).replace(b"%", b"%%") + b"%bMessage-ID: %b\r\n%b"
                           + tail.replace(b"%", b"%%") + body),
                   slot_keys=tuple(keys), dkim=dkim, base64_parts=(b64[0], b64[1]),
                   dkim_body=dkim.body_template(pieces) if dkim is not None else None)

    def __post_init__(self) -> None:
        # Only the quoted-printable parts' slots are holes of their own in ``format``.
        qp_keys = [(kind, n) for kind, n in self.slot_keys if self.base64_parts[kind] is None]
        text_names = tuple(dict.fromkeys(n for kind, n in qp_keys if kind == 0))
        html_names = tuple(dict.fromkeys(n for kind, n in qp_keys if kind == 1))
        positions = {(0, n): i for i, n in enumerate(text_names)}
        positions.update({(1, n): len(text_names) + i for i, n in enumerate(html_names)})
        object.__setattr__(self, "_text_names", text_names)
        object.__setattr__(self, "_html_names", html_names)
        picks = [positions[key] for key in qp_keys]
        # itemgetter with one index returns the item, not a 1-tuple.
        object.__setattr__(self, "_pick", operator.itemgetter(*picks) if len(picks) > 1
                           else (lambda seq, i=tuple(picks): tuple(seq[j] for j in i)))

    def _encode(self, value: str) -> bytes:
        enc = qp_encode(value)
        cache = self._encoded
        if len(cache) < _ENCODED_MAX:
            cache[value] = enc
        return enc

    def _missing_slot(self, email: str, html: Mapping[str, str],
                      text: Mapping[str, str]) -> HeaderError:
        """The error naming the first slot without a value."""
        kind, slot = next((kind, slot) for kind, slot in self.slot_keys
                          if slot not in (text if kind == 0 else html))
        return HeaderError(f"The {'text' if kind == 0 else 'HTML'} slot {slot!r} has no value "
                           f"for {email}; the renderer must supply every slot.",
                           recipient=email)

    def render(self, r: Recipient) -> bytes:
        """The whole message for one subscriber: CRLF line ends, lines ≤ 998 octets (body
        lines ≤ 76), DKIM-signed when configured; exactly the bytes to send.

        :raises HeaderError: when the recipient's address, Message-ID or unsubscribe links
            cannot be put in a header, or a slot value is missing.
        """
        return self.render_for(r.email, r.name, r.message_id, r.unsubscribe_url,
                               r.unsubscribe_mailto, r.slot_values_html, r.slot_values_text)

    def render_for(self, email: str, name: str | None, message_id: str,
                   unsubscribe_url: str, unsubscribe_mailto: str,
                   slot_values_html: Mapping[str, str],
                   slot_values_text: Mapping[str, str]) -> bytes:
        """:meth:`render` with the :class:`Recipient` fields as arguments (the send loop's
        form: no object per subscriber)."""
        message = self.render_unsigned(email, name, message_id, unsubscribe_url,
                                       unsubscribe_mailto, slot_values_html, slot_values_text)
        if isinstance(message, UnsignedMessage):
            return message.signed(message.signatures())
        return message

    def render_unsigned(self, email: str, name: str | None, message_id: str,
                        unsubscribe_url: str, unsubscribe_mailto: str,
                        slot_values_html: Mapping[str, str],
                        slot_values_text: Mapping[str, str]) -> bytes | UnsignedMessage:
        """:meth:`render_for`, but a DKIM-signed message comes without its signatures
        (:class:`~digest.mail.signing.UnsignedMessage`: every hash done, the private-key
        step left for a signing process); bytes when the template does not sign."""
        try:
            raw = ([slot_values_text[n] for n in self._text_names]
                   + [slot_values_html[n] for n in self._html_names])
        except KeyError:
            raise self._missing_slot(email, slot_values_html, slot_values_text) from None
        # A URL is usually the same in both parts: encoded once per message.
        get = self._encoded.get
        seen: dict[str, bytes] = {}
        encoded = [get(value) or seen.get(value) or seen.setdefault(value, self._encode(value))
                   for value in raw]
        holes = self._pick(encoded)
        text_b64, html_b64 = self.base64_parts
        if text_b64 is not None or html_b64 is not None:
            holes = self._with_base64(holes, slot_values_html, slot_values_text, email)
        message = self.format % (
            to_header(name, email) if email.isascii() else utf8_to_header(name, email),
            validate_message_id(message_id).encode("ascii"),
            list_unsubscribe(unsubscribe_url, unsubscribe_mailto),
            *holes)
        if self.dkim is not None and self.dkim_body is not None:
            # Every hole is in the body, in order: its values are the body hash's.
            return self.dkim.prepare_with_body_hash(message, self.dkim_body.digest(holes))
        return message

    def _with_base64(self, qp_holes: tuple[bytes, ...], html: Mapping[str, str],
                     text: Mapping[str, str], email: str) -> tuple[bytes, ...]:
        """The holes of ``format`` in order: each base64 part's pieces in its place."""
        text_b64, html_b64 = self.base64_parts
        # The quoted-printable holes come text first: as many as the text part has slots.
        n_text = 0 if text_b64 is not None else sum(1 for k, _ in self.slot_keys if k == 0)
        try:
            text_holes = (text_b64.pieces(text) if text_b64 is not None
                          else qp_holes[:n_text])
            html_holes = (html_b64.pieces(html) if html_b64 is not None
                          else qp_holes[n_text:])
        except KeyError:
            raise self._missing_slot(email, html, text) from None
        return (*text_holes, *html_holes)
