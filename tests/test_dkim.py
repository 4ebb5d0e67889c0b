"""DKIM: every signature we make is checked by dkimpy, the reference (``dkim.verify`` with a
DNS function returning the test key's TXT record), and is dkimpy's own ``dkim.sign`` output
byte for byte at the same second; the incremental body hash equals dkimpy's over varied slot
values; over-signing makes a forged extra header fail; Ed25519 (RFC 8463) beside RSA."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import CanonicalizationPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mail import check_wire, recipient, template

from digest.config import DkimKey, DkimSettings, load_settings
from digest.errors import ConfigError
from digest.mail import MessageTemplate, Recipient
from digest.mail.signing import (
    OVERSIGNED_HEADERS,
    SIGNED_HEADERS,
    BodyHashTemplate,
    DkimSigner,
    _BodyCanon,
    _header_fields,
    signed_header_names,
)

DOMAIN = "news.example.org"
NOW = 1_790_000_000  # a fixed t= for byte-for-byte comparisons


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def pem_of(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def seed_of(key: ed25519.Ed25519PrivateKey) -> bytes:
    """dkimpy's Ed25519 private key form (``dknewkey --ktype ed25519``): the base64 seed."""
    return base64.b64encode(key.private_bytes(serialization.Encoding.Raw,
                                              serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption()))


@pytest.fixture(scope="module")
def both(rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey) -> DkimSettings:
    return DkimSettings(DOMAIN, (DkimKey("rsa-sha256", "s1", rsa_key),
                                 DkimKey("ed25519-sha256", "e1", ed_key)))


def dns_for(settings_: DkimSettings) -> Callable[..., bytes]:
    records = {f"{k.selector}._domainkey.{settings_.domain}.".encode(): k.dns_record()
               for k in settings_.keys}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records[name]

    return dns


def verify_all(message: bytes, settings_: DkimSettings) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature, top to bottom (as ``dkim.verify`` gives it
    for the first: an exception is a failure)."""
    dns = dns_for(settings_)
    count = len(re.findall(rb"^DKIM-Signature:", message, re.MULTILINE | re.IGNORECASE))

    def one(i: int) -> bool:
        try:
            return bool(dkim.DKIM(message).verify(idx=i, dnsfunc=dns))
        except dkim.DKIMException:
            return False

    verdicts = [one(i) for i in range(count)]
    assert verdicts[:1] == [dkim.verify(message, dnsfunc=dns)][:count]
    return verdicts


def strip_signatures(message: bytes) -> bytes:
    while message.startswith(b"DKIM-Signature:"):
        message = message[message.index(b"\r\n", message.index(b"b=")) + 2:]
        while message.startswith((b" ", b"\t")):
            message = message[message.index(b"\r\n") + 2:]
    return message


def dkimpy_sign(message: bytes, key: DkimKey, canon: tuple[bytes, bytes],
                monkeypatch: pytest.MonkeyPatch) -> bytes:
    """dkimpy's own signature (its pure-Python RSA, nacl's Ed25519) at t=NOW."""
    headers, _ = dkim.rfc822_parse(message)
    private = (pem_of(key.private_key) if key.algorithm == "rsa-sha256"
               else seed_of(key.private_key))  # type: ignore[arg-type]
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: NOW)
        return dkim.sign(message, key.selector.encode(), DOMAIN.encode(), private,
                         signature_algorithm=key.algorithm.encode(), canonicalize=canon,
                         include_headers=list(signed_header_names([n for n, _ in headers])))


# --------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "relaxed/simple", "simple/relaxed",
                                   "simple/simple"])
@pytest.mark.parametrize("encoding", ["quoted-printable", "base64"])
def test_signatures_are_dkimpys_byte_for_byte_and_verify(
        both: DkimSettings, canon: str, encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    header_c, body_c = canon.split("/")
    signing = replace(both, header_canonicalization=header_c, body_canonicalization=body_c)
    shape = {"reply_to": "Desk <desk@news.example.org>", "html_encoding": encoding,
             "text_encoding": encoding}
    plain = template(**shape).render(recipient())
    assert f"Content-Transfer-Encoding: {encoding}".encode() in plain
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: NOW)
        signed = template(**shape, dkim=DkimSigner(signing)).render(recipient())
    expected = b"".join(dkimpy_sign(plain, key, (header_c.encode(), body_c.encode()),
                                    monkeypatch) for key in signing.keys)
    assert signed == expected + plain
    assert DkimSigner(signing).sign(plain, timestamp=NOW) == signed  # the general path too
    assert verify_all(signed, signing) == [True, True]
    check_wire(strip_signatures(signed))
    tags = dkim.util.parse_tag_value(b"".join(signed.split(b"\r\n ")).split(b"\r\n")[0][15:])
    assert (tags[b"a"], tags[b"s"], tags[b"c"], tags[b"d"]) == (
        b"rsa-sha256", b"s1", canon.encode(), DOMAIN.encode())


def test_one_rsa_key_gives_one_signature_that_covers_the_unsubscribe_headers(
        rsa_key: rsa.RSAPrivateKey) -> None:
    signing = DkimSettings(DOMAIN, (DkimKey("rsa-sha256", "s1", rsa_key),))
    plain = template().render(recipient())
    signed = template(dkim=DkimSigner(signing)).render(recipient())
    assert strip_signatures(signed) == plain, "the signed bytes are exactly the bytes sent"
    assert signed.count(b"DKIM-Signature:") == 1
    assert verify_all(signed, signing) == [True]
    h = dkim.DKIM(signed)
    h.verify(dnsfunc=dns_for(signing))
    listed = [x.decode() for x in h.include_headers]
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
                 "list-unsubscribe-post", "mime-version", "content-type"):
        assert name in listed
    tampered = signed.replace(b"<https://news.example.org/u/tok-123>",
                              b"<https://evil.example.net/u/tok-123>")
    assert tampered != signed and verify_all(tampered, signing) == [False]
    body_tampered = signed.replace(b"Good morning", b"Good evening")
    assert verify_all(body_tampered, signing) == [False]


def test_ed25519_alone_verifies_with_a_k_ed25519_record(ed_key: ed25519.Ed25519PrivateKey,
                                                        ) -> None:
    signing = DkimSettings(DOMAIN, (DkimKey("ed25519-sha256", "e1", ed_key),))
    assert signing.keys[0].dns_record().startswith(b"v=DKIM1; k=ed25519; p=")
    signed = template(dkim=DkimSigner(signing)).render(recipient())
    assert b"a=ed25519-sha256;" in signed
    assert verify_all(signed, signing) == [True]
    assert verify_all(signed.replace(b"Ana &amp; co", b"Ana &amp; Co"), signing) == [False]


# --------------------------------------------------------------------------- over-signing


@pytest.mark.parametrize("forged", [
    b"List-Unsubscribe: <https://evil.example.net/u>\r\n",
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
    b"List-Id: Evil <evil.example.net>\r\n",
    b"From: Evil <ceo@news.example.org>\r\n",
    b"To: someone@example.net\r\n",
    b"Subject: Reset your password\r\n",
    b"Date: Tue, 03 Mar 2026 07:00:00 +0000\r\n",
    b"Reply-To: thief@evil.example.net\r\n",
])
def test_a_prepended_second_header_fails_verification(both: DkimSettings, forged: bytes,
                                                      ) -> None:
    """RFC 6376 §8.15: each over-signed header is listed once more in h= than it occurs, so
    a second instance added on top takes that extra entry and breaks both signatures."""
    signed = template(dkim=DkimSigner(both)).render(recipient())
    assert verify_all(signed, both) == [True, True]
    forged_copy = forged + signed
    assert verify_all(forged_copy, both) == [False, False]
    # Not just any extra line breaks the signature: an unsigned header does not.
    assert verify_all(b"X-Forwarded-By: relay.example.net\r\n" + signed, both) == [True, True]


def test_without_over_signing_the_forged_list_unsubscribe_verifies(
        rsa_key: rsa.RSAPrivateKey) -> None:
    """The attack the issue reports, with the previous h= (each header listed once): the
    test above would pass vacuously if dkimpy did not let this through."""
    signing = DkimSettings(DOMAIN, (DkimKey("rsa-sha256", "s1", rsa_key),))
    plain = template().render(recipient())
    old = dkim.sign(plain, b"s1", DOMAIN.encode(), pem_of(rsa_key),
                    canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS))
    forged = b"List-Unsubscribe: <https://evil.example.net/u>\r\n" + old + plain
    assert verify_all(forged, signing) == [True]


def test_h_lists_each_over_signed_header_once_more_than_it_occurs() -> None:
    names = [b"From", b"Subject", b"Date", b"MIME-Version", b"List-Id", b"To", b"Message-ID",
             b"List-Unsubscribe", b"List-Unsubscribe-Post", b"Received", b"Received",
             b"Content-Type"]
    listed = signed_header_names(names)
    lower = [n.lower() for n in names]
    for name in SIGNED_HEADERS:
        extra = 1 if name in OVERSIGNED_HEADERS or name not in lower else 0
        assert listed.count(name) == lower.count(name) + extra, name
    assert b"received" not in listed
    assert signed_header_names([b"To", b"to", b"From"]).count(b"to") == 3
    assert set(OVERSIGNED_HEADERS) >= {b"from", b"to", b"subject", b"date", b"list-unsubscribe",
                                       b"list-unsubscribe-post", b"list-id"}


@given(st.lists(st.sampled_from([b"From", b"to", b"TO", b"Subject", b"X-A", b"List-Id",
                                 b"list-unsubscribe", b"Date", b"Reply-To"]), max_size=14))
def test_header_instance_choice_is_dkimpys_select_headers(names: list[bytes]) -> None:
    from digest.mail.signing import _signing_plan

    headers = [[n, f" value {i}\r\n".encode()] for i, n in enumerate(names)]
    include, picks = _signing_plan(tuple(names))
    assert [headers[i] for i in picks] == dkim.select_headers(headers, include)


# --------------------------------------------------------------------------- the body hash

# Slot values as a template meets them: names in any script, long lines, trailing and inner
# whitespace, every line-break shape, empty lines, "=" and "." at line starts.
awkward_text = st.text(
    alphabet=st.sampled_from(list("ab Z.=\t\r\n-–é李😀")) | st.characters(
        min_codepoint=0x20, max_codepoint=0x2FF), max_size=120)
slot_text = st.one_of(awkward_text, st.sampled_from([
    "", " ", "\r\n", "\n\n\n", "trailing   ", "  leading", "x" * 300, "Zoë Ångström",
    "李小龙", "https://news.example.org/u/" + "A" * 90, ".", "\r", "a \r\n\r\n \r\n"]))


encodings = st.sampled_from(["quoted-printable", "base64"])


@given(st.lists(st.tuples(slot_text, slot_text), min_size=1, max_size=4), slot_text,
       st.one_of(st.none(), awkward_text), encodings, encodings)
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_property_template_messages_verify_in_dkimpy(
        both: DkimSettings, values: list[tuple[str, str]], tail: str, name: str | None,
        text_encoding: str, html_encoding: str) -> None:
    """Segments and slot values of every awkward shape, each part in either transfer
    encoding: the message we sign verifies in dkimpy with both keys, and the incremental
    body hash is dkimpy's."""
    n = len(values)
    slots = tuple(f"s{i}" for i in range(n))
    text_segments = ("Hello ", *(v[0] for v in values[1:]), tail + "\n")
    html_segments = ("<p>", *(v[1] for v in values[1:]), "</p>" + tail)
    built = MessageTemplate.build(
        html_segments=html_segments, html_slots=slots, text_segments=text_segments,
        text_slots=slots, subject="Digest", from_header="Ledger <briefing@news.example.org>",
        list_id=f"Daily <daily.{DOMAIN}>", dkim=DkimSigner(both),
        text_encoding=text_encoding, html_encoding=html_encoding)
    r = Recipient(email="ana@example.com", name=name, message_id="<m.1@news.example.org>",
                  unsubscribe_url="https://news.example.org/u/t",
                  unsubscribe_mailto="mailto:u@news.example.org",
                  slot_values_html={s: v[1] for s, v in zip(slots, values, strict=True)},
                  slot_values_text={s: v[0] + tail for s, v in zip(slots, values, strict=True)})
    signed = built.render(r)
    assert verify_all(signed, both) == [True, True]
    plain = strip_signatures(signed)
    assert plain == replace(built, dkim=None).render(r)
    _, body = dkim.rfc822_parse(plain)
    expected = base64.b64encode(hashlib.sha256(
        CanonicalizationPolicy.from_c_value(b"relaxed/relaxed").canonicalize_body(body)).digest())
    assert re.search(rb"bh=" + re.escape(expected), signed)


raw_bytes = st.binary(max_size=40) | st.lists(
    st.sampled_from([b" ", b"\t", b"\r", b"\n", b"\r\n", b"a", b"=", b"x y", b"\r\n\r\n",
                     b"QUJD", b" \r\n"]), max_size=12).map(b"".join)


@given(st.lists(raw_bytes, min_size=1, max_size=6),
       st.lists(raw_bytes | raw_bytes.map(lambda b: b * 60), max_size=6),
       st.sampled_from(["relaxed", "simple"]))
@settings(max_examples=400, deadline=None)
def test_property_incremental_body_hash_equals_dkimpys(
        pieces: list[bytes], values: list[bytes], canon: str) -> None:
    """Any bytes (whatever the transfer encoding made of them; bare CR and LF too), cut
    anywhere, values short or large (a large one is remembered and, the second time, fed
    from memory): the body hash made from precomputed pieces is dkimpy's hash of the whole."""
    values = (values + [b""] * len(pieces))[:len(pieces) - 1]
    body = pieces[0] + b"".join(v + p for v, p in zip(values, pieces[1:], strict=True))
    _, parsed = dkim.rfc822_parse(b"From: a@b.example\r\n\r\n" + body)
    policy = CanonicalizationPolicy.from_c_value(f"relaxed/{canon}".encode())
    expected = hashlib.sha256(policy.canonicalize_body(parsed)).digest()
    made = BodyHashTemplate(_BodyCanon(canon), pieces)
    assert made.slots == len(values)
    assert made.digest(values) == expected
    assert made.digest(values) == expected, "digest must not change the template"


def test_body_template_refuses_a_wrong_number_of_values() -> None:
    made = BodyHashTemplate(_BodyCanon("relaxed"), [b"a", b"b"])
    with pytest.raises(ValueError):
        made.digest([])


@given(st.lists(st.tuples(st.sampled_from([b"From", b"To", b"X-A", b"Subject"]),
                          st.binary(max_size=30).filter(lambda v: b"\r" not in v
                                                        and b"\n" not in v),
                          st.lists(st.binary(max_size=10).filter(
                              lambda v: b"\r" not in v and b"\n" not in v), max_size=2)),
                max_size=8))
def test_header_block_reading_is_rfc822_parse(
        fields: list[tuple[bytes, bytes, list[bytes]]]) -> None:
    block = b"".join(name + b":" + value + b"\r\n"
                     + b"".join(b" " + c + b"\r\n" for c in cont) for name, value, cont in fields)
    assert _header_fields(block) == dkim.rfc822_parse(block)[0]


# --------------------------------------------------------------------------- the key, once


def test_keys_are_parsed_once_not_per_message(both: DkimSettings,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = serialization.load_pem_private_key
    monkeypatch.setattr(serialization, "load_pem_private_key",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(dkim, "parse_pem_private_key", lambda *a: calls.append(2))
    signer = DkimSigner(both)
    built = template(dkim=signer)
    for i in range(20):
        built.render(recipient(message_id=f"<m.{i}@news.example.org>"))
    assert calls == []


def test_dkim_key_forms_and_refusals(rsa_key: rsa.RSAPrivateKey,
                                     ed_key: ed25519.Ed25519PrivateKey) -> None:
    traditional = rsa_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
    for text in (pem_of(rsa_key), traditional, traditional.decode()):
        key = DkimKey.load("rsa-sha256", "s1", text)
        assert key.private_key.private_numbers() == rsa_key.private_numbers()  # type: ignore[union-attr]
    for text in (pem_of(ed_key), seed_of(ed_key), seed_of(ed_key).decode() + "\n"):
        key = DkimKey.load("ed25519-sha256", "e1", text)
        assert key.dns_record() == DkimKey("ed25519-sha256", "e1", ed_key).dns_record()
    with pytest.raises(ValueError, match="holds an Ed25519 key, but rsa-sha256"):
        DkimKey.load("rsa-sha256", "s1", pem_of(ed_key))
    with pytest.raises(ValueError, match="holds an RSA key, but ed25519-sha256"):
        DkimKey.load("ed25519-sha256", "s1", pem_of(rsa_key))
    with pytest.raises(ValueError, match="does not hold a PEM private key"):
        DkimKey.load("rsa-sha256", "s1", seed_of(ed_key))
    with pytest.raises(ValueError, match="32 bytes"):
        DkimKey.load("ed25519-sha256", "s1", b"bm90IGEga2V5")
    with pytest.raises(ValueError, match="readable PEM"):
        DkimKey.load("rsa-sha256", "s1", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END")
    encrypted = rsa_key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(ValueError, match="encrypted"):
        DkimKey.load("rsa-sha256", "s1", encrypted)


# --------------------------------------------------------------------------- [dkim] settings

MINIMAL = """
[site]
name = "Gazette"
url = "https://gazette.example"
postal_address = "1 Main St"

[web]
base_url = "https://gazette.example/digest"

[lists.morning]
sources = ["front.txt"]
from = "Gazette <am@gazette.example>"
"""


def config(tmp_path: Path, dkim_text: str, **keys: bytes) -> Path:
    """A minimal configuration with ``dkim_text`` after it and key files written beside."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    for name, data in keys.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "digest.toml"
    path.write_text(MINIMAL + dkim_text, encoding="utf-8")
    return path


def test_two_algorithms_each_with_its_selector_and_key(
        tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey) -> None:
    path = config(tmp_path, """
[dkim]
algorithms = ["ed25519-sha256", "rsa-sha256"]

[dkim.rsa-sha256]
selector = "mail2026"
private_key_file = "rsa.pem"

[dkim.ed25519-sha256]
selector = "mail2026e"
private_key_file = "ed.key"
""", **{"rsa.pem": pem_of(rsa_key), "ed.key": seed_of(ed_key)})
    loaded = load_settings(path, env={}).dkim
    assert loaded is not None
    assert loaded.domain == "gazette.example"  # the site's domain by default
    assert [(k.algorithm, k.selector) for k in loaded.keys] == [
        ("ed25519-sha256", "mail2026e"), ("rsa-sha256", "mail2026")]
    assert (loaded.header_canonicalization, loaded.body_canonicalization) == ("relaxed",
                                                                              "relaxed")
    signed = DkimSigner(loaded).sign(template().render(recipient()))
    assert signed.index(b"a=ed25519-sha256") < signed.index(b"a=rsa-sha256")
    assert verify_all(signed, loaded) == [True, True]

    # The environment wins over the files, one variable per algorithm.
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    other_ed = ed25519.Ed25519PrivateKey.generate()
    env = {"DIGEST_DKIM_PRIVATE_KEY": pem_of(other_rsa).decode(),
           "DIGEST_DKIM_ED25519_PRIVATE_KEY": pem_of(other_ed).decode()}
    from_env = load_settings(path, env=env).dkim
    assert from_env is not None
    assert [k.dns_record() for k in from_env.keys] == [
        DkimKey("ed25519-sha256", "e", other_ed).dns_record(),
        DkimKey("rsa-sha256", "r", other_rsa).dns_record()]


def test_the_short_form_is_the_rsa_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = config(tmp_path, '[dkim]\ndomain = "mail.gazette.example"\nselector = "s1"\n'
                  'private_key_file = "rsa.pem"\ncanonicalization = "relaxed/simple"\n',
                  **{"rsa.pem": pem_of(rsa_key)})
    loaded = load_settings(path, env={}).dkim
    assert loaded is not None
    assert loaded.domain == "mail.gazette.example"
    assert [(k.algorithm, k.selector) for k in loaded.keys] == [("rsa-sha256", "s1")]
    assert loaded.body_canonicalization == "simple"
    with_env = config(tmp_path, '[dkim]\nselector = "s1"\n')
    assert load_settings(with_env, env={"DIGEST_DKIM_PRIVATE_KEY": pem_of(rsa_key).decode()}
                         ).dkim is not None


@pytest.mark.parametrize(("dkim_text", "expected"), [
    ('[dkim]\nalgorithms = ["rsa-sha1"]\n',
     ("dkim.algorithms in .* names 'rsa-sha1', which digest cannot sign with \\(RFC 8301 "
      'forbids signing with SHA-1\\); use "rsa-sha256"')),
    ('[dkim]\nalgorithms = ["ed448-sha256"]\n', "dkim.algorithms .* names 'ed448-sha256'"),
    ('[dkim]\nalgorithms = []\n', "dkim.algorithms .* at least one"),
    ('[dkim]\nalgorithms = ["rsa-sha256", "rsa-sha256"]\n', "each algorithm once"),
    ('[dkim]\nselector = "s1"\nprivate_key_file = "ed.pem"\n',
     ("dkim.private_key_file in .* holds an Ed25519 key, but rsa-sha256 signs with an RSA "
      "key; give it an RSA private key for selector 's1'")),
    (('[dkim]\nalgorithms = ["ed25519-sha256"]\n[dkim.ed25519-sha256]\nselector = "e1"\n'
      'private_key_file = "rsa.pem"\n'),
     ("dkim.ed25519-sha256.private_key_file in .* holds an RSA key, but ed25519-sha256 signs "
      "with an Ed25519 key")),
    ('[dkim]\nselector = "s1"\nprivate_key_file = "short.pem"\n',
     "holds a 768-bit RSA key; DKIM needs at least 1024 bits"),
    ('[dkim]\nselector = "s1"\nprivate_key_file = "nope.pem"\n',
     "dkim.private_key_file in .* points to 'nope.pem', which cannot be read"),
    ('[dkim]\nselector = "s1"\n',
     "dkim.private_key_file .* is missing; set it or DIGEST_DKIM_PRIVATE_KEY"),
    ('[dkim]\nprivate_key_file = "rsa.pem"\n', "dkim.selector .* is missing"),
    ('[dkim]\nselector = "bad selector"\nprivate_key_file = "rsa.pem"\n',
     "dkim.selector .* must be a DNS label"),
    (('[dkim]\n[dkim.ed25519-sha256]\nselector = "e1"\nprivate_key_file = "ed.pem"\n'
      '[dkim.rsa-sha256]\nselector = "s1"\nprivate_key_file = "rsa.pem"\n'),
     "dkim.ed25519-sha256 .* is configured but dkim.algorithms does not list it"),
    (('[dkim]\nselector = "s1"\n[dkim.rsa-sha256]\nselector = "s1"\n'
      'private_key_file = "rsa.pem"\n'),
     "set both in \\[dkim\\] and in \\[dkim.rsa-sha256\\]"),
    (('[dkim]\nalgorithms = ["ed25519-sha256"]\nselector = "s1"\n[dkim.ed25519-sha256]\n'
      'selector = "e1"\nprivate_key_file = "ed.pem"\n'),
     "dkim.selector .* belongs to rsa-sha256"),
    ('[dkim]\ncanonicalization = "relaxed"\nselector = "s1"\nprivate_key_file = "rsa.pem"\n',
     "dkim.canonicalization .* must be one of"),
    ('[dkim]\ndomain = "bücher.example"\nselector = "s1"\nprivate_key_file = "rsa.pem"\n',
     "dkim.domain in .* must be an ASCII domain name"),
    ('[dkim]\nselector = "s1"\nprivate_key_file = "rsa.pem"\nsign_with = "x"\n',
     "dkim.sign_with .* is not a known setting"),
    (('[dkim]\nalgorithms = ["ed25519-sha256"]\n[dkim.ed25519-sha256]\nselector = "e1"\n'
      'private_key_file = "ed.pem"\nkey = "x"\n'),
     "dkim.ed25519-sha256.key .* is not a known"),
])
def test_a_wrong_dkim_setting_is_one_config_error(
        tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey,
        short_rsa_pem: bytes, dkim_text: str, expected: str) -> None:
    path = config(tmp_path, dkim_text, **{"rsa.pem": pem_of(rsa_key), "ed.pem": pem_of(ed_key),
                                          "short.pem": short_rsa_pem})
    with pytest.raises(ConfigError, match=expected) as caught:
        load_settings(path, env={})
    assert "\n" not in str(caught.value)


def test_a_wrong_key_in_the_environment_names_the_variable(
        tmp_path: Path, ed_key: ed25519.Ed25519PrivateKey) -> None:
    path = config(tmp_path, '[dkim]\nselector = "s1"\n')
    with pytest.raises(ConfigError, match="^The environment variable DIGEST_DKIM_PRIVATE_KEY "
                       "holds an Ed25519 key, but rsa-sha256 signs with an RSA key"):
        load_settings(path, env={"DIGEST_DKIM_PRIVATE_KEY": pem_of(ed_key).decode()})


def test_the_command_line_reports_a_wrong_key_type_in_one_line(
        tmp_path: Path, ed_key: ed25519.Ed25519PrivateKey) -> None:
    from click.testing import CliRunner

    from digest.cli import main

    path = config(tmp_path, '[dkim]\nselector = "s1"\nprivate_key_file = "ed.pem"\n',
                  **{"ed.pem": pem_of(ed_key)})
    result = CliRunner().invoke(main, ["send", "--config", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "dkim.private_key_file" in lines[0], result.output


@pytest.fixture(scope="module")
def short_rsa_pem() -> bytes:
    """A 768-bit RSA key, too short for DKIM (cryptography refuses to make one, so it is a
    fixture: a throwaway key made with ``openssl genpkey`` for this test only)."""
    return (Path(__file__).parent / "fixtures" / "dkim" / "rsa-768-test-key.pem").read_bytes()


def test_send_delivers_messages_that_verify_as_received(
        tmp_path: Path, repo: Path, rsa_key: rsa.RSAPrivateKey,
        ed_key: ed25519.Ed25519PrivateKey) -> None:
    """The whole `send` command with both algorithms, through aiosmtplib to the embedded
    server: what arrives in the Maildir verifies in dkimpy, every message, both signatures;
    so do a `--test-to` copy and a web confirmation email (the general signing path)."""
    import mailbox

    from click.testing import CliRunner
    from test_cli import make_project

    from digest import pipeline
    from digest.cli import main
    from digest.web.mailer import confirmation_message

    path = make_project(tmp_path, repo)
    (tmp_path / "rsa.pem").write_bytes(pem_of(rsa_key))
    (tmp_path / "ed.pem").write_bytes(pem_of(ed_key))
    path.write_text(path.read_text(encoding="utf-8") + """
[dkim]
algorithms = ["rsa-sha256", "ed25519-sha256"]
[dkim.rsa-sha256]
selector = "s1"
private_key_file = "rsa.pem"
[dkim.ed25519-sha256]
selector = "e1"
private_key_file = "ed.pem"
""", encoding="utf-8")
    settings_ = load_settings(path)
    assert settings_.dkim is not None
    for args in (["send"], ["send", "--test-to", "desk@example.org"]):
        result = CliRunner().invoke(main, [*args, "--config", str(path)])
        assert result.exit_code == 0, result.output
    box = mailbox.Maildir(settings_.maildir, create=False)
    received = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(received) > 20
    for data in received:
        assert verify_all(data, settings_.dkim) == [True, True], data[:600]
    lst = settings_.get_list("daily")
    _, _, confirm = confirmation_message(settings_, lst, email="zoë@example.org",
                                         confirm_link="https://x.example/c/1")
    assert confirm.startswith(b"DKIM-Signature:")
    assert verify_all(confirm, settings_.dkim) == [True, True]
    assert pipeline.dkim_sign_if_configured(replace(settings_, dkim=None), b"x") == b"x"


@given(st.binary(max_size=12), st.lists(st.sampled_from(
    [b" ", b"\t", b"\r", b"\n", b"\r\n", b"a", b":", b"\x0b", b"  \r\n\t", b"\xc3\xa9"]),
    max_size=14).map(b"".join), st.sampled_from(["relaxed", "simple"]))
def test_header_canonicalization_is_dkimpys(name: bytes, value: bytes, canon: str) -> None:
    signer = DkimSigner(DkimSettings(DOMAIN, (), header_canonicalization=canon))
    ((x, y),) = CanonicalizationPolicy.from_c_value(
        f"{canon}/relaxed".encode()).canonicalize_headers([(name, value)])
    assert signer._canonical_line(name, value) == x + b":" + y


def test_the_sample_dkim_settings_in_digest_toml_load(
        tmp_path: Path, repo: Path, rsa_key: rsa.RSAPrivateKey,
        ed_key: ed25519.Ed25519PrivateKey) -> None:
    """The commented [dkim] example in the sample configuration, uncommented, is valid."""
    lines = (repo / "digest.toml").read_text(encoding="utf-8").splitlines()
    start = lines.index("# [dkim]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    assert "[dkim.ed25519-sha256]" in block
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "mail2026.rsa.pem").write_bytes(pem_of(rsa_key))
    (tmp_path / "keys" / "mail2026.ed25519.pem").write_bytes(pem_of(ed_key))
    loaded = load_settings(config(tmp_path, "\n".join(block) + "\n"), env={}).dkim
    assert loaded is not None
    assert [k.algorithm for k in loaded.keys] == ["rsa-sha256", "ed25519-sha256"]
