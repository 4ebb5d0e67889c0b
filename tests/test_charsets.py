"""Decoding in our own code: BOMs, shapes, declarations, stray bytes, references, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.sources import parse_feed, parse_page
from digest.sources.charsets import (
    Repair,
    charset_from_content_type,
    decode_text,
    decode_xml,
    xml_for_parser,
)

RSS = (
    '<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
    "<title>News</title><link>https://e.example.org/</link>\n"
    "<item><title>{title}</title><link>https://e.example.org/1</link></item>\n"
    "</channel></rss>"
)


def feed(title: str, encoding: str = "utf-8") -> str:
    return RSS.format(title=title, encoding=encoding)


def headlines(data: bytes, **kwargs: object) -> list[str]:
    result = parse_feed(data, source="s", section_map={}, **kwargs)  # type: ignore[arg-type]
    return [s.headline for s in result.stories]


# --- the encoding a feed is read in --------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "prefix"),
    [
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("utf-32-be", b"\x00\x00\xfe\xff"),
    ],
)
def test_a_byte_order_mark_decides(codec: str, prefix: bytes) -> None:
    data = prefix + feed("Пример — 例", encoding="utf-8").encode(codec)
    assert headlines(data) == ["Пример — 例"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_a_bom_are_read_and_named(codec: str) -> None:
    undeclared = feed("Straße").split("\n", 1)[1].encode(codec)  # no XML declaration
    result = parse_feed(undeclared, source="s", section_map={})
    assert [s.headline for s in result.stories] == ["Straße"]
    name = codec.upper().replace("-LE", "LE").replace("-BE", "BE")
    assert [i.reason for i in result.skipped] == [
        (f"the file is {name} without a byte order mark; it was read as {name} "
        "(nothing was dropped)")
    ]
    declared = feed("Straße", encoding=codec.upper()[:6]).encode(codec)
    result = parse_feed(declared, source="s", section_map={})
    assert [s.headline for s in result.stories] == ["Straße"]
    assert result.skipped == []  # its declaration says what it is


def test_ebcdic_is_refused_with_a_sentence_naming_it() -> None:
    data = feed("Hello").encode("cp037")
    with pytest.raises(ParseError, match="is encoded in EBCDIC"):
        parse_feed(data, source="s", section_map={})
    with pytest.raises(ParseError, match="is encoded in EBCDIC"):
        parse_page("Politics\nA Headline\n".encode("cp500") * 4, source="p",
                   as_of=__import__("datetime").datetime(2026, 1, 1))


def test_a_bom_that_lies_is_named() -> None:
    with pytest.raises(ParseError, match="UTF-16 byte order mark but is not valid UTF-16"):
        decode_xml(b"\xff\xfe<\x00r\x00\x00\xd8", source="s")


def test_valid_utf8_wins_over_a_wrong_declaration() -> None:
    data = feed("Café crème", encoding="iso-8859-1").encode("utf-8")
    assert headlines(data) == ["Café crème"]


@pytest.mark.parametrize(
    ("encoding", "title"),
    [
        ("windows-1251", "Новости"),
        ("iso-8859-1", "Caf\u00e9 \u2019quoted\u2019"),  # read as Windows-1252, as browsers do
        ("koi8-r", "Привет"),
        ("shift_jis", "東京"),
        ("gb2312", "北京"),
        ("iso-8859-7", "Αθήνα"),
    ],
)
def test_a_declared_legacy_encoding_is_used(encoding: str, title: str) -> None:
    codec = "cp1252" if encoding == "iso-8859-1" else encoding
    assert headlines(feed(title, encoding=encoding).encode(codec)) == [title]


def test_the_http_charset_wins_over_the_xml_declaration() -> None:
    data = feed("Новости", encoding="iso-8859-1").encode("windows-1251")
    assert headlines(data, charset="windows-1251") == ["Новости"]
    assert charset_from_content_type('application/rss+xml; charset="Windows-1251"') == (
        "windows-1251"
    )
    assert charset_from_content_type("text/xml") is None


def test_a_windows_1252_file_labelled_utf8_is_read_as_windows_1252() -> None:
    data = feed("Caf\u00e9 \u201cnews\u201d").encode("cp1252")
    result = parse_feed(data, source="s", section_map={})
    assert [s.headline for s in result.stories] == ["Café “news”"]
    assert result.skipped[0].reason == (
        "the file is not UTF-8; it was read as Windows-1252 (nothing was dropped)"
    )


def test_stray_bytes_in_utf8_become_replacement_characters_and_lines() -> None:
    decoded = decode_xml(b"ok \xd0\x9f\nbad \xff\xfe here\nfine\n", source="s")
    assert decoded.text == "ok П\nbad \ufffd\ufffd here\nfine\n"
    assert decoded.repairs == (Repair(2, 2),)


def test_a_replacement_character_the_source_wrote_is_not_a_repair() -> None:
    decoded = decode_text("Politics\n\ufffd written\n".encode() + b"x\xff\n", source="s")
    assert decoded.repairs == (Repair(3, 1),)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_page_in_utf16_or_utf32_without_a_bom_is_read_and_named(codec: str) -> None:
    page = "Politics\nA Headline About Straße\n".encode(codec)
    result = parse_page(page, source="p", as_of=__import__("datetime").datetime(2026, 1, 1))
    assert result.stories[0].headline == "A Headline About Straße"
    assert "without a byte order mark" in result.skipped[0].reason


def test_pages_honour_a_declared_charset() -> None:
    page = "Политика\nЗаголовок новости\n".encode("windows-1251")
    result = parse_page(page, source="p", as_of=__import__("datetime").datetime(2026, 1, 1),
                        charset="windows-1251")
    assert result.stories[0].headline == "Заголовок новости"
    assert result.skipped == []


# --- what the XML parser is handed ---------------------------------------------------------


def test_the_declaration_is_rewritten_and_bad_references_replaced() -> None:
    text = (
        "<?xml version='1.0' encoding='windows-1251'?>\n"
        "<a>&#55296;&#65;&#x110000;\x0b&#xFFFF;\uffff</a>\n<b>&#0;</b>"
    )
    clean, repairs, bad = xml_for_parser(text)
    assert clean == (
        b"<?xml version='1.0' encoding='utf-8'?>\n"
        b"<a>&#xFFFD;&#65;&#xFFFD; &#xFFFD;</a>\n<b>&#xFFFD;</b>"
    )
    assert bad == ["&#55296;", "&#x110000;", "&#xFFFF;", "&#0;"]
    assert repairs == (Repair(2, 3), Repair(3, 1))


def test_noncharacters_never_reach_a_headline() -> None:
    data = feed("A\uffffB\ufdd0C\U0001fffeD &amp;#xFFFF; E").encode()
    assert headlines(data) == ["ABCD E"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_never_raises_anything_but_parse_error(data: bytes) -> None:
    for decode in (decode_text, decode_xml):
        try:
            decoded = decode(data, source="fuzz")
        except ParseError:
            continue
        assert "\ud800" not in decoded.text
