"""Fetching a feed's bytes over http(s): one total deadline, a cap on decompressed size,
few redirects and never a non-http scheme."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from digest.config import FetchSettings
from digest.errors import FetchError

__all__ = ["FetchedBytes", "fetch_bytes"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, text/plain;q=0.8, */*;q=0.5"
)
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class FetchedBytes:
    """A fetched body: its bytes (decompressed), the final URL (after redirects: the base for
    the document's relative links), when the server says it last changed
    (``Last-Modified``, else ``Date``), timezone-aware, or None, and its ``Content-Type``."""

    data: bytes
    url: str
    last_modified: datetime | None
    content_type: str | None = None


async def fetch_bytes(
    url: str, *, settings: FetchSettings, client: httpx.AsyncClient | None = None
) -> FetchedBytes:
    """Fetch ``url`` within ``settings.timeout`` seconds in all, following at most
    ``settings.max_redirects`` redirects, and keeping at most ``settings.max_bytes`` bytes
    after decompression.

    A client passed in is used as is and left open; otherwise one is made and closed.

    :raises FetchError: for a non-http(s) URL or redirect, too many redirects, a non-2xx
        status, the deadline, the size cap, or any network failure; it names the URL.
    """
    _check_scheme(url, url)
    try:
        async with asyncio.timeout(settings.timeout):
            if client is not None:
                return await _fetch(client, url, settings)
            async with httpx.AsyncClient(timeout=settings.timeout, follow_redirects=False) as own:
                return await _fetch(own, url, settings)
    except TimeoutError as exc:
        raise FetchError(
            f"Fetching {url} took longer than {settings.timeout:g}s; the server is too slow "
            "or [fetch] timeout is too short.",
            source=url,
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        detail = str(exc) or type(exc).__name__
        raise FetchError(
            f"Could not fetch {url} ({detail}); check the address.", source=url
        ) from exc


async def _fetch(client: httpx.AsyncClient, url: str, settings: FetchSettings) -> FetchedBytes:
    headers = {
        "User-Agent": settings.user_agent,
        "Accept": _ACCEPT,
        "Accept-Encoding": "gzip, deflate",
    }
    current = url
    for _ in range(settings.max_redirects + 1):
        request = client.build_request("GET", current, headers=headers)
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                target = str(response.url.join(response.headers["location"]))
                _check_scheme(target, url)
                current = target
                continue
            if not response.is_success:
                raise FetchError(
                    f"{url} answered HTTP {response.status_code} {response.reason_phrase}"
                    f"{_via(current, url)}; check the address or try again later.",
                    source=url,
                )
            data = await _read_body(response, url, settings.max_bytes)
            return FetchedBytes(
                data=data,
                url=current,
                last_modified=_last_modified(response),
                content_type=response.headers.get("content-type"),
            )
        finally:
            await response.aclose()
    raise FetchError(
        f"{url} redirected more than {settings.max_redirects} times; give the final address "
        "or raise [fetch] max_redirects.",
        source=url,
    )


def _check_scheme(target: str, original: str) -> None:
    try:
        parsed = httpx.URL(target)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"{target!r} is not a valid URL.", source=original) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        where = "" if target == original else f" (it redirected to {target[:120]})"
        raise FetchError(
            f"{original} is not an http(s) address{where}; only http and https can be fetched.",
            source=original,
        )


def _via(current: str, original: str) -> str:
    return "" if current == original else f" (after redirecting to {current})"


async def _read_body(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    """Read the raw body, decompressing it ourselves so no chunk can inflate past the cap."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    decoder = _Decoder(encoding, url)
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw(_CHUNK):
        for piece in decoder.feed(chunk, max_bytes - size + 1):
            size += len(piece)
            if size > max_bytes:
                raise _too_big(url, max_bytes)
            parts.append(piece)
    for piece in decoder.flush(max_bytes - size + 1):
        size += len(piece)
        if size > max_bytes:
            raise _too_big(url, max_bytes)
        parts.append(piece)
    return b"".join(parts)


def _too_big(url: str, max_bytes: int) -> FetchError:
    return FetchError(
        f"{url} is larger than {max_bytes:,} bytes (decompressed); raise [fetch] max_bytes "
        "if it is a real feed.",
        source=url,
    )


class _Decoder:
    """Incremental gzip/deflate decoding whose output per call is bounded."""

    def __init__(self, encoding: str, url: str) -> None:
        self.url = url
        self.encoding = encoding
        if encoding in ("identity", ""):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            # 47 = 32 + 15: accept a gzip or zlib header automatically.
            self._zlib = zlib.decompressobj(47)
            self._raw_deflate = encoding == "deflate"
            self._started = False
        else:
            raise FetchError(
                f"{url} sent Content-Encoding {encoding!r}, which digest cannot decode.", source=url
            )

    def feed(self, chunk: bytes, limit: int) -> list[bytes]:
        if self._zlib is None:
            return [chunk]
        return self._drain(chunk, limit)

    def flush(self, limit: int) -> list[bytes]:
        if self._zlib is None:
            return []
        return self._drain(b"", limit)

    def _drain(self, data: bytes, limit: int) -> list[bytes]:
        assert self._zlib is not None
        out: list[bytes] = []
        produced = 0
        while True:
            try:
                piece = self._zlib.decompress(data, max(1, limit - produced))
            except zlib.error as exc:
                if self._raw_deflate and not self._started:
                    # Some servers send raw deflate without the zlib header.
                    self._zlib, self._started = zlib.decompressobj(-15), True
                    continue
                raise FetchError(
                    f"{self.url} sent a corrupt {self.encoding} body ({exc}).", source=self.url
                ) from exc
            self._started = True
            if piece:
                out.append(piece)
                produced += len(piece)
            data = self._zlib.unconsumed_tail
            if produced >= limit or not data:
                return out


def _last_modified(response: httpx.Response) -> datetime | None:
    for name in ("last-modified", "date"):
        value = response.headers.get(name)
        if not value:
            continue
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            continue
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
