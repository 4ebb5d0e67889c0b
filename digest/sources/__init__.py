"""The sources stage: article pages and RSS / Atom / JSON feeds, from files or http(s), into Stories.

Every source is read on its own: one that cannot be read at all becomes one error that
names it, and the others still make the edition. Items or lines a source could not use,
and items kept with a repair, are listed in :attr:`SourceResult.skipped` with the line they
start on where known. When no source gave a single story, the reasons are also one error,
so a command that stops there still says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from digest.config import FetchSettings
from digest.errors import FetchError, SourceError
from digest.models import SkippedItem, SourceResult
from digest.sources.ages import parse_age
from digest.sources.charsets import charset_from_content_type
from digest.sources.feeds import detect_kind, parse_feed
from digest.sources.fetch import FetchedBytes, fetch_bytes
from digest.sources.links import secure_links
from digest.sources.pages import parse_page

__all__ = [
    "FetchedBytes",
    "detect_kind",
    "fetch_bytes",
    "gather_stories",
    "nothing_usable",
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
    site_url: str | None = None,
) -> SourceResult:
    """Read every source concurrently and merge what they give, in the order given.

    Each source is a file path or an http(s) URL; whether it is a page or a feed is told
    from its content. Pages resolve relative ages against ``as_of``, else the file's
    modification time or the server's ``Last-Modified`` / ``Date``, else now. A fetched
    feed's relative links resolve against the address it was fetched from. Feed stories
    dated after ``as_of`` (else now) are marked ``future_dated``. Links on ``site_url``'s
    host are made https when ``site_url`` is https; other http links are counted.

    A source that cannot be read at all adds ``SkippedItem(source, None, reason)`` and a
    one-sentence message to ``errors``; it never stops the others. When no story at all
    came out but items were skipped, :func:`nothing_usable` is added to ``errors``.
    """
    own_client: httpx.AsyncClient | None = None
    if client is None and any(_is_url(source) for source in sources):
        own_client = client = httpx.AsyncClient(timeout=fetch.timeout, follow_redirects=False)
    try:
        results = await asyncio.gather(
            *(
                _read_source(
                    source,
                    as_of=as_of,
                    section_map=section_map,
                    fetch=fetch,
                    client=client,
                    site_url=site_url,
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
    if not merged.stories and not merged.errors and merged.skipped:
        merged.errors.append(nothing_usable(merged.skipped))
    return merged


def nothing_usable(skipped: Sequence[SkippedItem]) -> str:
    """One message saying that no story could be used, with every reason and where."""
    reasons = "; ".join(
        f"{item.source}{f':{item.line}' if item.line else ''}: {item.reason}" for item in skipped
    )
    return f"No story could be used from the sources: {reasons}."


async def _read_source(
    source: str,
    *,
    as_of: datetime | None,
    section_map: Mapping[str, str],
    fetch: FetchSettings,
    client: httpx.AsyncClient | None,
    site_url: str | None = None,
) -> SourceResult:
    try:
        loaded = await _load(source, fetch, client)
        charset = charset_from_content_type(loaded.content_type)
        kind = detect_kind(loaded.data)
        if kind == "page":
            when = as_of or loaded.captured or datetime.now(UTC)
            return _named_if_empty(await asyncio.to_thread(
                parse_page,
                loaded.data,
                source=source,
                as_of=when,
                section_map=section_map,
                charset=charset,
            ), source, "no story was found on the page")
        result = await asyncio.to_thread(
            parse_feed,
            loaded.data,
            source=source,
            section_map=section_map,
            document_url=loaded.url,
            charset=charset,
            as_of=as_of,
        )
        stories, warnings = secure_links(result.stories, source=source, site_url=site_url)
        result.stories = stories
        result.skipped.extend(warnings)
        return _named_if_empty(result, source, "the feed holds no items")
    except SourceError as exc:
        message = str(exc)
    except Exception as exc:  # a bug must not cost the other sources their edition
        log.error("unexpected failure reading %s: %s: %s", source, type(exc).__name__, exc)
        log.debug("traceback of the failure reading %s", source, exc_info=True)
        message = f"Could not read {source} ({type(exc).__name__}: {exc}); this is a bug in digest."
    return SourceResult(skipped=[SkippedItem(source, None, message)], errors=[message])


def _named_if_empty(result: SourceResult, source: str, reason: str) -> SourceResult:
    """A source that was read but gave nothing at all says so in ``skipped``, so that a
    message about an empty edition can name it (a source that gave nothing is never silent)."""
    if not result.stories and not result.skipped:
        result.skipped.append(SkippedItem(source, None, reason))
    return result


@dataclass(frozen=True, slots=True)
class _Loaded:
    data: bytes
    captured: datetime | None
    url: str | None = None  # the final address, for a fetched source
    content_type: str | None = None


async def _load(source: str, fetch: FetchSettings, client: httpx.AsyncClient | None) -> _Loaded:
    if _is_url(source):
        fetched = await fetch_bytes(source, settings=fetch, client=client)
        return _Loaded(fetched.data, fetched.last_modified, fetched.url, fetched.content_type)
    if "://" in source:
        scheme = source.split("://", 1)[0]
        raise FetchError(
            f"{source} uses the {scheme}: scheme; a source is a file path or an http(s) URL.",
            source=source,
        )
    data, captured = await asyncio.to_thread(_read_file, source, fetch.max_bytes)
    return _Loaded(data, captured)


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
