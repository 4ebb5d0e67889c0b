"""Encodings on the wire: RFC 2047 header lines within 76 characters, and base64 bodies for
editions in non-Latin script (chosen when smaller, counted by the size budget).

The case ``fixtures/cases/subject-folding`` (from a public bug report) runs through the real
path: the feed is parsed, the edition built and each subscriber's message made as ``send``
makes it.
"""

from __future__ import annotations

import asyncio
import binascii
import email
import email.policy
import textwrap
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_editions import person
from test_render_variants import make_renderer

from digest.config import load_settings
from digest.mail import MessageTemplate, Recipient
from digest.mail.base64_part import Base64Part
from digest.mail.headers import clean_text, format_address, header_line, unstructured_tokens
from digest.models import Edition, EditionSection, Story, story_id
from digest.pipeline import MessageFactory, build_edition
from digest.render.budget import SLOT_RESERVE, base64_size, qp_size

CASE = Path(__file__).resolve().parent / "fixtures" / "cases" / "subject-folding"
FROM_NAME = "Süddeutsche Nachrichten — Morgenausgabe für Köln, Düsseldorf und Umgebung"
READER = "Ana-Sofía Müller-Lüdenscheidt de la Peña y Hernández-Ibáñez"


def header_lines(raw: bytes, name: str) -> list[str]:
    """The physical lines of header ``name`` (its first line and continuation lines)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")
    out: list[str] = []
    for line in head:
        if line.lower().startswith(name.lower() + ":"):
            out = [line]
        elif out and line[:1] in (" ", "\t"):
            out.append(line)
        elif out:
            break
    return out


def assert_rfc2047_lines(raw: bytes, name: str) -> list[str]:
    lines = header_lines(raw, name)
    assert lines, name
    for line in lines:
        limit = 76 if "=?" in line else 78
        assert len(line) <= limit, (name, len(line), line)
    return lines


def decoded(raw: bytes, name: str) -> str:
    """The header decoded by the RFC 2047 helpers (CPython's structured-header parser adds a
    space between two encoded-words of a display name, which RFC 2047 section 6.2 forbids)."""
    lines = header_lines(raw, name)
    value = "".join([lines[0].split(":", 1)[1], *lines[1:]]).strip()  # unfolded
    return str(make_header(decode_header(value)))


# --------------------------------------------------------------------------- the case


@pytest.fixture(scope="module")
def case_settings(tmp_path_factory: pytest.TempPathFactory):
    """Four lists on the case's feed, each leading with another of its headlines."""
    tmp = tmp_path_factory.mktemp("folding")
    repo = Path(__file__).resolve().parent.parent
    lists = ""
    for name, section in (("de", "Politics"), ("ja", "World"), ("fr", "Business"),
                          ("en", "Technology")):
        lists += textwrap.dedent(f"""
            [lists.{name}]
            sources = ["{CASE / 'feed.rss'}"]
            sections = ["Politics", "World", "Business", "Technology"]
            lead_section = "{section}"
            from = "\\"{FROM_NAME}\\" <briefing@news.example.de>"
            """)
    config = tmp / "digest.toml"
    config.write_text(textwrap.dedent(f"""\
        [digest]
        work_dir = "{tmp / 'var'}"
        templates_dir = "{repo / 'templates'}"
        [site]
        name = "Nachrichten"
        url = "https://news.example.de"
        postal_address = "Nachrichten, Domplatz 1, 50667 Köln"
        domain = "news.example.de"
        [web]
        base_url = "https://news.example.de/digest"
        """) + lists, encoding="utf-8")
    return load_settings(config, env={"DIGEST_SECRET_KEY": "k" * 32})


@pytest.mark.parametrize("list_name", ["de", "ja", "fr", "en"])
def test_case_subject_from_and_to_lines_stay_within_76(case_settings, list_name: str) -> None:
    lst = case_settings.get_list(list_name)
    edition = asyncio.run(build_edition(case_settings, lst, store=None,
                                        as_of=datetime(2026, 11, 17, 8, 0, tzinfo=UTC))).edition
    factory = MessageFactory(case_settings, lst, edition)
    raw = factory.message(email="ana@example.com", name=READER, sections=None,
                          subscriber_id=7, message_id="<m1@news.example.de>")
    subject = assert_rfc2047_lines(raw, "Subject")
    assert_rfc2047_lines(raw, "From")
    assert_rfc2047_lines(raw, "To")
    headline = edition.lead.headline
    assert edition.subject == headline and lst.lead_section == edition.lead.section
    assert decoded(raw, "Subject") == headline
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == headline
    assert decoded(raw, "From") == f"{FROM_NAME} <briefing@news.example.de>"
    assert decoded(raw, "To") == f"{READER} <ana@example.com>"
    if list_name == "en":  # a long ASCII subject is folded at spaces, no encoded-word
        assert len(subject) > 1 and "=?" not in "".join(subject)
    else:
        assert len(subject) > 1 and all("=?utf-8?b?" in line for line in subject)


@given(st.text(min_size=1, max_size=300).map(clean_text).filter(bool))
@settings(max_examples=300, deadline=None)
def test_any_subject_folds_within_76_and_decodes_back(text: str) -> None:
    raw = header_line("Subject", unstructured_tokens(text)) + b"\r\n"
    for line in raw.decode("ascii").split("\r\n")[:-2]:
        if "=?" in line:
            assert len(line) <= 76, line
        else:  # only a word longer than a line may make one longer than 78
            assert len(line) <= 78 or " " not in line.strip(), line
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == text


@given(st.text(min_size=1, max_size=120).map(clean_text).filter(bool),
       st.sampled_from(["From", "To", "Reply-To"]))
@settings(max_examples=200, deadline=None)
def test_any_display_name_folds_within_76(name: str, field: str) -> None:
    raw = header_line(field, format_address(name, "ana@example.com"))
    for line in raw.decode("ascii").split("\r\n")[:-1]:
        if "=?" in line:
            assert len(line) <= 76, line
    assert raw.decode("ascii").rstrip("\r\n").endswith("<ana@example.com>")


# --------------------------------------------------------------------------- base64 bodies


def japanese_edition() -> Edition:
    """A Japanese-language edition: the text is almost all non-Latin script."""
    def story(section: str, n: int, lead: bool = False) -> Story:
        headline = f"東京都で第{n}回の記者会見、新しい交通計画について知事が説明しました"
        return Story(id=story_id(section, headline), section=section, headline=headline,
                     summary="都内の鉄道とバスの運行計画が見直され、来年春から新しい路線が"
                             "開業する予定です。" * 3,
                     url=f"https://news.example.jp/{section.lower()}/{n}",
                     published_at=datetime(2025, 8, 25, 5, n % 60, tzinfo=UTC),
                     source="test", is_lead=lead)
    sections = tuple(EditionSection(name, tuple(story(name, 10 * i + j) for j in range(4)))
                     for i, name in enumerate(("Politics", "World", "Business")))
    return Edition(list_name="daily", date=datetime(2025, 8, 25).date(),
                   subject="東京都で記者会見", preheader="新しい交通計画",
                   lead=story("Politics", 1, lead=True), sections=sections)


def test_a_non_latin_edition_goes_out_in_base64_within_the_budget() -> None:
    renderer = make_renderer()
    variant = renderer.variant(japanese_edition())
    html, text = variant.fill(person())
    assert (variant.html_encoding, variant.text_encoding) == ("base64", "base64")
    assert variant.html_size == base64_size(renderer.plan(japanese_edition(), variant.sections)[0])
    template = MessageTemplate.build(
        html_segments=variant.html_segments, html_slots=variant.html_slots,
        text_segments=variant.text_segments, text_slots=variant.text_slots,
        subject="東京都で記者会見", from_header="Nachrichten <a@news.example.jp>",
        list_id="Daily <daily.news.example.jp>", html_encoding=variant.html_encoding,
        text_encoding=variant.text_encoding)
    html_values, text_values = variant.slot_values(person())
    raw = template.render(Recipient(
        email="ana@example.com", name="Ana", message_id="<m@news.example.jp>",
        unsubscribe_url=person().unsubscribe_url, unsubscribe_mailto="mailto:u@example.jp",
        slot_values_html=html_values, slot_values_text=text_values))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    text_part, html_part = parsed.iter_parts()
    assert text_part["Content-Transfer-Encoding"] == html_part["Content-Transfer-Encoding"] \
        == "base64"
    assert html_part.get_content().replace("\r\n", "\n") == html
    assert text_part.get_content().replace("\r\n", "\n") == text
    sent = html_part.get_payload().encode("ascii")
    assert binascii.a2b_base64(sent.replace(b"\r\n", b"").replace(b"\n", b""),
                               strict_mode=True).decode("utf-8").replace("\r\n", "\n") == html
    # What Gmail counts: the HTML part as sent, within the measured size plus the reserve,
    # and far smaller than quoted-printable would have been.
    assert len(sent) <= variant.html_size + SLOT_RESERVE
    assert len(sent) < 0.9 * qp_size(html)  # 32.6 KB instead of 38.3 KB
    assert len(text_part.get_payload()) < 0.8 * qp_size(text)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76


def test_a_latin_edition_stays_quoted_printable() -> None:
    from render_editions import seed_edition

    variant = make_renderer().variant(seed_edition())
    assert (variant.html_encoding, variant.text_encoding) == ("quoted-printable",) * 2


_SEGMENT = st.text(alphabet=st.sampled_from("ab\n\r東é<>= "), max_size=40)


@given(st.lists(_SEGMENT, min_size=1, max_size=6), st.data())
@settings(max_examples=300, deadline=None)
def test_base64_part_with_holes_equals_base64_of_the_whole(segments: list[str], data) -> None:
    slots = [f"s{i}" for i in range(len(segments) - 1)]
    part = Base64Part.build(segments, slots)
    for _ in range(3):
        values = {s: data.draw(st.text(alphabet=st.sampled_from("xé東\n😀"), max_size=70))
                  for s in slots}
        body = part.encode(values)
        lines = body.split(b"\r\n")
        assert lines[-1] == b"" and all(0 < len(line) <= 76 for line in lines[:-1])
        pieces = [segments[0], *(p for s, seg in zip(slots, segments[1:], strict=True)
                                 for p in (values[s], seg))]
        # Each piece's line ends become CRLF (a lone CR too), as quoted-printable does.
        want = b"".join(p.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
                        .encode("utf-8") for p in pieces)
        assert binascii.a2b_base64(b"".join(lines), strict_mode=True) == want


def test_message_template_refuses_an_unknown_transfer_encoding() -> None:
    with pytest.raises(ValueError, match="transfer encoding"):
        MessageTemplate.build(html_segments=("x",), html_slots=(), text_segments=("x",),
                              text_slots=(), subject="s", from_header="a@example.org",
                              list_id="L <l.example.org>", html_encoding="8bit")

