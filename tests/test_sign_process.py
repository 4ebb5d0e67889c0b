"""DKIM's private-key step in a child process (digest.mail.sign_process): the signatures are
the ones made in-process, byte for byte, for RSA and Ed25519 keys together; when the child
dies (SIGKILL) mid-run, what waited for it and what comes after is signed in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from test_mail import recipient, template

from digest.config import DkimKey, DkimSettings
from digest.mail import DkimSigner, UnsignedMessage
from digest.mail.sign_process import SigningProcess

DOMAIN = "news.example.org"


@pytest.fixture(scope="module")
def both() -> DkimSettings:
    return DkimSettings(DOMAIN, (
        DkimKey("rsa-sha256", "s1", rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048)),
        DkimKey("ed25519-sha256", "e1", ed25519.Ed25519PrivateKey.generate())))


def unsigned(settings: DkimSettings, n: int) -> list[UnsignedMessage]:
    made = template(dkim=DkimSigner(settings))
    out = []
    for i in range(n):
        r = recipient(email=f"reader{i}@example.org")
        message = made.render_unsigned(r.email, r.name, r.message_id, r.unsubscribe_url,
                                       r.unsubscribe_mailto, r.slot_values_html,
                                       r.slot_values_text)
        assert isinstance(message, UnsignedMessage)
        out.append(message)
    return out


def verifies(settings: DkimSettings, message: bytes) -> bool:
    records = {f"{k.selector}._domainkey.{DOMAIN}.".encode(): k.dns_record()
               for k in settings.keys}
    return all(dkim.DKIM(message).verify(idx=i, dnsfunc=lambda name, timeout=5: records[name])
               for i in range(len(settings.keys)))


async def test_the_child_signs_as_in_process(both: DkimSettings,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """...and a Ctrl-C reaching the child (same process group) is the parent's to handle;
    a clean end logs nothing."""
    messages = unsigned(both, 40)
    async with SigningProcess([k.private_key for k in both.keys]) as signer:
        got = await asyncio.gather(*(signer.signatures(m) for m in messages[:20]))
        assert signer._proc is not None
        os.kill(signer._proc.pid, signal.SIGINT)
        got += await asyncio.gather(*(signer.signatures(m) for m in messages[20:]))
        assert signer.broken is None
    assert signer._proc.returncode == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for message, signatures in zip(messages, got, strict=True):
        assert signatures == message.signatures()  # PKCS#1 v1.5 and Ed25519: deterministic
        assert verifies(both, message.signed(signatures))


async def test_a_killed_child_leaves_signing_in_process(both: DkimSettings) -> None:
    messages = unsigned(both, 30)
    async with SigningProcess([k.private_key for k in both.keys]) as signer:
        first = await signer.signatures(messages[0])
        assert signer._proc is not None
        os.kill(signer._proc.pid, signal.SIGKILL)
        rest = await asyncio.gather(*(signer.signatures(m) for m in messages[1:]))
        assert signer.broken is not None and "ended" in signer.broken
    for message, signatures in zip(messages, [first, *rest], strict=True):
        assert signatures == message.signatures()
