"""fetch_bytes against a real HTTP server on 127.0.0.1: redirects, encodings, deadline, size cap."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime

import httpx
import pytest
from feed_server import BOMB_SIZE, RSS, FeedServer, feed_server_fixture  # noqa: F401

from digest.config import FetchSettings
from digest.errors import FetchError
from digest.sources import fetch_bytes

SETTINGS = FetchSettings(
    timeout=5.0, max_bytes=1_000_000, max_redirects=3, user_agent="digest-test/1"
)


async def test_fetches_bytes_final_url_and_last_modified(feed_server: FeedServer) -> None:
    fetched = await fetch_bytes(feed_server.url("/feed.xml"), settings=SETTINGS)
    assert fetched.data == RSS
    assert fetched.url == feed_server.url("/feed.xml")
    assert fetched.last_modified == datetime(2025, 8, 23, 12, 0, tzinfo=UTC)


async def test_date_header_is_the_fallback_capture_time(feed_server: FeedServer) -> None:
    fetched = await fetch_bytes(feed_server.url("/gzip.xml"), settings=SETTINGS)
    assert fetched.last_modified is not None
    assert fetched.last_modified.tzinfo is not None
    assert abs((datetime.now(UTC) - fetched.last_modified).total_seconds()) < 60


async def test_sends_our_user_agent(feed_server: FeedServer) -> None:
    fetched = await fetch_bytes(feed_server.url("/user-agent"), settings=SETTINGS)
    assert fetched.data == b"digest-test/1"


@pytest.mark.parametrize("path", ["/gzip.xml", "/deflate.xml", "/raw-deflate.xml"])
async def test_decompresses_gzip_and_deflate(feed_server: FeedServer, path: str) -> None:
    fetched = await fetch_bytes(feed_server.url(path), settings=SETTINGS)
    assert fetched.data == RSS


async def test_follows_redirects_within_the_limit(feed_server: FeedServer) -> None:
    fetched = await fetch_bytes(feed_server.url("/hop/3"), settings=SETTINGS)
    assert fetched.data == RSS
    assert fetched.url == feed_server.url("/feed.xml")


async def test_resolves_a_relative_redirect(feed_server: FeedServer) -> None:
    fetched = await fetch_bytes(feed_server.url("/relative-hop"), settings=SETTINGS)
    assert fetched.url == feed_server.url("/feed.xml")


async def test_refuses_one_redirect_too_many(feed_server: FeedServer) -> None:
    with pytest.raises(FetchError, match="redirected more than 3 times") as info:
        await fetch_bytes(feed_server.url("/hop/4"), settings=SETTINGS)
    assert info.value.source == feed_server.url("/hop/4")


async def test_zero_redirects_allowed_means_none(feed_server: FeedServer) -> None:
    settings = FetchSettings(timeout=5.0, max_bytes=1_000_000, max_redirects=0)
    with pytest.raises(FetchError, match="more than 0 times"):
        await fetch_bytes(feed_server.url("/hop/1"), settings=settings)


@pytest.mark.parametrize(("path", "scheme"), [("/to-file", "file:"), ("/to-ftp", "ftp:")])
async def test_refuses_a_redirect_to_another_scheme(
    feed_server: FeedServer, path: str, scheme: str
) -> None:
    with pytest.raises(FetchError, match=f"redirected to {scheme}"):
        await fetch_bytes(feed_server.url(path), settings=SETTINGS)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)", "http://"]
)
async def test_refuses_non_http_urls_before_any_request(url: str) -> None:
    with pytest.raises(FetchError, match="not an http"):
        await fetch_bytes(url, settings=SETTINGS)


@pytest.mark.parametrize("status", [404, 500])
async def test_error_status_names_url_and_status(feed_server: FeedServer, status: int) -> None:
    url = feed_server.url(f"/status/{status}")
    with pytest.raises(FetchError) as info:
        await fetch_bytes(url, settings=SETTINGS)
    assert url in str(info.value)
    assert f"HTTP {status}" in str(info.value)


async def test_error_status_after_a_redirect_says_where(feed_server: FeedServer) -> None:
    with pytest.raises(FetchError, match=r"HTTP 404 .*after redirecting to .*/status/404"):
        await fetch_bytes(feed_server.url("/hop-to-missing"), settings=SETTINGS)


async def test_total_deadline_stops_a_slow_drip(feed_server: FeedServer) -> None:
    settings = FetchSettings(timeout=0.5, max_bytes=1_000_000, max_redirects=3)
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 0.5s"):
        await fetch_bytes(feed_server.url("/drip"), settings=settings)
    assert (
        time.monotonic() - started < 3
    )  # each byte arrives quickly; only a total deadline stops it


async def test_size_cap_counts_decompressed_bytes_of_a_gzip_bomb(feed_server: FeedServer) -> None:
    settings = FetchSettings(timeout=10.0, max_bytes=1_000_000, max_redirects=3)
    with pytest.raises(FetchError, match="larger than 1,000,000 bytes"):
        await fetch_bytes(feed_server.url("/bomb.xml"), settings=settings)


async def test_gzip_bomb_fits_when_the_cap_allows_it(feed_server: FeedServer) -> None:
    settings = FetchSettings(timeout=20.0, max_bytes=BOMB_SIZE, max_redirects=3)
    fetched = await fetch_bytes(feed_server.url("/bomb.xml"), settings=settings)
    assert len(fetched.data) == BOMB_SIZE


async def test_size_cap_on_a_plain_body(feed_server: FeedServer) -> None:
    settings = FetchSettings(timeout=5.0, max_bytes=199_999, max_redirects=3)
    with pytest.raises(FetchError, match="larger than"):
        await fetch_bytes(feed_server.url("/big.txt"), settings=settings)
    exact = FetchSettings(timeout=5.0, max_bytes=200_000, max_redirects=3)
    assert len((await fetch_bytes(feed_server.url("/big.txt"), settings=exact)).data) == 200_000


@pytest.mark.parametrize(
    ("path", "message"), [("/brotli.xml", "cannot decode"), ("/corrupt-gzip.xml", "corrupt gzip")]
)
async def test_unreadable_encodings_are_fetch_errors(
    feed_server: FeedServer, path: str, message: str
) -> None:
    with pytest.raises(FetchError, match=message):
        await fetch_bytes(feed_server.url(path), settings=SETTINGS)


async def test_connection_refused_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="Could not fetch http://127.0.0.1:9/"):
        await fetch_bytes("http://127.0.0.1:9/feed.xml", settings=SETTINGS)


async def test_a_client_passed_in_is_used_and_left_open(feed_server: FeedServer) -> None:
    async with httpx.AsyncClient() as client:
        first = await fetch_bytes(feed_server.url("/feed.xml"), settings=SETTINGS, client=client)
        second = await fetch_bytes(feed_server.url("/hop/1"), settings=SETTINGS, client=client)
        assert not client.is_closed
    assert first.data == second.data == RSS


async def test_gzip_bomb_never_inflates_far_past_the_cap(feed_server: FeedServer) -> None:
    """50 MB of zeros compress to ~50 KB: one network chunk must not become 50 MB in memory."""
    settings = FetchSettings(timeout=10.0, max_bytes=1_000_000, max_redirects=3)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError):
            await fetch_bytes(feed_server.url("/bomb.xml"), settings=settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000
