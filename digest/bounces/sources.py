"""Where reports come from: a Maildir on disk or an IMAP folder, each message handed out once.

Both yield :class:`RawMessage` objects whose ``ack()`` marks the message processed, so a
re-run skips it: in a Maildir by a processed-keys file in the work directory (the message is
also moved to cur/ and flagged Seen, for people reading the same mailbox); over IMAP by the
flags ``\\Seen $DigestProcessed`` (``\\Seen`` alone, searching UNSEEN, on a server that
refuses keywords).
"""

from __future__ import annotations

import errno
import hashlib
import imaplib
import ipaddress
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

from digest.errors import ConfigError

from .errors import BounceSourceError

__all__ = ["ImapSource", "ImapTarget", "MaildirSource", "RawMessage", "parse_imap_url"]

MAX_MESSAGE_BYTES = 5_000_000
PROCESSED_KEYWORD = "$DigestProcessed"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One received message: ``key`` is stable within its source; ``ack`` (when set)
    marks it processed so later runs skip it."""

    key: str
    data: bytes
    ack: Callable[[], None] | None = field(default=None, compare=False, repr=False)


# --------------------------------------------------------------------------- Maildir


class MaildirSource:
    """The messages in a Maildir's new/ and cur/ not processed yet, oldest name first.

    :param state_dir: where the processed-keys file lives (the work directory), one file
        per Maildir path; keys of messages gone from the Maildir are dropped on close.
    """

    colon = ":"

    def __init__(self, path: str | os.PathLike[str], *, state_dir: str | os.PathLike[str]
                 ) -> None:
        self.path = Path(path)
        self.state_dir = Path(state_dir)
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]
        self.state_file = self.state_dir / f"maildir-{digest}.processed"
        self._done: set[str] = set()
        self._present: set[str] = set()
        self._complete = False

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Check the Maildir and read the processed keys.

        :raises BounceSourceError: when the directory is not a readable Maildir.
        """
        for sub in ("new", "cur"):
            if not (self.path / sub).is_dir():
                raise BounceSourceError(f"{self.path} is not a Maildir (it has no {sub}/ "
                                        "directory); check --maildir.")
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise BounceSourceError(f"Cannot read {self.state_file} ({exc.strerror}); check "
                                    "the work directory's permissions.") from None
        self._done = {line for line in text.splitlines() if line}

    def _entries(self) -> list[tuple[str, str, Path]]:
        found = []
        for sub in ("new", "cur"):
            try:
                names = os.listdir(self.path / sub)
            except OSError as exc:
                raise BounceSourceError(f"Cannot list {self.path / sub} ({exc.strerror}); "
                                        "check --maildir and its permissions.") from None
            for name in names:
                if name.startswith("."):
                    continue
                key = name.split(self.colon, 1)[0]
                found.append((key, sub, self.path / sub / name))
        return sorted(found)

    def __iter__(self) -> Iterator[RawMessage]:
        for key, _sub, path in self._entries():
            self._present.add(key)
            if key in self._done:
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read(MAX_MESSAGE_BYTES + 1)
            except FileNotFoundError:
                continue  # moved by a mail client meanwhile: the next run sees it
            except OSError as exc:
                raise BounceSourceError(f"Cannot read {path} ({exc.strerror}); check the "
                                        "Maildir's permissions.") from None
            yield RawMessage(key=key, data=data[:MAX_MESSAGE_BYTES],
                             ack=lambda k=key, p=path: self._ack(k, p))
        self._complete = True

    def _ack(self, key: str, path: Path) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(self.state_file, "a", encoding="utf-8") as log:
                log.write(key + "\n")
                log.flush()
                os.fsync(log.fileno())
        except OSError as exc:
            raise BounceSourceError(f"Cannot record progress in {self.state_file} "
                                    f"({exc.strerror}); check the work directory.") from None
        self._done.add(key)
        self._flag_seen(path)

    def _flag_seen(self, path: Path) -> None:
        name = path.name
        base, _, info = name.partition(self.colon)
        flags = info[2:] if info.startswith("2,") else ""
        if path.parent.name == "cur" and "S" in flags:
            return
        new_name = f"{base}{self.colon}2,{''.join(sorted(set(flags) | {'S'}))}"
        try:
            os.rename(path, self.path / "cur" / new_name)
        except OSError:
            pass  # cosmetic only: the processed-keys file is what makes re-runs skip it

    def close(self) -> None:
        """Forget keys of messages no longer in the Maildir (only after a full pass: an
        interrupted one has not seen every message)."""
        if not self._complete or not self._done:
            return
        keep = self._done & self._present
        if keep == self._done:
            return
        tmp = self.state_file.with_suffix(".tmp")
        try:
            tmp.write_text("".join(k + "\n" for k in sorted(keep)), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError:
            pass  # a longer file next time is harmless


# --------------------------------------------------------------------------- IMAP


@dataclass(frozen=True, slots=True)
class ImapTarget:
    """A parsed ``imaps://user@host[:port]/FOLDER`` URL."""

    tls: bool
    user: str
    host: str
    port: int
    folder: str

    def describe(self) -> str:
        """``imaps://user@host:port/FOLDER`` (there is never a password to hide)."""
        return f"{'imaps' if self.tls else 'imap'}://{self.user}@{self.host}:{self.port}/{self.folder}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_imap_url(url: str) -> ImapTarget:
    """Parse ``imaps://user@host[:port]/FOLDER`` (or ``imap://`` to a loopback address).

    :raises ConfigError: for a malformed URL, a password in it, or plain IMAP to another host.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError("The --imap URL cannot be parsed; use "
                          "imaps://user@host[:port]/FOLDER.") from None
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ConfigError("The --imap URL must look like imaps://user@host[:port]/FOLDER.")
    if parts.password is not None:
        raise ConfigError("The --imap URL must not carry a password; set DIGEST_IMAP_PASSWORD "
                          "instead.")
    if not parts.username:
        raise ConfigError("The --imap URL names no user; use imaps://user@host/FOLDER.")
    tls = parts.scheme == "imaps"
    host = parts.hostname
    if not tls and not _loopback(host):
        raise ConfigError("Plain imap:// is allowed only to 127.0.0.1; use imaps:// for "
                          f"{host}.")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    if not folder.isascii() or any(ord(c) < 32 for c in folder):
        raise ConfigError("The --imap folder name must be printable ASCII; rename the folder "
                          "or use another one.")
    user = unquote(parts.username)
    return ImapTarget(tls=tls, user=user, host=host, port=port or (993 if tls else 143),
                      folder=folder)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapSource:
    """The unprocessed messages of one IMAP folder, fetched one at a time with BODY.PEEK[]
    (so a crash leaves them unread), flagged processed on ``ack()``.

    :param password: from ``DIGEST_IMAP_PASSWORD``; never logged or shown.
    :param timeout: seconds any network operation may take (the deadline).
    """

    def __init__(self, url: str, *, password: str, timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.target = parse_imap_url(url)
        self._password = password
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._imap: imaplib.IMAP4 | None = None
        self.keywords = False

    def __repr__(self) -> str:
        return f"ImapSource({self.target.describe()!r})"

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _where(self) -> str:
        return f"{self.target.host}:{self.target.port}"

    def _translate(self, exc: BaseException, doing: str) -> BounceSourceError:
        where = self._where()
        if isinstance(exc, TimeoutError | socket.timeout):
            text = (f"The IMAP server {where} did not answer within {self.timeout:g} seconds "
                    f"while {doing}; try again later.")
        elif isinstance(exc, ssl.SSLError):
            text = (f"The TLS handshake with the IMAP server {where} failed "
                    f"({getattr(exc, 'reason', None) or type(exc).__name__}); check the host "
                    "name and its certificate.")
        elif isinstance(exc, imaplib.IMAP4.abort):
            text = (f"The IMAP server {where} dropped the connection while {doing}; "
                    "try again later.")
        elif isinstance(exc, OSError):
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or type(exc).__name__
            text = (f"The IMAP server {where} could not be reached ({reason}); check the host "
                    "and port in --imap.")
        else:
            text = (f"The IMAP server {where} refused {doing}; check the --imap URL and the "
                    "server's log.")
        return BounceSourceError(text)

    def open(self) -> None:
        """Connect, log in and select the folder.

        :raises BounceSourceError: when any of those fails (one sentence, no password).
        """
        t = self.target
        try:
            if t.tls:
                context = self.ssl_context or ssl.create_default_context()
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(t.host, t.port, ssl_context=context,
                                                        timeout=self.timeout)
            else:
                imap = imaplib.IMAP4(t.host, t.port, timeout=self.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise self._translate(exc, "connecting") from None
        self._imap = imap
        try:
            imap.login(_quote(t.user), self._password)
        except imaplib.IMAP4.abort as exc:
            self.close()
            raise self._translate(exc, "logging in") from None
        except imaplib.IMAP4.error:
            self.close()
            raise BounceSourceError(f"The IMAP server {self._where()} refused the login for "
                                    f"{t.user}; check the user in --imap and "
                                    "DIGEST_IMAP_PASSWORD.") from None
        except UnicodeEncodeError:
            self.close()
            raise BounceSourceError("The IMAP user name and password must be ASCII for LOGIN; "
                                    "check DIGEST_IMAP_PASSWORD.") from None
        except OSError as exc:
            self.close()
            raise self._translate(exc, "logging in") from None
        try:
            typ, _ = imap.select(_quote(t.folder))
            if typ != "OK":
                raise imaplib.IMAP4.error("select")
            _, flags = imap.response("PERMANENTFLAGS")
        except imaplib.IMAP4.abort as exc:
            self.close()
            raise self._translate(exc, "opening the folder") from None
        except imaplib.IMAP4.error:
            self.close()
            raise BounceSourceError(f"The IMAP server {self._where()} has no folder "
                                    f"{t.folder!r} (or refused it); check the folder in "
                                    "--imap.") from None
        except OSError as exc:
            self.close()
            raise self._translate(exc, "opening the folder") from None
        permanent = b" ".join(f for f in flags if isinstance(f, bytes))
        self.keywords = b"\\*" in permanent or PROCESSED_KEYWORD.encode() in permanent

    def _command(self, doing: str, *args: str) -> list[object]:
        assert self._imap is not None, "open() the source first"
        try:
            typ, data = self._imap.uid(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise self._translate(exc, doing) from None
        if typ != "OK":
            raise BounceSourceError(f"The IMAP server {self._where()} refused {doing}; check "
                                    "the folder's permissions.")
        return list(data)

    def pending(self) -> list[str]:
        """UIDs of the folder's messages not yet processed (and not deleted)."""
        query = (f"UNDELETED NOT KEYWORD {PROCESSED_KEYWORD}" if self.keywords
                 else "UNSEEN UNDELETED")
        data = self._command("searching the folder", "SEARCH", query)
        uids: list[str] = []
        for chunk in data:
            if isinstance(chunk, bytes):
                uids += [u.decode() for u in chunk.split() if u.isdigit()]
        return sorted(set(uids), key=int)

    def fetch(self, uid: str) -> bytes | None:
        """The message's bytes without setting \\Seen, or None when it vanished."""
        data = self._command("fetching a message", "FETCH", uid, "(BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1][:MAX_MESSAGE_BYTES]
        return None

    def mark_processed(self, uid: str) -> None:
        """Flag the message processed (and seen)."""
        flags = f"(\\Seen {PROCESSED_KEYWORD})" if self.keywords else "(\\Seen)"
        self._command("flagging a processed message", "STORE", uid, "+FLAGS.SILENT", flags)

    def __iter__(self) -> Iterator[RawMessage]:
        for uid in self.pending():
            data = self.fetch(uid)
            if data is None:
                continue
            yield RawMessage(key=f"uid:{uid}", data=data,
                             ack=lambda u=uid: self.mark_processed(u))

    def close(self) -> None:
        """Log out (errors on the way out are ignored: nothing is left to save)."""
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            # LOGOUT without CLOSE: CLOSE would expunge messages someone marked \Deleted.
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            try:
                imap.shutdown()
            except OSError:
                pass
