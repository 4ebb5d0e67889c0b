"""Persistent SMTP connections over aiosmtplib: connect, send one transaction, recover.

A connection is reused across messages and is never left inside a transaction: after a
refused command it is RSET, and after a disconnect, timeout or failed RSET it is closed and
reconnected on next use. Credentials are only handed to aiosmtplib; no message or exception
text of ours includes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus

from digest.config import RelaySettings
from digest.deliver.classify import Phase
from digest.deliver.ratelimit import RateLimiter
from digest.deliver.wire import data_payload, envelope_address
from digest.errors import ConfigError

__all__ = ["RelayTarget", "SMTPConnection", "SMTPPool", "SendResult", "TransactionError"]

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True, slots=True)
class RelayTarget:
    """Where and how to connect: a configured relay, or the embedded local server."""

    name: str
    host: str
    port: int
    security: str = "none"  # "tls" (implicit), "starttls" (required) or "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    local_hostname: str | None = None
    pool_size: int = 10
    rate_per_second: float | None = None
    max_per_hour: int | None = None
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, relay: RelaySettings, *,
                      tls_context: ssl.SSLContext | None = None) -> RelayTarget:
        """A target for a configured relay; ``tls_context`` overrides the system CAs."""
        return cls(name=relay.name, host=relay.host, port=relay.port, security=relay.security,
                   username=relay.username, password=relay.password, timeout=relay.timeout,
                   local_hostname=relay.local_hostname, pool_size=relay.pool_size,
                   rate_per_second=relay.rate_per_second, max_per_hour=relay.max_per_hour,
                   tls_context=tls_context)

    @classmethod
    def local(cls, host: str, port: int, *, pool_size: int = 10,
              timeout: float = 30.0) -> RelayTarget:
        """The embedded server (plain SMTP on loopback, no credentials)."""
        return cls(name="embedded", host=host, port=port, pool_size=pool_size,
                   timeout=timeout, local_hostname="localhost")

    def check(self) -> None:
        """Refuse settings that would send credentials in clear.

        :raises ConfigError: credentials with ``security = "none"`` to a non-loopback host.
        """
        if self.security not in ("tls", "starttls", "none"):
            raise ConfigError(f"Relay {self.name} has security {self.security!r}; use "
                              "\"tls\", \"starttls\" or \"none\".")
        if self.username and self.security == "none" and self.host not in _LOOPBACK:
            raise ConfigError(f"Relay {self.name} has credentials but security = \"none\", "
                              "which would send them in clear; use \"starttls\" or \"tls\".")

    def client(self) -> aiosmtplib.SMTP:
        """A new, unconnected aiosmtplib client for this target."""
        return aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username or None,
            password=self.password if self.username else None,
            local_hostname=self.local_hostname, timeout=self.timeout,
            use_tls=self.security == "tls",
            # True makes STARTTLS mandatory: a server without it is an error, never a
            # silent plaintext session (aiosmtplib's default None would fall back).
            start_tls=self.security == "starttls",
            validate_certs=True, tls_context=self.tls_context,
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """A transaction that ended with 250 after DATA; ``refused`` holds refused recipients."""

    response: SMTPResponse
    accepted: tuple[str, ...]
    refused: dict[str, SMTPResponse]


class TransactionError(Exception):
    """A transaction that delivered nothing: ``phase`` says where, ``__cause__`` what.

    ``refused`` carries each recipient's reply when every recipient was refused.
    ``payload_sent`` says whether the message and its final dot had been handed to the
    connection (only then can the server hold the message: RFC 1047).
    """

    def __init__(self, phase: Phase, cause: BaseException,
                 refused: dict[str, SMTPResponse] | None = None, *,
                 payload_sent: bool = False) -> None:
        super().__init__(f"SMTP {phase} failed: {type(cause).__name__}")
        self.phase = phase
        self.cause = cause
        self.refused = refused or {}
        self.payload_sent = payload_sent


class DataRefused(Exception):
    """The caller's ``before_data`` check said no after RCPT: the transaction was reset
    (RSET) and nothing was sent (a claim whose lease ran out meanwhile, see worker.py)."""


class SMTPConnection:
    """One persistent client; not shared by concurrent tasks."""

    def __init__(self, target: RelayTarget) -> None:
        self.target = target
        self._smtp: aiosmtplib.SMTP | None = None
        self.transactions = 0  # on the current TCP connection
        self.phase = Phase.CONNECT  # how far the current transaction got
        self.payload_sent = False  # the message and its final dot were written (DATA)

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def connect(self) -> None:
        """Connect (TLS and AUTH included) unless already connected.

        :raises TransactionError: with phase ``connect``.
        """
        self.phase = Phase.CONNECT
        if self.connected:
            return
        self.abort()
        smtp = self.target.client()
        try:
            await smtp.connect()
            await smtp.ehlo()  # refresh extensions (SIZE) after STARTTLS/AUTH
        except (Exception, asyncio.CancelledError) as exc:
            smtp.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise TransactionError(Phase.CONNECT, exc) from None
        self._smtp = smtp
        self.transactions = 0

    async def _data(self, smtp: aiosmtplib.SMTP, message: bytes) -> SMTPResponse:
        """DATA as ``aiosmtplib.SMTP.data`` runs it: the command, its 354, then the payload
        (:func:`~digest.deliver.wire.data_payload`) and its reply. ``payload_sent`` is set
        once the payload is handed to the transport: only then can the server hold the
        message (a connection already closed raises instead).

        :raises aiosmtplib.SMTPDataError: a reply other than 354, then 250.
        :raises aiosmtplib.SMTPServerDisconnected: the connection was lost.
        :raises aiosmtplib.SMTPReadTimeoutError: no reply within the relay's timeout.
        """
        payload = data_payload(message)
        start = await smtp.execute_command(b"DATA")
        if start.code != SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(payload)
        self.payload_sent = True
        # read_response marks its reply as expected before it first yields, so the reply
        # cannot arrive unexpected (aiosmtplib's own data() writes and reads the same way).
        reply = await protocol.read_response(timeout=smtp.timeout)
        if reply.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply

    def abort(self) -> None:
        """Drop the TCP connection without QUIT (after errors and timeouts)."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def quit(self) -> None:
        """Say QUIT politely and close."""
        if self._smtp is not None and self._smtp.is_connected:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._smtp.quit()
        self.abort()

    async def _reset(self) -> None:
        smtp = self._smtp
        if smtp is None or not smtp.is_connected:
            self.abort()
            return
        try:
            await smtp.rset()
        except Exception:
            self.abort()

    async def send(self, sender: str, recipients: Sequence[str], data: bytes, *,
                   before_data: Callable[[], Awaitable[bool]] | None = None) -> SendResult:
        """One MAIL/RCPT…/DATA transaction on this connection (connecting first if needed).

        Recipients are read one by one: refused ones are returned in ``refused`` as long as
        one was accepted. A reused connection that the server dropped or closed with 421
        before MAIL was answered is replaced once, transparently (nothing was sent yet).
        Cancellation (a caller's deadline) drops the connection. ``before_data`` is awaited
        once the recipients are accepted, right before DATA (it may wait: the worker holds
        DATA back while too many results wait for their commit); False resets the
        transaction.

        :raises TransactionError: when nothing was delivered.
        :raises DataRefused: ``before_data`` returned False (nothing was sent).
        """
        reused = self.connected and self.transactions > 0
        try:
            return await self._send_once(sender, recipients, data, before_data)
        except TransactionError as err:
            cause = err.cause
            stale = isinstance(cause, ConnectionError) or (
                isinstance(cause, aiosmtplib.SMTPResponseException) and cause.code == 421)
            if not (reused and err.phase is Phase.MAIL and stale):
                raise
        self.abort()
        return await self._send_once(sender, recipients, data, before_data)

    async def _send_once(self, sender: str, recipients: Sequence[str], data: bytes,
                         before_data: Callable[[], Awaitable[bool]] | None = None) -> SendResult:
        await self.connect()
        smtp = self._smtp
        assert smtp is not None
        phase = self.phase = Phase.MAIL
        self.payload_sent = False
        # RFC 6531: a non-ASCII address travels only with SMTPUTF8; a relay that does not
        # offer it gets nothing (no MAIL is sent), and the row fails with this reason.
        utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
        if utf8 and not smtp.supports_extension("smtputf8"):
            raise TransactionError(Phase.MAIL, aiosmtplib.SMTPNotSupported(
                "SMTPUTF8 (needed for a non-ASCII address)"))
        encoding = "utf-8" if utf8 else "ascii"
        try:
            # MAIL, RCPT and DATA as aiosmtplib's mail(), rcpt() and data() send them, the
            # paths and the payload made by digest.deliver.wire (the same bytes, without
            # re-scanning a message that is CRLF throughout with regular expressions).
            options = [f"SIZE={len(data)}".encode()] if smtp.supports_extension("size") else []
            if utf8:
                options.append(b"SMTPUTF8")
            reply = await smtp.execute_command(
                b"MAIL", b"FROM:" + envelope_address(sender).encode(encoding), *options)
            if reply.code != SMTPStatus.completed:
                raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
            phase = self.phase = Phase.RCPT
            refused: dict[str, SMTPResponse] = {}
            accepted: list[str] = []
            for rcpt in recipients:
                reply = await smtp.execute_command(
                    b"RCPT", b"TO:" + envelope_address(rcpt).encode(encoding))
                if reply.code in (SMTPStatus.completed, SMTPStatus.will_forward):
                    accepted.append(rcpt)
                    continue
                refused[rcpt] = reply
                if not smtp.is_connected:
                    raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, rcpt)
            if not accepted:
                await self._reset()
                raise TransactionError(Phase.RCPT, aiosmtplib.SMTPRecipientsRefused(
                    [aiosmtplib.SMTPRecipientRefused(r.code, r.message, a)
                     for a, r in refused.items()]), refused)
            if before_data is not None and not await before_data():
                await self._reset()
                raise DataRefused("the transaction was abandoned before DATA")
            phase = self.phase = Phase.DATA
            response = await self._data(smtp, data)
        except (TransactionError, DataRefused):
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or not smtp.is_connected:
                self.abort()
            else:
                await self._reset()
            raise TransactionError(phase, exc, payload_sent=self.payload_sent) from None
        except (Exception, asyncio.CancelledError) as exc:
            self.abort()  # disconnects, timeouts, cancellation: never reuse
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise TransactionError(phase, exc, payload_sent=self.payload_sent) from None
        self.transactions += 1
        return SendResult(response, tuple(accepted), refused)


class SMTPPool:
    """Up to ``size`` persistent connections to one relay, with that relay's rate limits."""

    def __init__(self, target: RelayTarget, *, size: int | None = None,
                 limiter: RateLimiter | None = None) -> None:
        target.check()
        self.target = target
        self.size = size or target.pool_size
        self.limiter = limiter or RateLimiter(target.rate_per_second, target.max_per_hour)
        self.connections = tuple(SMTPConnection(target) for _ in range(self.size))
        self._idle: asyncio.LifoQueue[SMTPConnection] = asyncio.LifoQueue()
        for conn in self.connections:
            self._idle.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[SMTPConnection]:
        """Borrow a connection; it goes back to the pool (reconnecting later if it broke)."""
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def send(self, sender: str, recipients: Sequence[str], data: bytes, *,
                   deadline: float | None = None) -> SendResult:
        """Borrow a connection, wait for a rate-limit slot, send one transaction.

        :param deadline: seconds for the whole transaction (connect included); on expiry
            the connection is dropped and :class:`TransactionError` (phase reached,
            ``TimeoutError``) is raised.
        """
        async with self.connection() as conn:
            await self.limiter.acquire()
            return await send_with_deadline(conn, sender, recipients, data, deadline)

    async def close(self) -> None:
        """QUIT every open connection."""
        await asyncio.gather(*(c.quit() for c in self.connections))


async def send_with_deadline(conn: SMTPConnection, sender: str, recipients: Sequence[str],
                             data: bytes, deadline: float | None, *,
                             before_data: Callable[[], Awaitable[bool]] | None = None) -> SendResult:
    """:meth:`SMTPConnection.send` under a per-message deadline (aiosmtplib's own timeout is
    per socket operation, so a slow-drip server would otherwise never time out)."""
    try:
        async with asyncio.timeout(deadline):
            return await conn.send(sender, recipients, data, before_data=before_data)
    except TimeoutError as exc:
        conn.abort()
        raise TransactionError(conn.phase, exc, payload_sent=conn.payload_sent) from None
