"""A recording SMTP relay in its own process, for the crash-and-fault suite (tests/faults/).

Every message it stores is appended to the log as one line before any reply is sent, so the
log is what recipients end up with even when the relay is killed, drops the connection or
answers late. The log survives a restart (the next process appends to it).

Usage::

    python tests/faults/relay_server.py --log FILE [--port P] [--delay S]
        [--greylist REGEX] [--defer REGEX] [--drop-after-dot REGEX] [--drop-times N]
        [--slow-reply REGEX] [--slow S] [--slow-times N]
        [--crash-before-store REGEX] [--crash-after-store REGEX]

Faults, chosen by a regular expression on the recipient address (``re.search``):

``--greylist``        451 4.7.1 at RCPT for a recipient's first attempt (per process), then
                      accepted (greylisting, RFC 6647 section 2.1).
``--defer``           450 4.2.1 at RCPT on every attempt (a mailbox that stays busy: a 4xx
                      that never ends, until the sender's retry window does).
``--drop-after-dot``  the message is stored, then the connection is closed without a reply
                      to the final dot (RFC 5321 section 6.1's duplicate-delivery case);
                      ``--drop-times`` times per recipient (0: every time).
``--slow-reply``      the message is stored, then the 250 waits ``--slow`` seconds
                      (``--slow-times`` times per recipient, 0: every time).
``--delay``           every stored message's 250 waits this long (a slow, healthy relay);
                      SIGUSR1 sets it to 0 (the relay gets fast).
``--crash-before-store``  the process exits (status 70) once the final dot of a matching
                      message has arrived, before storing it: the client wrote the whole
                      message and never hears back, and nobody has it.
``--crash-after-store``   the process exits once it has stored a matching message, before
                      the 250: the client never hears back, but the reader has it.
                      Each crash happens once per recipient, across restarts (a marker
                      file next to the log remembers it).

Log lines are tab-separated ``EVENT  RECIPIENT  MESSAGE-ID  SESSION  UNIX-TIME  PID``:

``data``      the DATA command arrived (the message is on the wire from now on);
``stored``    the message was stored (it counts as delivered to RECIPIENT);
``replied``   the 250 after the final dot was sent;
``dropped``   the connection was closed after the final dot without a reply;
``greylist``  RCPT answered 451 (``--greylist``) or 450 (``--defer``);
``crash``     the process exits now (RECIPIENT's message stored or not, as above).

Once listening it prints ``ready PORT`` on stdout. SIGTERM stops it; the tests restart it
with SIGKILL and a new process on the same port.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import signal
import sys
import time
import warnings
from collections import Counter
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

_headers = BytesHeaderParser()
_sessions = itertools.count(1)


class Log:
    """One ``os.write`` per line on an O_APPEND descriptor: whole lines, kept by the kernel
    when this process is killed right after."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: str, rcpt: str = "", message_id: str = "", session: str = "") -> None:
        line = f"{event}\t{rcpt}\t{message_id}\t{session}\t{time.time():.6f}\t{os.getpid()}\n"
        os.write(self.fd, line.encode("utf-8", "backslashreplace"))


class Handler:
    """aiosmtpd handler: records each message, injects the faults chosen by address."""

    def __init__(self, args: argparse.Namespace, log: Log) -> None:
        self.args = args
        self.log = log
        self.greylist = re.compile(args.greylist) if args.greylist else None
        self.defer = re.compile(args.defer) if args.defer else None
        self.drop = re.compile(args.drop_after_dot) if args.drop_after_dot else None
        self.slow = re.compile(args.slow_reply) if args.slow_reply else None
        self.crash_before = re.compile(args.crash_before_store) \
            if args.crash_before_store else None
        self.crash_after = re.compile(args.crash_after_store) if args.crash_after_store \
            else None
        self.seen: Counter[tuple[str, str]] = Counter()

    def _times(self, kind: str, rcpt: str, limit: int) -> bool:
        """Whether the fault ``kind`` applies to this attempt (``limit`` 0: always)."""
        self.seen[(kind, rcpt)] += 1
        return limit == 0 or self.seen[(kind, rcpt)] <= limit

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.greylist and self.greylist.search(address) and self._times("grey", address, 1):
            self.log.write("greylist", address, "", _session(session))
            return "451 4.7.1 Greylisted, please try again later"
        if self.defer and self.defer.search(address):
            self.log.write("greylist", address, "", _session(session))
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        message_id = str(_headers.parsebytes(data).get("Message-ID", "")).strip()
        sid = _session(session)
        first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        self._crash(self.crash_before, "before", first, message_id, sid)
        for rcpt in envelope.rcpt_tos:
            self.log.write("stored", rcpt, message_id, sid)
        self._crash(self.crash_after, "after", first, message_id, sid)
        if self.drop and self.drop.search(first) and \
                self._times("drop", first, self.args.drop_times):
            self.log.write("dropped", first, message_id, sid)
            server.transport.close()
            return "250 unseen"  # never reaches the client: the transport is closed
        wait = self.args.delay
        if self.slow and self.slow.search(first) and \
                self._times("slow", first, self.args.slow_times):
            wait = self.args.slow
        if wait:
            await asyncio.sleep(wait)
        self.log.write("replied", first, message_id, sid)
        return "250 2.0.0 Ok: queued"


    def _crash(self, pattern: re.Pattern[str] | None, when: str, rcpt: str, message_id: str,
               sid: str) -> None:
        """Exit the process at once if ``pattern`` matches ``rcpt`` for the first time."""
        if pattern is None or not pattern.search(rcpt):
            return
        marker = f"{self.args.log}.crashed-{when}-{rcpt}"
        if os.path.exists(marker):
            return
        with open(marker, "w"):  # remembered before the exit
            pass
        self.log.write("crash", rcpt, message_id, sid)
        os._exit(70)


def _session(session: Session) -> str:
    sid = getattr(session, "fault_id", None)
    if sid is None:
        sid = session.fault_id = f"{os.getpid()}.{next(_sessions)}"  # type: ignore[attr-defined]
    return sid


class LoggingSMTP(SMTP):
    """aiosmtpd's SMTP that logs the DATA command's arrival."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fault_handler = handler

    async def smtp_DATA(self, arg: str) -> None:
        if self.envelope.rcpt_tos:
            self.fault_handler.log.write("data", self.envelope.rcpt_tos[0], "",
                                         _session(self.session))
        await super().smtp_DATA(arg)


async def serve(args: argparse.Namespace) -> None:
    log = Log(args.log)
    handler = Handler(args, log)

    def factory() -> SMTP:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LoggingSMTP(handler, hostname="localhost", timeout=60,
                               data_size_limit=10_000_000)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host="127.0.0.1", port=args.port,
                                      reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(args, "delay", 0.0))
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--greylist")
    parser.add_argument("--defer")
    parser.add_argument("--drop-after-dot")
    parser.add_argument("--drop-times", type=int, default=0)
    parser.add_argument("--slow-reply")
    parser.add_argument("--slow", type=float, default=3.0)
    parser.add_argument("--slow-times", type=int, default=0)
    parser.add_argument("--crash-before-store")
    parser.add_argument("--crash-after-store")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
