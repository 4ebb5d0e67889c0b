"""Real SMTP servers on 127.0.0.1 for the delivery tests: recording, fault-injecting, TLS.

Faults are chosen by the address, so one server covers every case:

====================  ========================================================================
sender local part      ``mail451`` 451 at MAIL the first time; ``mail421`` 421 + close the
                       first time; ``mail550`` always 550 at MAIL; ``mail530`` always 530
recipient local part   ``rcpt550``/``rcpt551``/``rcpt553`` 5.1.1 address errors,
                       ``rcpt550p`` 550 5.7.1 (policy), ``rcpt552`` 552 at RCPT,
                       ``rcpt450`` always 450, ``greylist`` 450 once then accepted,
                       ``rcpt421`` 421 + close
first recipient        ``data451``/``data552``/``data554``/``data421`` that reply to the final
                       dot; ``dropbefore`` closes after 354, before the dot arrives (once);
                       ``datadrop`` stores the message then closes without replying (once),
                       ``dropalways`` the same every time;
                       ``dataslow`` stores it and replies after ``slow`` seconds (once);
                       ``slowalways`` the same every time
====================  ========================================================================

``received`` holds what the server accepted or may have accepted (stored before a drop or a
slow reply), which is what a recipient would end up with.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import warnings
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

__all__ = [
    "FaultHandler",
    "Received",
    "RecordingSMTP",
    "ServerInfo",
    "greeting_server",
    "make_tls",
    "smtp_server",
]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


def _local(address: str) -> str:
    return address.split("@", 1)[0].lower()


@dataclass
class FaultHandler:
    """Records accepted messages and injects faults chosen by the addresses."""

    slow: float = 2.0
    received: list[Received] = field(default_factory=list)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    commands: list[str] = field(default_factory=list)
    delay: float = 0.0  # added before every DATA reply (a slow but healthy server)
    hold: float = 0.0  # stores the message, then waits this long before replying 250

    def first(self, kind: str, address: str) -> bool:
        self.seen[(kind, address)] += 1
        return self.seen[(kind, address)] == 1

    def by_rcpt(self) -> Counter[str]:
        """How many copies each recipient got."""
        return Counter(r for msg in self.received for r in msg.rcpt_tos)

    def _record(self, envelope: Envelope) -> None:
        self.received.append(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                      envelope.original_content or b""))

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        lp = _local(address)
        self.commands.append(" ".join(["MAIL", address, *mail_options]))
        if lp == "mail451" and self.first("mail", address):
            return "451 4.3.0 Try again later"
        if lp == "mail421" and self.first("mail", address):
            return "421 4.7.0 Too many messages, closing"
        if lp in ("mail550", "mail530"):
            return f"{lp[4:]} 5.7.1 Sender not allowed" if lp == "mail550" else \
                "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        lp = _local(address)
        self.commands.append(f"RCPT {address}")
        if lp in ("rcpt550", "rcpt551", "rcpt553"):
            return f"{lp[4:]} 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if lp == "rcpt550p":
            return "550 5.7.1 Message refused by policy"
        if lp == "rcpt552":
            return "552 4.5.3 Too many recipients"
        if lp == "rcpt450" or (lp == "greylist" and self.first("rcpt", address)):
            return "450 4.2.0 Greylisted, try again later"
        if lp == "rcpt421":
            await server.push("421 4.4.2 Closing connection")
            server.transport.close()
            return "421 4.4.2 Closing"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        lp = _local(envelope.rcpt_tos[0])
        self.commands.append("DATA")
        if lp.startswith("data") and lp[4:7].isdigit():
            return f"{lp[4:7]} {lp[4]}.6.0 Refused at end of data"
        if lp == "dropalways" or (lp == "datadrop" and self.first("data", lp)):
            self._record(envelope)
            server.transport.close()
            return "250 unseen"
        if lp == "slowalways" or (lp == "dataslow" and self.first("data", lp)):
            self._record(envelope)
            await asyncio.sleep(self.slow)
            return "250 2.0.0 Late"
        if self.delay:
            await asyncio.sleep(self.delay)
        self._record(envelope)
        if self.hold:
            await asyncio.sleep(self.hold)
        return f"250 2.0.0 Ok: queued as {len(self.received)}"


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP with every reply recorded and the ``dropbefore`` fault."""

    def __init__(self, handler: Any, replies: list[str], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._replies = replies

    async def push(self, status: str) -> None:
        self._replies.append(status)
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        rcpts = self.envelope.rcpt_tos
        handler = self.event_handler
        if rcpts and _local(rcpts[0]) == "dropbefore" and handler.first("drop", rcpts[0]):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self.transport.close()
            return
        watch = getattr(handler, "data_command", None)  # a handler that times DATA phases
        if watch is not None and rcpts:
            watch(tuple(rcpts))
        await super().smtp_DATA(arg)


@dataclass
class ServerInfo:
    host: str
    port: int
    handler: FaultHandler
    replies: list[str]
    auth_attempts: list[str]
    connections: int = 0

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port


@contextlib.asynccontextmanager
async def smtp_server(handler: FaultHandler | None = None, *, password: str | None = None,
                      tls: ssl.SSLContext | None = None, require_starttls: bool = False,
                      implicit_tls: ssl.SSLContext | None = None,
                      data_size_limit: int = 10_000_000, refuse_first: int = 0,
                      smtputf8: bool = False) -> AsyncIterator[ServerInfo]:
    """An aiosmtpd server on 127.0.0.1 (free port) in the running loop.

    :param password: require AUTH; only ``user``/``password`` succeeds.
    :param tls: offer STARTTLS with this server context.
    :param implicit_tls: serve TLS from the first byte (port 465 style).
    :param refuse_first: the first N connections get a 421 greeting and are closed.
    :param smtputf8: advertise SMTPUTF8 (RFC 6531) and accept non-ASCII addresses.
    """
    handler = handler or FaultHandler()
    info = ServerInfo("127.0.0.1", 0, handler, [], [])
    live: weakref.WeakSet[asyncio.BaseProtocol] = weakref.WeakSet()

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        login = getattr(auth_data, "login", b"") or b""
        secret = getattr(auth_data, "password", b"") or b""
        info.auth_attempts.append(mechanism)
        ok = login == b"user" and password is not None and secret == password.encode()
        return AuthResult(success=ok, handled=False)

    def factory() -> asyncio.BaseProtocol:
        info.connections += 1
        if info.connections <= refuse_first:
            proto: asyncio.BaseProtocol = _Greeting("421 4.3.2 Service not available, try "
                                                    "later")
        else:
            kwargs: dict[str, Any] = {"hostname": "localhost", "data_size_limit": data_size_limit,
                                          "timeout": 30, "enable_SMTPUTF8": smtputf8}
            if password is not None:
                kwargs.update(authenticator=authenticator, auth_require_tls=tls is not None,
                              auth_required=True)
            if tls is not None:
                kwargs.update(tls_context=tls, require_starttls=require_starttls)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                proto = RecordingSMTP(handler, info.replies, **kwargs)
        live.add(proto)
        return proto

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host="127.0.0.1", port=0, ssl=implicit_tls)
    info.port = server.sockets[0].getsockname()[1]
    try:
        yield info
    finally:
        server.close()
        for proto in list(live):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.close()
        await server.wait_closed()
        await asyncio.sleep(0)


class _Greeting(asyncio.Protocol):
    """Sends one greeting line, then closes (421/554 banners, garbage)."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.line.encode() + b"\r\n")  # type: ignore[attr-defined]
        transport.close()


@contextlib.asynccontextmanager
async def greeting_server(line: str | None) -> AsyncIterator[tuple[str, int]]:
    """A raw server that only sends ``line`` (or nothing at all: a tarpit) and closes."""
    holders: list[asyncio.Transport] = []

    class Tarpit(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            holders.append(transport)  # type: ignore[arg-type]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        (lambda: _Greeting(line)) if line is not None else Tarpit, host="127.0.0.1", port=0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for t in holders:
            t.close()
        await server.wait_closed()


def make_tls(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a ``localhost``/127.0.0.1 certificate: (server ctx, client ctx)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "digest test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path, ca_path = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(ca_path))
    return server, client
