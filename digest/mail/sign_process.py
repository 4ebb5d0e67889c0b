"""DKIM's private-key step in a child process, beside the delivery's event loop.

An RSA-2048 signature costs ~0.3 ms of CPU, as much as the rest of a message's delivery.
In a thread it would still take the parent's GIL around every call (the hand-offs cost
more than they save, measured in ``bench/README.md``); a child process signs on another
core and the event loop only writes 37 bytes and reads one signature per message.

The child (``python -m digest.mail.sign_process``) speaks over its stdin and stdout:

* at start: ``u32`` key count, then per key ``u32`` length and the key (PKCS#8 PEM);
* per request: ``u32`` count, then count times ``u8`` key index and a 32-byte SHA-256
  digest;
* per reply: count times ``u16`` length and the signature (RSASSA-PKCS1-v1_5 or Ed25519
  over the digest, :func:`digest.mail.signing.sign_function`, as in-process).

:class:`SigningProcess` is the parent's side; if the child cannot start or dies, it signs
in-process from then on (the same bytes), so a message never fails for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from digest.mail.signing import UnsignedMessage, sign_function

__all__ = ["SigningProcess"]

log = logging.getLogger("digest.mail")

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_ITEM = struct.Struct(">B32s")


class SigningProcess:
    """Signs :class:`~digest.mail.signing.UnsignedMessage` digests in a child process
    (``async with``); satisfies :class:`digest.models.Signer`."""

    #: Seconds a signature may take before the child counts as hung (signing goes
    #: in-process from then on); one takes well under a millisecond.
    REPLY_TIMEOUT = 30.0

    def __init__(self, private_keys: Sequence[object]) -> None:
        self._pems = [key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()) for key in private_keys]
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: deque[tuple[asyncio.Future[list[bytes]], UnsignedMessage]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self.broken: str | None = None  # why signing went in-process, if it did

    async def __aenter__(self) -> SigningProcess:
        try:
            # The child imports this package from where the parent did (a source checkout
            # run as `python run_digest.py` is not on the child's path otherwise).
            here = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (here, os.environ.get("PYTHONPATH", "")) if p)}
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "digest.mail.sign_process", env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert self._proc.stdin is not None
            self._proc.stdin.write(_U32.pack(len(self._pems)) + b"".join(
                _U32.pack(len(pem)) + pem for pem in self._pems))
            self._reader = asyncio.create_task(self._read())
        except OSError as exc:
            self._fail(f"the signing process could not start ({exc})")
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        self._closing = True  # the child's end of its stdin is expected now, not a failure
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def signatures(self, message: UnsignedMessage) -> list[bytes]:
        """The signatures of ``message``'s parts, made by the child (in-process once the
        child is gone)."""
        proc = self._proc
        if self.broken is not None or proc is None or proc.stdin is None \
                or proc.stdin.is_closing() or proc.returncode is not None:
            return message.signatures()
        future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        self._pending.append((future, message))
        parts = message.parts
        try:
            proc.stdin.write(_U32.pack(len(parts)) + b"".join(
                _ITEM.pack(i, digest) for i, (_, digest, _) in enumerate(parts)))
        except (OSError, RuntimeError) as exc:
            self._fail(f"the signing process cannot be written to ({exc})")
        try:
            async with asyncio.timeout(self.REPLY_TIMEOUT):
                return await asyncio.shield(future)
        except TimeoutError:
            self._fail(f"the signing process gave no reply in {self.REPLY_TIMEOUT:.0f} s")
            return await future

    async def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        out = proc.stdout
        try:
            while True:
                (size,) = _U16.unpack(await out.readexactly(2))
                first = await out.readexactly(size)
                future, message = self._pending[0]
                signatures = [first]
                for _ in range(len(message.parts) - 1):
                    (size,) = _U16.unpack(await out.readexactly(2))
                    signatures.append(await out.readexactly(size))
                self._pending.popleft()
                if not future.done():
                    future.set_result(signatures)
        except (asyncio.IncompleteReadError, OSError, IndexError) as exc:
            if self._closing and not self._pending:
                return
            code = proc.returncode
            self._fail(f"the signing process ended ({type(exc).__name__}, exit code {code})")

    def _fail(self, reason: str) -> None:
        """Sign in-process from now on; what was waiting for the child is signed here."""
        if self.broken is None:
            self.broken = reason
            log.warning("DKIM signatures made in-process from now on: %s", reason)
        while self._pending:
            future, message = self._pending.popleft()
            if not future.done():
                try:
                    future.set_result(message.signatures())
                except Exception as exc:  # noqa: BLE001 - the row fails, as a build error
                    future.set_exception(exc)


def _child() -> None:
    # A Ctrl-C or a stop signal is the parent's to handle (it stops cleanly); the child
    # ends when the parent closes its stdin, or dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def read(n: int) -> bytes:
        data = stdin.read(n)
        if len(data) < n:
            raise SystemExit(0)  # the parent closed our stdin: done
        return data

    (count,) = _U32.unpack(read(4))
    signers = []
    for _ in range(count):
        (size,) = _U32.unpack(read(4))
        key = serialization.load_pem_private_key(read(size), password=None)
        signers.append(sign_function(key))
    while True:
        (n,) = _U32.unpack(read(4))
        out = []
        for _ in range(n):
            index, digest = _ITEM.unpack(read(_ITEM.size))
            signature = signers[index](digest)
            out.append(_U16.pack(len(signature)) + signature)
        stdout.write(b"".join(out))
        stdout.flush()


if __name__ == "__main__":
    _child()
