"""Turning a source's bytes into text in our own code, so one bad byte costs one character.

feedparser, left to itself, guesses a whole document's encoding again when a declared UTF-8
feed holds one stray byte and reads all of it as Mac Roman. Here the encoding is chosen from
what the source says and what the bytes are, in this order:

1. a byte order mark (UTF-8, UTF-16, UTF-32), or the shape of the first bytes of a file with
   none (XML 1.0 appendix F: ``<`` as UTF-16 or UTF-32 gives runs of NUL bytes);
2. bytes that are valid UTF-8 are UTF-8 whatever is declared (valid multi-byte UTF-8 is
   practically never another encoding's text);
3. the charset the HTTP ``Content-Type`` declares, else the XML declaration's ``encoding``
   (labels as the WHATWG Encoding Standard reads them: ``iso-8859-1`` and ``us-ascii`` are
   Windows-1252);
4. UTF-8 with the invalid bytes replaced by U+FFFD when valid multi-byte UTF-8 surrounds
   them; Windows-1252 when there is none at all (an old export labelled UTF-8).

Every repair is returned as a :class:`Repair` (line and count) so the caller can say which
item or line it touched. EBCDIC is refused with a sentence that names it.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

from digest.errors import ParseError

__all__ = [
    "Decoded",
    "Repair",
    "charset_from_content_type",
    "decode_text",
    "decode_xml",
    "sniff_text",
    "xml_for_parser",
]

REPLACEMENT = "\ufffd"
_SNIFF = 4096
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_XML_DECL = re.compile(
    rb"^\s*<\?xml\b[^>]{0,300}?\bencoding\s*=\s*[\"']([A-Za-z0-9][\w.:-]{0,39})[\"']"
)
_XML_DECL_TEXT = re.compile(r"^(\s*<\?xml\b[^>]{0,300}?\bencoding\s*=\s*)([\"'])[^\"']*\2")
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*[\"']?([^\s\"';]+)", re.IGNORECASE)
# A character reference (decimal or hex); the value is checked in code, not in the pattern.
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
# What XML 1.0 forbids in a document even as a literal character (section 2.2): control
# characters read as a space (titles drop them anyway), U+FFFE and U+FFFF are not text.
_NOT_XML_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# WHATWG Encoding Standard: these labels mean windows-1252 on the web.
_WINDOWS_1252_LABELS = frozenset(
    {
        "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "iso_8859-1",
        "cp819", "ibm819", "iso-ir-100", "windows-1252", "cp1252", "x-cp1252",
    }
)


@dataclass(frozen=True, slots=True)
class Repair:
    """One line of decoded text where something was replaced: ``count`` characters on it."""

    line: int
    count: int


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text decoded from a source's bytes and how.

    ``encoding`` is the Python codec name used; ``note`` says in one phrase what was
    repaired or assumed (None when the bytes were exactly what they said); ``repairs``
    lists the lines where bytes were replaced with U+FFFD.
    """

    text: str
    encoding: str
    note: str | None = None
    repairs: tuple[Repair, ...] = field(default=())


def charset_from_content_type(value: str | None) -> str | None:
    """The ``charset`` parameter of an HTTP ``Content-Type`` value, or None."""
    if not value:
        return None
    match = _CHARSET_PARAM.search(value)
    return match.group(1).strip().lower() if match else None


def decode_text(data: bytes, *, source: str, declared: str | None = None) -> Decoded:
    """Decode an article page or a JSON Feed (no XML declaration to read).

    :param declared: the charset the server declared, if any.
    :raises ParseError: when the bytes are binary, EBCDIC, or a UTF-16/UTF-32 file that
        does not decode as what its byte order mark or shape says.
    """
    unicode = _unicode_family(data, source)
    if unicode is not None:
        return _checked(unicode, source)
    return _checked(_decode_bytes(data, source, [declared]), source)


def decode_xml(data: bytes, *, source: str, declared: str | None = None) -> Decoded:
    """Decode an RSS or Atom document: BOM, then valid UTF-8, then ``declared`` (HTTP),
    then the XML declaration's ``encoding``, then UTF-8 with replacement.

    Unlike :func:`decode_text` it does not refuse control characters: the feed parser
    decides whether the document is a feed at all.

    :raises ParseError: for EBCDIC, or UTF-16/UTF-32 that does not decode.
    """
    unicode = _unicode_family(data, source)
    if unicode is not None:
        return unicode
    match = _XML_DECL.match(data[:512])
    in_document = match.group(1).decode("ascii").lower() if match else None
    return _decode_bytes(data, source, [declared, in_document])


def sniff_text(head: bytes) -> str:
    """The first bytes of a source as text, for telling its kind; never raises.

    UTF-16 and UTF-32 (with a byte order mark or by their shape) are decoded as such,
    EBCDIC gives ``""``, anything else is UTF-8 with replacement characters.
    """
    for bom, codec, _ in _BOMS:
        if head.startswith(bom):
            return head[len(bom) :].decode(codec, errors="replace")
    shape = _nul_shape(head[:_SNIFF])
    if shape is not None:
        return head.decode(shape[0], errors="replace")
    if _looks_ebcdic(head[:_SNIFF]):
        return ""
    return head.decode("utf-8", errors="replace")


def xml_for_parser(text: str) -> tuple[bytes, tuple[Repair, ...], list[str]]:
    """UTF-8 bytes of ``text`` that an XML parser reads as we decoded them.

    The XML declaration is rewritten to say UTF-8; a character reference to something
    that is not a character (``&#55296;``, ``&#x110000;``, ``&#0;``) becomes ``&#xFFFD;``,
    so one bad reference costs one character instead of the whole document. Control
    characters XML forbids become spaces, U+FFFE and U+FFFF are dropped. Returns the bytes,
    the lines where references were replaced, and those references as written (at most 20).
    """
    text = text.lstrip("\ufeff")
    text = _XML_DECL_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}utf-8{m.group(2)}", text, 1)
    bad: list[str] = []
    positions: list[int] = []

    def fix_ref(match: re.Match[str]) -> str:
        if _is_xml_char_ref(match):
            return match.group(0)
        positions.append(match.start())
        if len(bad) < 20:
            bad.append(match.group(0)[:24])
        return "&#xFFFD;"

    text = _CHAR_REF.sub(fix_ref, text)
    repairs = _repairs_at(text, positions)
    text = _NOT_XML_CHAR.sub(lambda m: " " if m.group(0) < " " else "", text)
    return text.encode("utf-8"), repairs, bad


def _is_xml_char_ref(match: re.Match[str]) -> bool:
    digits = match.group(1) or match.group(2)
    if len(digits) > 8:
        return False
    code = int(digits, 16 if match.group(1) else 10)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


# --- choosing the encoding -------------------------------------------------------------


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


def _unicode_family(data: bytes, source: str) -> Decoded | None:
    """Decoded text for a BOM or a UTF-16/UTF-32 shape; None for byte-oriented encodings."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            if codec == "utf-8":
                return None  # UTF-8 goes the byte-oriented way, so bad bytes cost one character
            try:
                return Decoded(data[len(bom) :].decode(codec), codec)
            except UnicodeDecodeError:
                raise ParseError(
                    f"{source} starts with a {name} byte order mark but is not valid {name} "
                    "text; save it again as UTF-8.",
                    source=source,
                ) from None
    shape = _nul_shape(data[:_SNIFF])
    if shape is None:
        if _looks_ebcdic(data[:_SNIFF]):
            raise ParseError(
                f"{source} is encoded in EBCDIC (a mainframe character set), which digest "
                "does not read; convert it to UTF-8.",
                source=source,
            )
        return None
    codec, name = shape
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        raise ParseError(
            f"{source} looks like {name} text without a byte order mark but does not decode "
            f"as {name}; save it again as UTF-8.",
            source=source,
        ) from None
    if _declares_family(text, name[:6]):
        return Decoded(text, codec)  # an XML declaration names it: no guess was made
    note = f"the file is {name} without a byte order mark; it was read as {name}"
    return Decoded(text, codec, note)


_FAMILIES = {
    "UTF-16": ("utf16", "ucs2", "iso10646ucs2", "csunicode", "unicode"),
    "UTF-32": ("utf32", "ucs4", "iso10646ucs4", "csucs4"),
}


def _declares_family(text: str, family: str) -> bool:
    """True when an XML declaration in ``text`` names an encoding of ``family``."""
    match = _XML_DECL_TEXT.match(text[:512])
    if match is None:
        return False
    label = text[match.end(2) : match.end() - 1]
    folded = re.sub(r"[-_\s]", "", label.lower())
    return folded.startswith(_FAMILIES.get(family, ()))


def _nul_shape(head: bytes) -> tuple[str, str] | None:
    """UTF-16 or UTF-32 (and byte order) told from where the NUL bytes of ASCII text fall."""
    if len(head) < 8 or b"\x00" not in head:
        return None
    usable = len(head) - len(head) % 4
    nul = [0, 0, 0, 0]
    for index in range(usable):
        if head[index] == 0:
            nul[index % 4] += 1
    quarter = usable // 4

    def mostly(count: int) -> bool:
        return count >= quarter * 0.9

    def rarely(count: int) -> bool:
        return count <= quarter * 0.1

    if mostly(nul[1]) and mostly(nul[2]) and mostly(nul[3]) and rarely(nul[0]):
        return "utf-32-le", "UTF-32LE"
    if mostly(nul[0]) and mostly(nul[1]) and mostly(nul[2]) and rarely(nul[3]):
        return "utf-32-be", "UTF-32BE"
    if mostly(nul[1]) and mostly(nul[3]) and rarely(nul[0]) and rarely(nul[2]):
        return "utf-16-le", "UTF-16LE"
    if mostly(nul[0]) and mostly(nul[2]) and rarely(nul[1]) and rarely(nul[3]):
        return "utf-16-be", "UTF-16BE"
    return None


def _looks_ebcdic(head: bytes) -> bool:
    """EBCDIC text: ``<?xm`` in code page 37, or text with EBCDIC spaces (0x40) and
    letters, EBCDIC line ends, and neither an ASCII space nor an ASCII line end."""
    if head.startswith(b"\x4c\x6f\xa7\x94"):
        return True
    if len(head) < 16 or any(byte in head for byte in b" \n\r"):
        return False
    if not all(b >= 0x40 or b in b"\x05\x0d\x15\x25" for b in head):
        return False
    letters = sum(1 for b in head if b == 0x40 or 0x81 <= b <= 0xA9 or 0xC1 <= b <= 0xF9)
    return head.count(0x40) >= max(1, len(head) // 50) and letters >= len(head) * 0.8


def _decode_bytes(data: bytes, source: str, declared: list[str | None]) -> Decoded:
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return Decoded(text, "utf-8")
    for label in declared:
        codec = _codec(label)
        if codec is None or codec == "utf-8":
            continue
        try:
            return Decoded(data.decode(codec), codec)
        except UnicodeDecodeError:
            text = data.decode(codec, errors="replace")
            note = f"bytes that are not valid {label} were replaced with {REPLACEMENT}"
            return Decoded(text, codec, note, _replaced(text, data.decode(codec, "ignore")))
    replaced = data.decode("utf-8", errors="replace")
    clean = data.decode("utf-8", errors="ignore")
    if clean.isascii():  # not one valid multi-byte sequence: an old single-byte file
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            pass
        else:
            return Decoded(text, "cp1252", "the file is not UTF-8; it was read as Windows-1252")
    note = f"bytes that are not UTF-8 were replaced with {REPLACEMENT}"
    return Decoded(replaced, "utf-8", note, _replaced(replaced, clean))


def _codec(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when Python does not know it."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A declaration of UTF-16/32 on bytes with no BOM or NUL shape is a wrong label.
    return None if name.startswith(("utf-16", "utf-32")) else name


def _replaced(text: str, without: str) -> tuple[Repair, ...]:
    """Lines where ``text`` has a U+FFFD that ``without`` (the same bytes, bad ones dropped)
    does not: the replacements the decoder made, not U+FFFD the source itself wrote."""
    if text.count(REPLACEMENT) == without.count(REPLACEMENT):
        return ()
    new_positions: list[int] = []
    j = 0
    for i, char in enumerate(text):
        if j < len(without) and without[j] == char:
            j += 1
        elif char == REPLACEMENT:
            new_positions.append(i)
    return _repairs_at(text, new_positions)


def _repairs_at(text: str, positions: list[int]) -> tuple[Repair, ...]:
    counts: dict[int, int] = {}
    for line in _lines_of(text, sorted(positions)):
        counts[line] = counts.get(line, 0) + 1
    return tuple(Repair(line, count) for line, count in counts.items())


def _lines_of(text: str, positions: list[int]) -> Iterator[int]:
    """1-based line numbers (LF, CRLF or CR line ends) of ``positions`` in ``text``."""
    starts = [match.end() for match in _LINE_BREAK.finditer(text)]
    for position in positions:
        yield bisect_right(starts, position) + 1


def _checked(decoded: Decoded, source: str) -> Decoded:
    text = decoded.text
    controls = len(_CONTROL.findall(text[:65536]))
    if "\x00" in text or controls > max(8, len(text[:65536]) // 50):
        raise ParseError(
            f"{source} is binary data, not text; give an article page or a feed.", source=source
        )
    return decoded
