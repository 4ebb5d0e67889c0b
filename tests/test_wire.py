"""The bytes of a transaction: digest.deliver.wire against aiosmtplib's own code, and what a
real server on loopback receives from the pool against what aiosmtplib's mail(), rcpt()
and data() send (RFC 5321 sections 4.1.2, 4.5.2)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosmtplib
import pytest
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from digest.deliver.classify import Phase
from digest.deliver.pool import RelayTarget, SMTPConnection, TransactionError
from digest.deliver.wire import data_payload, envelope_address


def aiosmtplib_payload(message: bytes) -> bytes:
    """What SMTPProtocol.execute_data_command writes after the 354 (aiosmtplib 5)."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


PIECES = [b"a", b"Lorem ipsum ", b".", b"..", b"\r\n", b"\n", b"\r", b"=\r\n", b" ", b"=2E",
          b"\xc3\xa9", b"\r\r\n", b"\n\r"]


def random_messages(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60)))
            for _ in range(count)]


FIXED = [
    b"",
    b".",
    b".\r\n",
    b"Subject: x\r\n\r\nbody\r\n",
    b"Subject: x\r\n\r\nno final line ending",
    b"Subject: x\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n",
    b"Subject: x\n\nunix line endings\n.dot\n",
    b"Subject: x\r\rold mac\r",
    b"mixed\r\nline\nendings\r.and dots\n.\r\n",
    b"Subject: x\r\n\r\n" + b"quoted-printable line of text, soft break=\r\n" * 600,
]


@pytest.mark.parametrize("message", FIXED + random_messages(1000, seed=20261130))
def test_data_payload_is_aiosmtplibs(message: bytes) -> None:
    assert data_payload(message) == aiosmtplib_payload(message)


ADDRESSES = [
    "reader@example.org", "first.last+tag@mail.example.co.uk", "o'brien@example.ie",
    "x@localhost", "a!#$%&'*+/=?^_`{|}~-@example.org", "UPPER@EXAMPLE.ORG",
    "\"quoted local\"@example.org", "Name <reader@example.org>", "reader@[127.0.0.1]",
    "dot..dot@example.org", ".lead@example.org", "trail.@example.org", "no-at-sign",
    "reader@example.org ", "rené@exemple.fr", "user@bücher.example",
    "evil@example.org> SIZE=1", "x@example.org\r\nRSET", "<a@b.c> NOTIFY=x", 'a"b@c.d',
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_envelope_address_is_aiosmtplibs(address: str) -> None:
    assert envelope_address(address) == quote_address(address)


@pytest.mark.parametrize("address", ["a b@example.org", "a\tb@example.org", "<a b@example.org>"])
def test_envelope_address_refuses_injection_as_aiosmtplib_does(address: str) -> None:
    with pytest.raises(ValueError):
        quote_address(address)
    with pytest.raises(ValueError):
        envelope_address(address)


# -- on the wire ------------------------------------------------------------------------------

class Capture(asyncio.Protocol):
    """A minimal ESMTP server that keeps every byte a client writes after EHLO."""

    def __init__(self, log: list[bytes], data_reply: bytes) -> None:
        self.log = log
        self.data_reply = data_reply
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(b"220 capture ESMTP\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0 and not self.buffer.startswith(b".\r\n"):
                    return
                cut = 3 if end < 0 else end + 5
                self.log.append(self.buffer[:cut])
                self.buffer = self.buffer[cut:]
                self.in_data = False
                self.transport.write(self.data_reply)  # type: ignore[attr-defined]
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.transport.write(  # type: ignore[attr-defined]
                    b"250-capture\r\n250-SIZE 10000000\r\n250 SMTPUTF8\r\n")
                continue
            self.log.append(line + b"\r\n")
            if verb == b"DATA":
                self.in_data = True
                self.transport.write(b"354 go ahead\r\n")  # type: ignore[attr-defined]
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")  # type: ignore[attr-defined]
                self.transport.close()
            else:
                self.transport.write(b"250 ok\r\n")  # type: ignore[attr-defined]


@asynccontextmanager
async def capture_server(data_reply: bytes = b"250 queued\r\n"
                         ) -> AsyncIterator[tuple[int, list[bytes]]]:
    log: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Capture(log, data_reply), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], log
    finally:
        server.close()
        await server.wait_closed()


WIRE_CASES = [
    ("bounces@news.example.org", "reader@example.org",
     b"From: a@news.example.org\r\nSubject: t\r\n\r\nbody\r\n.leading dot\r\n"),
    ("bounces@news.example.org", "first.last+tag@example.org",
     b"Subject: t\n\nunix\n.dot\nno end"),
    ("bounces@news.example.org", "rené@exemple.fr", b"Subject: t\r\n\r\nutf8 rcpt\r\n"),
    ("bounces@news.example.org", "\"quoted local\"@example.org", b"x\r\n"),
]


@pytest.mark.parametrize(("sender", "rcpt", "message"), WIRE_CASES)
async def test_the_pool_writes_what_aiosmtplib_writes(sender: str, rcpt: str,
                                                      message: bytes) -> None:
    utf8 = not rcpt.isascii()
    options = [f"SIZE={len(message)}"] + (["SMTPUTF8"] if utf8 else [])
    encoding = "utf-8" if utf8 else "ascii"
    async with capture_server() as (port, theirs):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                 local_hostname="localhost", timeout=5)
        await client.connect()
        await client.mail(sender, options=options, encoding=encoding)
        await client.rcpt(rcpt, encoding=encoding)
        await client.data(message)
        await client.quit()
    async with capture_server() as (port, ours):
        conn = SMTPConnection(RelayTarget.local("127.0.0.1", port, timeout=5))
        result = await conn.send(sender, [rcpt], message)
        await conn.quit()
    assert result.response.code == 250 and result.accepted == (rcpt,)
    assert conn.payload_sent
    assert ours == theirs
    assert ours[-2:] == [data_payload(message), b"QUIT\r\n"]


async def test_a_refusal_after_the_payload_is_a_data_error_with_the_payload_sent() -> None:
    async with capture_server(b"554 5.7.1 rejected\r\n") as (port, log):
        conn = SMTPConnection(RelayTarget.local("127.0.0.1", port, timeout=5))
        with pytest.raises(TransactionError) as info:
            await conn.send("bounces@news.example.org", ["reader@example.org"], b"x\r\n")
        await conn.quit()
    err = info.value
    assert err.phase is Phase.DATA and err.payload_sent
    assert isinstance(err.cause, aiosmtplib.SMTPDataError) and err.cause.code == 554
    assert b"x\r\n.\r\n" in log
