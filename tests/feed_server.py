"""A real HTTP server on 127.0.0.1 for the fetch and sources tests: feeds, redirects, errors,
a slow drip and a gzip bomb. No test talks to anything outside the loopback interface."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A small site tree served from / where no route above matches (each FILE may have
# FILE.headers: "Name: value" lines).
SITE = FIXTURES / "ingest" / "relative-links-fetched" / "www"
RSS = (FIXTURES / "feeds" / "rss2.xml").read_bytes()
SEED = (FIXTURES / "pages" / "seed.txt").read_bytes()
LAST_MODIFIED = "Sat, 23 Aug 2025 12:00:00 GMT"
BOMB_SIZE = 50_000_000
_BOMB = gzip.compress(b"\0" * BOMB_SIZE, compresslevel=9)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            self._route(path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (deadline or size cap): that is the point of some tests

    def _route(self, path: str) -> None:
        if path == "/feed.xml":
            self._send(
                200, RSS, {"Content-Type": "application/rss+xml", "Last-Modified": LAST_MODIFIED}
            )
        elif path == "/page.txt":
            self._send(
                200,
                SEED,
                {"Content-Type": "text/plain; charset=utf-8", "Last-Modified": LAST_MODIFIED},
            )
        elif path == "/gzip.xml":
            self._send(200, gzip.compress(RSS), {"Content-Encoding": "gzip"})
        elif path == "/deflate.xml":
            self._send(200, zlib.compress(RSS), {"Content-Encoding": "deflate"})
        elif path == "/raw-deflate.xml":
            packer = zlib.compressobj(wbits=-15)
            self._send(200, packer.compress(RSS) + packer.flush(), {"Content-Encoding": "deflate"})
        elif path == "/brotli.xml":
            self._send(200, b"\x0b\x02\x80hi\x03", {"Content-Encoding": "br"})
        elif path == "/corrupt-gzip.xml":
            self._send(200, b"\x1f\x8b\x08\x00not really gzip at all", {"Content-Encoding": "gzip"})
        elif path.startswith("/hop/"):
            remaining = int(path.rsplit("/", 1)[1])  # /hop/N is N redirects away from the feed
            target = "/feed.xml" if remaining <= 1 else f"/hop/{remaining - 1}"
            self._send(302, b"", {"Location": target})
        elif path == "/hop-to-missing":
            self._send(302, b"", {"Location": "/status/404"})
        elif path == "/relative-hop":
            self._send(301, b"", {"Location": "feed.xml"})
        elif path == "/to-file":
            self._send(302, b"", {"Location": "file:///etc/passwd"})
        elif path == "/to-ftp":
            self._send(307, b"", {"Location": "ftp://127.0.0.1/feed.xml"})
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"nope\n", {"Content-Type": "text/plain"})
        elif path == "/user-agent":
            self._send(200, self.headers.get("User-Agent", "").encode(), {})
        elif path == "/drip":
            self._drip()
        elif path == "/bomb.xml":
            self._send(
                200, _BOMB, {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}
            )
        elif path == "/big.txt":
            self._send(200, b"x" * 200_000, {"Content-Type": "text/plain"})
        elif path == "/moved/games.rss":
            self._send(301, b"", {"Location": "/en/games/news/rss"})
        elif path == "/not-a-feed.xml":
            self._send(
                200,
                b"<?xml version='1.0'?><catalog><book/></catalog>",
                {"Content-Type": "text/xml"},
            )
        else:
            self._static(SITE, path.lstrip("/"))

    def _static(self, root: Path, relative: str) -> None:
        target = (root / relative).resolve()
        if root.resolve() not in target.parents or not target.is_file():
            self._send(404, b"not found\n", {"Content-Type": "text/plain"})
            return
        headers: dict[str, str] = {}
        extra = target.with_name(target.name + ".headers")
        if extra.is_file():
            for line in extra.read_text(encoding="utf-8").splitlines():
                name, _, value = line.partition(":")
                if name.strip():
                    headers[name.strip()] = value.strip()
        self._send(200, target.read_bytes(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """Headers at once, then one byte every 50 ms for 30 s: each read is fast, the whole is not."""
        self.send_response(200)
        self.send_header("Content-Length", "600")
        self.end_headers()
        self.wfile.flush()
        for _ in range(600):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a dripping handler must not hold up the shutdown


@dataclass(frozen=True)
class FeedServer:
    """The running server; ``url(path)`` gives an address on it."""

    base: str

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module", name="feed_server")
def feed_server_fixture() -> Iterator[FeedServer]:
    """Import this into a test module; tests then ask for ``feed_server``."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FeedServer(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
