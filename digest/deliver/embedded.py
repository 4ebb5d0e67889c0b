"""The embedded SMTP server: aiosmtpd on 127.0.0.1 that stores what it receives in a Maildir.

With no relay configured, ``send`` delivers to this server, so a fresh machine sends a real
edition over real SMTP and the result can be read with any Maildir reader. Also runs alone:
``python -m digest.deliver.embedded var/maildir --port 2525``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mailbox
import threading
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MaildirHandler", "embedded_smtp_server"]


class MaildirHandler:
    """aiosmtpd handler: each accepted message becomes one file in ``maildir/new``, with
    ``Return-Path`` and ``Delivered-To`` prepended as a local delivery agent would."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)
        self.box = mailbox.Maildir(self.maildir, create=True)
        self._lock = threading.Lock()
        self.count = 0

    def _store(self, data: bytes) -> None:
        with self._lock:
            self.box.add(data)
            self.count += 1

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        body = envelope.original_content or b""
        sender = envelope.mail_from or ""
        # Addresses are UTF-8 only in an SMTPUTF8 transaction (RFC 6531/6532).
        charset = "utf-8" if envelope.smtp_utf8 else "ascii"
        trace = f"Return-Path: <{sender}>\r\n".encode(charset, "replace")
        for rcpt in envelope.rcpt_tos:
            trace += f"Delivered-To: {rcpt}\r\n".encode(charset, "replace")
        await asyncio.to_thread(self._store, trace + body)
        return "250 2.0.0 Stored in Maildir"


@contextlib.asynccontextmanager
async def embedded_smtp_server(maildir: Path, *, host: str = "127.0.0.1",
                               port: int = 0) -> AsyncIterator[tuple[str, int]]:
    """Run the Maildir-storing SMTP server on the current event loop.

    :param maildir: created if missing.
    :param port: 0 picks a free port.
    :returns: (as the context value) the ``(host, port)`` it listens on.
    """
    handler = MaildirHandler(maildir)
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory() -> SMTP:
        # SMTPUTF8 offered: with allow_smtputf8, non-ASCII addresses reach the Maildir.
        proto = SMTP(handler, hostname="localhost", data_size_limit=50_000_000,
                     ident="digest embedded SMTP", enable_SMTPUTF8=True)
        sessions.add(proto)
        return proto

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=host, port=port)
    bound = server.sockets[0].getsockname()
    try:
        yield host, int(bound[1])
    finally:
        server.close()
        for proto in list(sessions):  # clients that did not QUIT
            if proto.transport is not None:
                proto.transport.close()
        await server.wait_closed()
        await asyncio.sleep(0)


async def _serve(maildir: Path, host: str, port: int) -> None:
    async with embedded_smtp_server(maildir, host=host, port=port) as (h, p):
        print(f"digest embedded SMTP on {h}:{p}, storing into {maildir}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Run the embedded server in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maildir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.maildir, args.host, args.port))


if __name__ == "__main__":
    main()
