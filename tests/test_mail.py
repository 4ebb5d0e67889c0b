"""The message template: MIME structure, exact decoded parts, wire limits, headers (DKIM:
test_dkim.py)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.mail import HeaderError, MessageTemplate, Recipient, qp_encode

DATE = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
HTML_SEGMENTS = ("<html><body><p>Hello ", ", here is today’s digest.</p>\n<p>",
                 "</p>\n<a href=\"", "\">Unsubscribe</a></body></html>\n")
HTML_SLOTS = ("name", "greeting", "unsubscribe_url")
TEXT_SEGMENTS = ("Hello ", ",\n\nToday: ", "\n\nUnsubscribe: ", "\n")
TEXT_SLOTS = ("name", "greeting", "unsubscribe_url")
EXPECTED_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "list-id",
                    "list-unsubscribe", "list-unsubscribe-post", "auto-submitted",
                    "content-type"}


def template(**kwargs: object) -> MessageTemplate:
    args: dict[str, object] = {
        "html_segments": HTML_SEGMENTS, "html_slots": HTML_SLOTS, "text_segments": TEXT_SEGMENTS,
        "text_slots": TEXT_SLOTS, "subject": "Morning Briefing: markets rally",
        "from_header": "The Morning Ledger <briefing@news.example.org>",
        "list_id": "Morning Briefing <daily.news.example.org>", "date": DATE}
    args.update(kwargs)
    return MessageTemplate.build(**args)  # type: ignore[arg-type]


def recipient(**kwargs: object) -> Recipient:
    url = "https://news.example.org/u/tok-123"
    args: dict[str, object] = {
        "email": "ana@example.com", "name": "Ana Müller",
        "message_id": "<e1.s7.abc@news.example.org>", "unsubscribe_url": url,
        "unsubscribe_mailto": "mailto:unsubscribe@news.example.org?subject=t",
        "slot_values_html": {"name": "Ana &amp; co", "greeting": "Good morning",
                          "unsubscribe_url": url},
        "slot_values_text": {"name": "Ana & co", "greeting": "Good morning",
                          "unsubscribe_url": url}}
    args.update(kwargs)
    return Recipient(**args)  # type: ignore[arg-type]


def expected(segments: tuple[str, ...], slots: tuple[str, ...], values: dict[str, str]) -> str:
    out = [segments[0]]
    for slot, seg in zip(slots, segments[1:], strict=True):
        out += [values[slot], seg]
    return "".join(out)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def parts(raw: bytes) -> tuple[str, str]:
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = list(msg.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    for p in (plain, html):
        assert p.get_content_charset() == "utf-8"
        assert p["Content-Transfer-Encoding"] == "quoted-printable"
    return plain.get_content(), html.get_content()


def canon(text: str) -> str:
    return text.replace("\r\n", "\n")


def check_wire(raw: bytes) -> None:
    assert b"\r\n" in raw
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF"
    assert re.search(rb"\r(?!\n)", raw) is None, "bare CR"
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.isascii()
    in_part_body = False
    for line in body.split(b"\r\n"):
        if line.startswith(b"--=_digest_"):
            in_part_body = False
        elif line == b"" and not in_part_body:
            in_part_body = True
        elif in_part_body:
            assert len(line) <= 76, line


def test_parts_decode_exactly_text_first_then_html() -> None:
    r = recipient()
    raw = template().render(r)
    check_wire(raw)
    text, html = parts(raw)
    assert canon(text) == expected(TEXT_SEGMENTS, TEXT_SLOTS, dict(r.slot_values_text))
    assert canon(html) == expected(HTML_SEGMENTS, HTML_SLOTS, dict(r.slot_values_html))
    msg = parse(raw)
    assert {k.lower() for k in msg.keys()} == EXPECTED_HEADERS
    assert len(msg.get_all("From")) == 1 and len(msg.get_all("Date")) == 1
    assert msg["Date"].datetime == DATE
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == "<e1.s7.abc@news.example.org>"
    assert msg["To"].addresses[0].addr_spec == "ana@example.com"
    assert msg["To"].addresses[0].display_name == "Ana Müller"
    assert msg["From"].addresses[0].display_name == "The Morning Ledger"
    assert msg["List-Id"] == "Morning Briefing <daily.news.example.org>"
    assert not msg.defects and all(not p.defects for p in msg.iter_parts())


def test_rendering_is_stable_and_per_recipient() -> None:
    t = template()
    assert t.render(recipient()) == t.render(recipient())
    other = t.render(recipient(email="bo@example.com", name=None,
                               message_id="<e1.s8.def@news.example.org>"))
    msg = parse(other)
    assert str(msg["To"]) == "bo@example.com"
    assert msg["Message-ID"] == "<e1.s8.def@news.example.org>"


AWKWARD = [
    "a" * 3000,  # one long line with no spaces
    "trailing spaces   \nand tabs\t\t\n",
    "= signs =3D and =\nsoft-looking breaks=",
    ".leading dot\n.\nFrom the start\n",
    "mixed\r\nline\rends\n",
    "Ελληνικά, 日本語, عربى, emoji 🗞️ and a zero-width\u200bspace",
    "",
]


@pytest.mark.parametrize("piece", AWKWARD)
def test_awkward_content_survives_the_wire(piece: str) -> None:
    segments = (piece, "<b>" + piece + "</b>", piece)
    t = template(html_segments=segments, html_slots=("a", "b"), text_segments=segments,
                 text_slots=("a", "b"))
    values = {"a": piece, "b": "x" + piece}
    raw = t.render(recipient(slot_values_html=values, slot_values_text=values))
    check_wire(raw)
    text, html = parts(raw)
    want = canon(expected(segments, ("a", "b"), values)).replace("\r", "\n")
    assert canon(text) == want
    assert canon(html) == want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=st.lists(st.text(max_size=200), min_size=1, max_size=5),
       values=st.lists(st.text(max_size=120), min_size=4, max_size=4))
def test_any_content_round_trips(segments: list[str], values: list[str]) -> None:
    segs = tuple(segments)
    slots = tuple(f"s{i % 4}" for i in range(len(segs) - 1))
    vals = {f"s{i}": v for i, v in enumerate(values)}
    t = template(html_segments=segs, html_slots=slots, text_segments=segs, text_slots=slots)
    raw = t.render(recipient(slot_values_html=vals, slot_values_text=vals))
    check_wire(raw)
    text, html = parts(raw)
    want = canon(canon(expected(segs, slots, vals)).replace("\r", "\n"))
    # The email parser turns every line ending it meets into the canonical one.
    assert canon(text).replace("\r", "\n") == want
    assert canon(html).replace("\r", "\n") == want


def test_qp_pieces_end_in_a_line_break() -> None:
    assert qp_encode("abc") == b"abc=\r\n"
    assert qp_encode("abc\n") == b"abc\r\n"
    assert qp_encode("x ") == b"x=20=\r\n"
    assert qp_encode("") == b""


def encoded_words(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.partition(b"\r\n\r\n")[0]
    m = re.search(rb"^" + name + rb":(.*?)\r\n(?! )", head, re.MULTILINE | re.DOTALL)
    assert m is not None
    return re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", m.group(1))


def test_non_ascii_subject_is_encoded_once_and_decodes_back() -> None:
    subject = "Élections : résultats en direct — 東京 " * 4
    raw = template(subject=subject).render(recipient())
    words = encoded_words(raw, b"Subject")
    assert words and all(len(w) <= 75 for w in words)
    assert parse(raw)["Subject"] == " ".join(subject.split())
    check_wire(raw)


def test_long_ascii_subject_is_folded_not_encoded() -> None:
    subject = "Markets rally as central banks signal pause " * 5
    raw = template(subject=subject).render(recipient())
    assert encoded_words(raw, b"Subject") == []
    head = raw.partition(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List"))
    assert parse(raw)["Subject"] == " ".join(subject.split())


@pytest.mark.parametrize("subject", [
    "Hi\r\nBcc: evil@example.net",
    "Hi\nBcc: evil@example.net\n\nInjected body",
    "=?utf-8?q?Hi=0D=0ABcc=3A_evil=40example=2Enet?=",
    "Hi\u2028Bcc: evil@example.net\x00\x1b",
])
def test_subject_cannot_inject_headers(subject: str) -> None:
    raw = template(subject=subject).render(recipient())
    msg = parse(raw)
    assert {k.lower() for k in msg.keys()} == EXPECTED_HEADERS
    assert not any(line.lower().startswith(b"bcc") for line in raw.split(b"\r\n"))
    decoded = str(msg["Subject"])
    assert "\n" not in decoded and "\r" not in decoded
    if subject.startswith("=?"):
        # Encoded so a reader shows the literal text rather than decoding our data.
        assert decoded == subject


@pytest.mark.parametrize("name", ["Ana\r\nBcc: evil@example.net", "Ana\nX-Evil: 1",
                                  'Eve "The Boss", CEO', "Zoë ‘Z’ Ünal", "x" * 500])
def test_display_names_are_quoted_or_encoded_never_injected(name: str) -> None:
    raw = template().render(recipient(name=name))
    check_wire(raw)
    msg = parse(raw)
    assert {k.lower() for k in msg.keys()} == EXPECTED_HEADERS
    addr = msg["To"].addresses[0]
    assert addr.addr_spec == "ana@example.com"
    assert " ".join(name.split())[:200].rstrip() == addr.display_name


@pytest.mark.parametrize("field,value", [
    ("email", "ok@example.com\r\nRCPT TO:<evil@example.net>"),
    ("email", "ok@example.com\nBcc: evil@example.net"),
    ("email", "not-an-address"),
    ("email", "a@example.org <bob@example.org>"),
    ("email", "ü..ï@example.org"),  # a UTF-8 local part is fine (SMTPUTF8), a bad one not
    ("message_id", "<a@b>\r\nBcc: x@y"),
    ("message_id", "no-brackets@example.org"),
    ("unsubscribe_url", "https://news.example.org/u/x\r\nBcc: evil@example.net"),
    ("unsubscribe_url", "http://news.example.org/u/x"),
    ("unsubscribe_url", "https://news.example.org/u/x>, <https://evil.example"),
    ("unsubscribe_mailto", "mailto:u@news.example.org\nX: y"),
    # A trailing line feed: "$" in a pattern would let it through.
    ("message_id", "<a@news.example.org>\n"),
    ("unsubscribe_url", "https://news.example.org/u/x\n"),
    ("unsubscribe_mailto", "mailto:u@news.example.org\n"),
    ("email", "ana@example.com\n"),
])
def test_unsafe_recipient_data_is_refused(field: str, value: str) -> None:
    with pytest.raises(HeaderError):
        template().render(recipient(**{field: value}))


def test_idn_domain_goes_out_as_punycode() -> None:
    raw = template().render(recipient(email="ana@bücher.example"))
    assert parse(raw)["To"].addresses[0].domain == "xn--bcher-kva.example"


def test_list_unsubscribe_headers_follow_rfc_8058() -> None:
    long_url = "https://news.example.org/unsubscribe/" + "A1b2C3d4" * 30
    raw = template().render(recipient(unsubscribe_url=long_url))
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head
    unfolded = re.sub(r"\r\n[ \t]", " ", head).split("\r\n")
    url_headers = [h for h in unfolded if h.split(":")[0].lower() in
                   ("list-unsubscribe", "list-unsubscribe-post", "list-id", "message-id")]
    assert len(url_headers) == 4
    assert all("=?" not in h for h in url_headers)
    value = parse(raw)["List-Unsubscribe"]
    uris = re.findall(r"<([^<>\s]+)>", str(value))
    assert uris == [long_url, "mailto:unsubscribe@news.example.org?subject=t"]
    assert re.fullmatch(r"<[^<>\s]+>,\s*<[^<>\s]+>", " ".join(str(value).split()))


def test_non_ascii_list_id_and_from() -> None:
    raw = template(list_id="Nouvelles du matin <matin.news.example.org>",
                   from_header='"Le Quotidien, édition" <matin@news.example.org>',
                   reply_to="Desk <desk@news.example.org>").render(recipient())
    msg = parse(raw)
    assert msg["From"].addresses[0].display_name == "Le Quotidien, édition"
    assert msg["Reply-To"].addresses[0].addr_spec == "desk@news.example.org"
    assert "=?" not in str(raw.split(b"List-Id:")[1].split(b"\r\n")[0])


@pytest.mark.parametrize(("title", "description"), [
    ("L’Essentiel du matin", "L'Essentiel du matin"),  # the apostrophe kept, not dropped
    ("Süddeutsche — Morgenausgabe", "Suddeutsche - Morgenausgabe"),
    ("Новости дня", "Novosti dnya"),  # not an empty description
    ("«Le Monde» du soir", '"<<Le Monde>> du soir"'),  # brackets only inside quotes
])
def test_a_list_id_description_is_transliterated(title: str, description: str) -> None:
    from digest.mail.headers import format_list_id

    line = format_list_id(f"{title} <matin.news.example.org>")
    assert line == f"List-Id: {description} <matin.news.example.org>\r\n".encode("ascii")
    raw = template(list_id=f"{title} <matin.news.example.org>").render(recipient())
    assert parse(raw)["List-Id"].endswith("<matin.news.example.org>")


def test_missing_slot_value_and_bad_shapes_are_refused() -> None:
    with pytest.raises(HeaderError):
        template().render(recipient(slot_values_text={"name": "x"}))
    with pytest.raises(ValueError):
        template(html_slots=("only_one",))
    with pytest.raises(HeaderError):
        template(from_header="Ledger <briefing@news.example.org>\r\nBcc: x@y")
    with pytest.raises(HeaderError):
        template(list_id="no id here")


def test_decode_header_helpers_agree_with_policy_parser() -> None:
    raw = template(subject="Zürich über alles").render(recipient())
    line = raw.split(b"Subject:")[1].split(b"\r\nDate")[0].decode()
    assert str(make_header(decode_header(line))) == "Zürich über alles"


# The per-subscriber shortcuts must write exactly what the general code writes.

@given(st.text(alphabet=st.sampled_from("ab.~ =\t\r\nZé%"), max_size=260)
       | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=260))
@settings(max_examples=400)
def test_qp_shortcut_equals_the_general_encoder(text: str) -> None:
    from digest.mail.template import _qp_encode_general

    assert qp_encode(text) == _qp_encode_general(text)


@given(st.text(alphabet=st.sampled_from("a.. =\né"), max_size=400)
       | st.text(alphabet=st.sampled_from("x."), min_size=70, max_size=240))
@settings(max_examples=400)
def test_qp_pieces_never_start_a_line_with_a_dot(text: str) -> None:
    """Every line of an encoded piece is at most 76 characters and none starts with "."
    (so SMTP transparency has nothing to double), and the piece decodes to the text."""
    import binascii

    encoded = qp_encode(text)
    lines = encoded.split(b"\r\n")
    assert all(len(line) <= 76 and not line.startswith(b".") for line in lines)
    assert binascii.a2b_qp(encoded.replace(b"\r\n", b"\n")).decode() == text


def test_a_css_rule_that_starts_a_line_is_written_2e() -> None:
    assert qp_encode("a {}\n.lead h1 { color: red }\n") == (
        b"a {}\r\n=2Elead h1 { color: red }\r\n")
    assert qp_encode("." * 80) == b"=2E" + b"." * 72 + b"=\r\n=2E.=\r\n=2E....=\r\n"


@given(st.one_of(st.none(), st.text(max_size=90),
                 st.text(alphabet=st.sampled_from("Ab .'\"=?()"), max_size=90)),
       st.sampled_from(["ana@example.com", "a.b+c@news.example.org", "x@bücher.example"]))
@settings(max_examples=300)
def test_to_header_equals_the_general_address_header(name: str | None, address: str) -> None:
    from digest.mail.headers import format_address, header_line, to_header

    assert to_header(name, address) == header_line("To", format_address(name, address))
