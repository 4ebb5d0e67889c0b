"""Header values made safe for the wire: no CR/LF from data, RFC 2047 where needed, folded."""

from __future__ import annotations

import base64
import re
import unicodedata

from anyascii import anyascii

from digest.errors import DeliveryError

__all__ = [
    "EncodedText",
    "HeaderError",
    "clean_text",
    "encode_words",
    "format_address",
    "format_list_id",
    "header_line",
    "list_unsubscribe",
    "parse_mailbox",
    "to_header",
    "unstructured_tokens",
    "utf8_to_header",
    "validate_addr_spec",
    "validate_message_id",
    "validate_uri",
]

# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: none of these may
# reach a header, because some of them end a header line in one parser or another.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
# Every pattern is used with fullmatch: "$" would also match before a trailing newline.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LABELS = rf"(?:{_LABEL}\.)*{_LABEL}"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABELS}|\[[0-9A-Fa-f:.]+\]")
_ASCII_MAILBOX = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABELS}")  # the usual address
_MSGID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_URI = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII without <, > and space
_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_MAX_WORD_BYTES = 45  # 45 raw bytes -> 60 base64 chars -> 72-char encoded word (limit 75)
_WORD_OVERHEAD = len("=?utf-8?b?") + len("?=")
_MIN_WORD_BYTES = 6  # a shorter word than this is not worth starting at a line's end
_ENCODED_LINE = 76  # RFC 2047 section 2: a line holding an encoded-word is at most 76 long
MAX_URI = 900  # keeps every header line under the 998-octet limit


class HeaderError(DeliveryError, ValueError):
    """Raised when a value cannot be put into a message header safely (CR/LF, bad address)."""


def clean_text(value: str, *, limit: int = 300) -> str:
    """Collapse controls, line breaks and runs of whitespace to single spaces; cap the length.

    Used for free text that comes from content or subscribers (subject, display names), which
    must never be able to end a header line.
    """
    if value.isascii() and value.isprintable():  # the usual name: nothing to remove
        return " ".join(value.split())[:limit].rstrip()
    text = _CONTROLS.sub(" ", unicodedata.normalize("NFC", value))
    text = _SPACES.sub(" ", text).strip()
    return text[:limit].rstrip()


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text


class EncodedText(str):
    """A header token written as RFC 2047 encoded-words by :func:`header_line`, which splits
    it across as many words and lines as the 76-character limit needs."""

    __slots__ = ()


def encode_words(text: str) -> list[str]:
    """RFC 2047 ``B`` encoded-words for ``text``, each ≤ 72 characters, never splitting a
    character's UTF-8 bytes between words (:func:`header_line` fills lines itself)."""
    raw = text.encode("utf-8")
    words: list[str] = []
    start = 0
    while start < len(raw) or not words:
        end = _char_boundary(raw, start + _MAX_WORD_BYTES)
        words.append(_b_word(raw[start:end]))
        start = end
    return words


def _char_boundary(raw: bytes, end: int) -> int:
    """``end``, moved back to the start of the UTF-8 character it falls inside."""
    if end >= len(raw):
        return len(raw)
    while end > 0 and raw[end] & 0xC0 == 0x80:  # a continuation byte
        end -= 1
    return end


def _cut(raw: bytes, pos: int, size: int) -> int:
    """Where the encoded-word starting at ``pos`` with room for ``size`` bytes ends: after
    the last space in its second half when there is one (a decoder that wrongly keeps the
    folding white space between two words then doubles a space instead of splitting a word,
    as CPython's display-name parser does), else at a character boundary."""
    end = _char_boundary(raw, pos + size)
    if end < len(raw):
        space = raw.rfind(b" ", pos + size // 2, end)
        if space != -1:
            return space + 1
    return end


def _b_word(raw: bytes) -> str:
    return "=?utf-8?b?" + base64.b64encode(raw).decode("ascii") + "?="


def _word_bytes(room: int) -> int:
    """Raw bytes an encoded-word can carry in ``room`` characters (base64: 3 bytes per 4)."""
    return (room - _WORD_OVERHEAD) // 4 * 3


def header_line(name: str, tokens: list[str]) -> bytes:
    """``Name: tok tok ...`` folded with CRLF + space between tokens, ending with CRLF.

    Lines stay within 78 characters where the tokens allow it, and every line that holds an
    encoded-word within 76 (RFC 2047 section 2): an :class:`EncodedText` token is cut into
    encoded-words that fill each line up to that limit. Other tokens are never split.

    :raises HeaderError: when a token cannot fit the 998-octet line limit.
    """
    if not any(type(tok) is EncodedText for tok in tokens):
        line = name + ": " + " ".join(tokens)
        if len(line) <= 78:  # the usual To: fits on one line, nothing to fold
            return (line + "\r\n").encode("ascii")
    start = name + ":"
    lines: list[str] = []
    current, has_word = start, False
    for tok in tokens:
        if type(tok) is EncodedText:
            raw, pos = tok.encode("utf-8"), 0
            while pos < len(raw):
                size = _word_bytes(_ENCODED_LINE - len(current) - 1)
                end = _cut(raw, pos, size) if size >= _MIN_WORD_BYTES else pos
                if end == pos:  # no room left on this line for a word: fold first
                    lines.append(current)
                    current, has_word = "", False
                    continue
                current += " " + _b_word(raw[pos:end])
                has_word, pos = True, end
                if pos < len(raw):
                    lines.append(current)
                    current, has_word = "", False
            continue
        limit = _ENCODED_LINE if has_word else 78
        if len(current) + 1 + len(tok) > limit and current not in (start, ""):
            lines.append(current)
            current, has_word = "", False
        current += " " + tok
    lines.append(current)
    if any(len(line) > 998 for line in lines):
        raise HeaderError(f"The {name} header has a part longer than 998 octets; shorten it.")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def unstructured_tokens(text: str) -> list[str]:
    """Tokens for an unstructured header (Subject): words, or one :class:`EncodedText` when
    the text needs RFC 2047 encoding."""
    if not _needs_encoding(text):
        return text.split(" ") if text else [""]
    return [EncodedText(text)]


def _phrase_tokens(name: str) -> list[str]:
    if _needs_encoding(name):
        return [EncodedText(name)]
    if _ATOM_PHRASE.fullmatch(name):
        return name.split(" ")
    return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']


def validate_addr_spec(address: str) -> str:
    """The address as it goes into RCPT TO and headers: ASCII, IDN domains in punycode.

    :raises HeaderError: for control characters, spaces, a missing ``@`` or a non-ASCII
        local part (which would need SMTPUTF8).
    """
    if len(address) <= 254 and _ASCII_MAILBOX.fullmatch(address):  # nothing to convert
        return address
    if _CONTROLS.search(address) or " " in address or address.count("@") != 1:
        raise HeaderError(f"The address {address!r} is not a valid mailbox; fix or remove it.",
                          recipient=address)
    local, domain = address.split("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise HeaderError(f"The domain of {address!r} is not a valid international "
                              "domain name; fix or remove the address.",
                              recipient=address) from None
    if not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise HeaderError(f"The address {address!r} is not a valid ASCII mailbox (a non-ASCII "
                          "local part needs SMTPUTF8); fix or remove it.", recipient=address)
    return f"{local}@{domain}"


def format_address(name: str | None, address: str) -> list[str]:
    """Header tokens for ``Name <addr>``: the name cleaned, quoted or RFC 2047-encoded."""
    addr = validate_addr_spec(address)
    display = clean_text(name or "", limit=200)
    if not display:
        return [addr]
    return [*_phrase_tokens(display), f"<{addr}>"]


def to_header(name: str | None, address: str) -> bytes:
    """The ``To:`` line for one recipient; :func:`format_address` + :func:`header_line`, with
    the usual short ASCII name written straight out."""
    addr = validate_addr_spec(address)
    if not name:
        return header_line("To", [addr])
    if name.isascii() and name.isprintable() and "=?" not in name:
        display = " ".join(name.split())[:200].rstrip()
        line = f"To: {display} <{addr}>"
        if len(line) <= 78 and display and _ATOM_PHRASE.fullmatch(display):
            return (line + "\r\n").encode("ascii")
    return header_line("To", format_address(name, addr))


def parse_mailbox(header: str) -> tuple[str, str]:
    """Split a configured ``Name <addr>`` (or bare ``addr``) into name and address."""
    if _CONTROLS.search(header):
        raise HeaderError(f"The address {header!r} contains a line break; fix the setting.")
    text = header.strip()
    m = re.match(r'^(.*?)\s*<([^<>]+)>$', text)
    if not m:
        return "", validate_addr_spec(text)
    name = m.group(1).strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name, validate_addr_spec(m.group(2).strip())


def validate_message_id(message_id: str) -> str:
    """``<left@right>`` with printable ASCII only; refused otherwise."""
    if len(message_id) > 250 or not _MSGID.fullmatch(message_id):
        raise HeaderError(f"The Message-ID {message_id!r} is not of the form <id@domain>.")
    return message_id


def validate_uri(uri: str, *, scheme: str) -> str:
    """A URI fit for ``List-Unsubscribe``: the given scheme, printable ASCII, no brackets."""
    if (len(uri) > MAX_URI or uri[:len(scheme) + 1].lower() != scheme + ":"
            or not _URI.fullmatch(uri)):
        raise HeaderError(f"The unsubscribe link {uri[:80]!r} is not a plain {scheme}: URI of "
                          f"at most {MAX_URI} ASCII characters.")
    return uri


def list_unsubscribe(https_url: str, mailto: str) -> bytes:
    """``List-Unsubscribe: <https://…>, <mailto:…>`` folded between the two URIs only, so
    no client ever sees an encoded-word or a break inside a URI (RFC 2369, RFC 8058)."""
    if not (https_url.startswith("https:") and mailto.startswith("mailto:")
            and len(https_url) <= MAX_URI and len(mailto) <= MAX_URI
            and _URI.fullmatch(https_url) and _URI.fullmatch(mailto)):
        validate_uri(https_url, scheme="https")  # raises, or passes an upper-case scheme
        validate_uri(mailto, scheme="mailto")
    if len(https_url) + len(mailto) > 56:  # the usual case: one URI per line, no search
        return f"List-Unsubscribe: <{https_url}>,\r\n <{mailto}>\r\n".encode("ascii")
    return header_line("List-Unsubscribe", [f"<{https_url}>,", f"<{mailto}>"])


def format_list_id(list_id: str) -> bytes:
    """``List-Id: Description <id.domain>`` (RFC 2919); a non-ASCII description is
    transliterated to ASCII (anyascii: "L’Essentiel" → "L'Essentiel", "Новости" →
    "Novosti") instead of being encoded, as list headers must carry no encoded-words."""
    m = re.match(r"^(.*?)\s*<([^<>]+)>$", list_id.strip())
    desc, ident = (m.group(1), m.group(2)) if m else ("", list_id.strip())
    if not _LIST_ID.fullmatch(ident) or "." not in ident:
        raise HeaderError(f"The List-Id {list_id!r} needs an id like <list.example.org>.")
    desc = clean_text(desc, limit=120)
    if not desc.isascii():
        desc = clean_text(anyascii(unicodedata.normalize("NFC", desc)), limit=120)
    tokens = _phrase_tokens(desc) if desc else []
    return header_line("List-Id", [*tokens, f"<{ident}>"])


# RFC 6531 §3.3: an internationalized local part is a dot-atom whose atext also takes any
# non-ASCII character (controls, spaces and line separators stay out).
_UTF8_ATEXT = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f\x80-\x9f\s\u2028\u2029])+"
_UTF8_LOCAL = re.compile(rf"{_UTF8_ATEXT}(?:\.{_UTF8_ATEXT})*")


def utf8_to_header(name: str | None, address: str) -> bytes:
    """The ``To:`` line (UTF-8 bytes, RFC 6532) for an address with a non-ASCII local part,
    which only travels with SMTPUTF8 (RFC 6531); the domain is written in IDNA, the name
    RFC 2047-encoded as in :func:`to_header`.

    :raises HeaderError: for an address that is not a valid internationalized mailbox.
    """
    if _CONTROLS.search(address) or address.count("@") != 1 or len(address) > 320:
        raise HeaderError(f"The address {address!r} is not a valid mailbox; fix or remove it.",
                          recipient=address)
    local, domain = address.split("@")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        domain = ""
    if not _UTF8_LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise HeaderError(f"The address {address!r} is not a valid internationalized mailbox; "
                          "fix or remove it.", recipient=address)
    display = clean_text(name or "", limit=200)
    tokens = [*_phrase_tokens(display), f"<{local}@{domain}>"] if display else \
        [f"{local}@{domain}"]
    return b"\r\n ".join(t.encode("utf-8") for t in _fold(["To:", *tokens])) + b"\r\n"


def _fold(tokens: list[str]) -> list[str]:
    """Tokens joined by spaces into lines of at most 78 characters where they allow it."""
    lines: list[str] = []
    for tok in tokens:
        if lines and len(lines[-1]) + 1 + len(tok) <= 78:
            lines[-1] += " " + tok
        else:
            lines.append(tok)
    return lines
