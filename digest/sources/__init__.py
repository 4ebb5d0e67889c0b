"""The sources stage: article pages and RSS / Atom / JSON feeds, from files or http(s), into Stories.

Every source is read on its own: one that cannot be read at all becomes one error that
names it, and the others still make the edition. Items or lines a source could not use
are listed in :attr:`SourceResult.skipped`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

from digest.config import FetchSettings
from digest.errors import FetchError, SourceError
from digest.models import SkippedItem, SourceResult
from digest.sources.ages import parse_age
from digest.sources.feeds import detect_kind, parse_feed
from digest.sources.fetch import FetchedBytes, fetch_bytes
from digest.sources.pages import parse_page

__all__ = [
    "FetchedBytes",
    "detect_kind",
    "fetch_bytes",
    "gather_stories",
    "parse_age",
    "parse_feed",
    "parse_page",
]

log = logging.getLogger(__name__)


async def gather_stories(
    sources: Sequence[str],
    *,
    as_of: datetime | None,
    section_map: Mapping[str, str],
    fetch: FetchSettings,
    client: httpx.AsyncClient | None = None,
) -> SourceResult:
    """Read every source concurrently and merge what they give, in the order given.

    Each source is a file path or an http(s) URL; whether it is a page or a feed is told
    from its content. Pages resolve relative ages against ``as_of``, else the file's
    modification time or the server's ``Last-Modified`` / ``Date``, else now.

    A source that cannot be read at all adds ``SkippedItem(source, None, reason)`` and a
    one-sentence message to ``errors``; it never stops the others.
    """
    own_client: httpx.AsyncClient | None = None
    if client is None and any(_is_url(source) for source in sources):
        own_client = client = httpx.AsyncClient(timeout=fetch.timeout, follow_redirects=False)
    try:
        results = await asyncio.gather(
            *(
                _read_source(
                    source, as_of=as_of, section_map=section_map, fetch=fetch, client=client
                )
                for source in sources
            )
        )
    finally:
        if own_client is not None:
            await own_client.aclose()
    merged = SourceResult()
    for result in results:
        merged.extend(result)
    return merged


async def _read_source(
    source: str,
    *,
    as_of: datetime | None,
    section_map: Mapping[str, str],
    fetch: FetchSettings,
    client: httpx.AsyncClient | None,
) -> SourceResult:
    try:
        data, captured = await _load(source, fetch, client)
        kind = detect_kind(data)
        if kind == "page":
            when = as_of or captured or datetime.now(UTC)
            return await asyncio.to_thread(
                parse_page, data, source=source, as_of=when, section_map=section_map
            )
        return await asyncio.to_thread(parse_feed, data, source=source, section_map=section_map)
    except SourceError as exc:
        message = str(exc)
    except Exception as exc:  # a bug must not cost the other sources their edition
        log.error("unexpected failure reading %s: %s: %s", source, type(exc).__name__, exc)
        log.debug("traceback of the failure reading %s", source, exc_info=True)
        message = f"Could not read {source} ({type(exc).__name__}: {exc}); this is a bug in digest."
    return SourceResult(skipped=[SkippedItem(source, None, message)], errors=[message])


async def _load(
    source: str, fetch: FetchSettings, client: httpx.AsyncClient | None
) -> tuple[bytes, datetime | None]:
    if _is_url(source):
        fetched = await fetch_bytes(source, settings=fetch, client=client)
        return fetched.data, fetched.last_modified
    if "://" in source:
        scheme = source.split("://", 1)[0]
        raise FetchError(
            f"{source} uses the {scheme}: scheme; a source is a file path or an http(s) URL.",
            source=source,
        )
    return await asyncio.to_thread(_read_file, source, fetch.max_bytes)


def _read_file(source: str, max_bytes: int) -> tuple[bytes, datetime]:
    path = Path(source).expanduser()
    try:
        with path.open("rb") as handle:
            captured = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise FetchError(f"Cannot read {source}: {reason}; check the path.", source=source) from exc
    if len(data) > max_bytes:
        raise FetchError(
            f"{source} is larger than {max_bytes:,} bytes; raise [fetch] max_bytes if it is real.",
            source=source,
        )
    return data, captured


def _is_url(source: str) -> bool:
    return source.strip().lower().startswith(("http://", "https://"))
