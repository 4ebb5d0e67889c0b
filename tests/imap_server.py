"""A small real IMAP4rev1 server on 127.0.0.1 for the bounce tests (threads, plain TCP).

It implements what ``imaplib`` and the bounce source use: CAPABILITY, NOOP, LOGIN,
SELECT/EXAMINE, SEARCH and UID SEARCH (ALL, SEEN/UNSEEN, DELETED/UNDELETED, KEYWORD/
UNKEYWORD, NOT), FETCH and UID FETCH (UID, FLAGS, RFC822, BODY[], BODY.PEEK[]), STORE and
UID STORE (FLAGS, +FLAGS, -FLAGS, .SILENT), CLOSE and LOGOUT, in plain text or implicit
TLS. Messages live in memory.

Use::

    with ImapServer(users={"bounces": "secret"}) as server:
        server.add("INBOX", raw_bytes)
        url = f"imap://bounces@127.0.0.1:{server.port}/INBOX"
"""

from __future__ import annotations

import re
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["ImapServer", "StoredMessage"]

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\((?:[^()]|\([^()]*\))*\))|(\S+)')


@dataclass
class StoredMessage:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)


def _tokens(text: bytes) -> list[str]:
    out = []
    for quoted, paren, atom in _TOKEN.findall(text):
        if quoted or (not paren and not atom):
            out.append(re.sub(rb"\\(.)", rb"\1", quoted).decode("utf-8", "replace"))
        else:
            out.append((paren or atom).decode("utf-8", "replace"))
    return out


def _sequence(spec: str, numbers: list[int]) -> set[int]:
    """The members of ``numbers`` an IMAP sequence set such as ``1,3:5,7:*`` names."""
    top = max(numbers, default=0)
    chosen: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        a = top if lo == "*" else int(lo)
        b = a if not hi else (top if hi == "*" else int(hi))
        lo_n, hi_n = min(a, b), max(a, b)
        chosen |= {n for n in numbers if lo_n <= n <= hi_n}
    return chosen


class _Handler(socketserver.StreamRequestHandler):
    server: _TCPServer
    timeout = 10

    def setup(self) -> None:
        context = self.server.owner.ssl_context
        if context is not None:  # implicit TLS, as on port 993
            self.request.settimeout(self.timeout)
            self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.close()  # the server closes only the plain socket it accepted

    def send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.wfile.write(data + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        owner = self.server.owner
        self.user: str | None = None
        self.folder: str | None = None
        self.send(b"* OK [CAPABILITY IMAP4rev1] digest test IMAP server ready")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            line = line.rstrip(b"\r\n")
            tag, _, rest = line.partition(b" ")
            command, _, args = rest.partition(b" ")
            name = command.decode("ascii", "replace").upper()
            owner.log.append((name, self.user))
            if owner.stall_on == name:
                time.sleep(owner.stall_seconds)
                return
            try:
                if not self.dispatch(tag.decode(), name, args):
                    return
            except (ValueError, IndexError, KeyError):
                self.send(f"{tag.decode()} BAD malformed {name}")

    def dispatch(self, tag: str, name: str, args: bytes) -> bool:
        owner = self.server.owner
        if name == "CAPABILITY":
            self.send("* CAPABILITY IMAP4rev1")
            self.send(f"{tag} OK CAPABILITY completed")
        elif name == "NOOP":
            self.send(f"{tag} OK NOOP completed")
        elif name == "LOGOUT":
            self.send("* BYE logging out")
            self.send(f"{tag} OK LOGOUT completed")
            return False
        elif name == "LOGIN":
            user, password = _tokens(args)[:2]
            if owner.users.get(user) == password:
                self.user = user
                self.send(f"{tag} OK LOGIN completed")
            else:
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
        elif self.user is None:
            self.send(f"{tag} NO log in first")
        elif name in ("SELECT", "EXAMINE"):
            self.select(tag, name, _tokens(args)[0])
        elif self.folder is None:
            self.send(f"{tag} BAD select a folder first")
        elif name == "CLOSE":
            self.folder = None
            self.send(f"{tag} OK CLOSE completed")
        elif name == "UID":
            sub, _, rest = args.partition(b" ")
            return self.command(tag, sub.decode().upper(), rest, by_uid=True)
        else:
            return self.command(tag, name, args, by_uid=False)
        return True

    def select(self, tag: str, name: str, folder: str) -> None:
        owner = self.server.owner
        if folder.upper() == "INBOX":
            folder = "INBOX"
        if folder not in owner.folders:
            self.send(f"{tag} NO [NONEXISTENT] no such folder")
            return
        self.folder = folder
        messages = owner.folders[folder]
        permanent = r"\Seen \Deleted \*" if owner.keywords else r"\Seen \Deleted"
        self.send(f"* {len(messages)} EXISTS")
        self.send("* 0 RECENT")
        self.send(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
        self.send(f"* OK [PERMANENTFLAGS ({permanent})] Limited")
        self.send("* OK [UIDVALIDITY 1] UIDs valid")
        self.send(f"* OK [UIDNEXT {owner.next_uid}] Predicted next UID")
        self.send(f"{tag} OK [READ-WRITE] {name} completed")

    def command(self, tag: str, name: str, args: bytes, *, by_uid: bool) -> bool:
        owner = self.server.owner
        with owner.lock:
            messages = list(owner.folders[self.folder or "INBOX"])
        numbered = list(enumerate(messages, start=1))
        if name == "SEARCH":
            found = [(n, m) for n, m in numbered if self.matches(m, _tokens(args))]
            ids = [m.uid if by_uid else n for n, m in found]
            self.send("* SEARCH" + "".join(f" {i}" for i in ids))
            self.send(f"{tag} OK SEARCH completed")
            return True
        spec, _, rest = args.partition(b" ")
        keys = [m.uid if by_uid else n for n, m in numbered]
        wanted = _sequence(spec.decode(), keys)
        targets = [(n, m) for n, m in numbered if (m.uid if by_uid else n) in wanted]
        if name == "FETCH":
            items = rest.decode().strip("()").upper().split()
            for n, m in targets:
                self.fetch(n, m, items, by_uid)
            self.send(f"{tag} OK FETCH completed")
        elif name == "STORE":
            mode, _, flag_text = rest.partition(b" ")
            flags = set(_tokens(flag_text)[0].strip("()").split()) if flag_text else set()
            if not owner.keywords:
                flags = {f for f in flags if f.startswith("\\")}
            mode_s = mode.decode().upper()
            with owner.lock:
                for n, m in targets:
                    if mode_s.startswith("+"):
                        m.flags |= flags
                    elif mode_s.startswith("-"):
                        m.flags -= flags
                    else:
                        m.flags = set(flags)
                    if not mode_s.endswith(".SILENT"):
                        self.send(f"* {n} FETCH (UID {m.uid} FLAGS ({' '.join(sorted(m.flags))}))")
            self.send(f"{tag} OK STORE completed")
        else:
            self.send(f"{tag} BAD unknown command {name}")
        return True

    def fetch(self, n: int, m: StoredMessage, items: list[str], by_uid: bool) -> None:
        parts: list[bytes] = []
        literal: bytes | None = None
        if by_uid or "UID" in items:
            parts.append(f"UID {m.uid}".encode())
        for item in items:
            if item in ("RFC822", "BODY[]", "BODY.PEEK[]"):
                if item != "BODY.PEEK[]":
                    with self.server.owner.lock:
                        m.flags.add("\\Seen")
                label = "RFC822" if item == "RFC822" else "BODY[]"
                parts.append(f"{label} {{{len(m.data)}}}".encode())
                literal = m.data
            elif item == "FLAGS":
                parts.insert(0, f"FLAGS ({' '.join(sorted(m.flags))})".encode())
        head = f"* {n} FETCH (".encode() + b" ".join(parts)
        if literal is None:
            self.send(head + b")")
        else:
            self.wfile.write(head + b"\r\n" + literal + b")\r\n")
            self.wfile.flush()

    @staticmethod
    def matches(m: StoredMessage, keys: list[str]) -> bool:
        result = True
        i = 0
        while i < len(keys):
            negate = keys[i].upper() == "NOT"
            if negate:
                i += 1
            key = keys[i].upper()
            if key in ("KEYWORD", "UNKEYWORD"):
                i += 1
                hit = keys[i] in m.flags
                hit = hit if key == "KEYWORD" else not hit
            elif key == "ALL":
                hit = True
            elif key in ("SEEN", "UNSEEN"):
                hit = ("\\Seen" in m.flags) == (key == "SEEN")
            elif key in ("DELETED", "UNDELETED"):
                hit = ("\\Deleted" in m.flags) == (key == "DELETED")
            else:
                raise ValueError(key)
            result = result and (not hit if negate else hit)
            i += 1
        return result


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ImapServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Failed handshakes and dropped clients are part of the tests: stay quiet."""


class ImapServer:
    """The server, its users and folders; ``log`` lists (command, user) as received.

    :param keywords: whether custom keywords such as ``$DigestProcessed`` can be stored
        (PERMANENTFLAGS with ``\\*``); without them STORE keeps system flags only.
    :param stall_on: a command name after which the server stops answering (deadlines).
    :param ssl_context: a server-side context for implicit TLS (imaps://).
    """

    def __init__(self, *, users: dict[str, str], keywords: bool = True,
                 stall_on: str | None = None, stall_seconds: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.users = users
        self.ssl_context = ssl_context
        self.keywords = keywords
        self.stall_on = stall_on
        self.stall_seconds = stall_seconds
        self.folders: dict[str, list[StoredMessage]] = {"INBOX": []}
        self.next_uid = 101
        self.lock = threading.Lock()
        self.log: list[tuple[str, str | None]] = []
        self._server = _TCPServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, folder: str, data: bytes, flags: set[str] | None = None) -> int:
        """Store a message; returns its UID."""
        with self.lock:
            uid = self.next_uid
            self.next_uid += 1
            self.folders.setdefault(folder, []).append(StoredMessage(uid, data, set(flags or ())))
            return uid

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID → flags of each message in ``folder``."""
        with self.lock:
            return {m.uid: set(m.flags) for m in self.folders[folder]}

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
