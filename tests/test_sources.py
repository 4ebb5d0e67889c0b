"""gather_stories: files and URLs side by side, kinds told by content, one bad source never stops the rest."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from feed_server import FeedServer, feed_server_fixture  # noqa: F401

from digest.config import FetchSettings
from digest.sources import gather_stories

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = FIXTURES / "pages" / "seed.txt"
RSS = FIXTURES / "feeds" / "rss2.xml"
FETCH = FetchSettings(timeout=5.0, max_bytes=1_000_000, max_redirects=3)
SECTIONS = {"markets": "Business", "politics": "Politics"}
AS_OF = datetime(2025, 8, 23, 12, 0, tzinfo=UTC)


async def gather(sources: list[str], **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("as_of", AS_OF)
    kwargs.setdefault("section_map", SECTIONS)
    kwargs.setdefault("fetch", FETCH)
    return await gather_stories(sources, **kwargs)  # type: ignore[arg-type]


async def test_a_page_and_a_feed_from_files(tmp_path: Path) -> None:
    result = await gather([str(SEED), str(RSS)])
    assert result.errors == []
    assert [s.source for s in result.stories].count(str(SEED)) == 13
    assert [s.source for s in result.stories].count(str(RSS)) == 4
    assert result.stories[0].is_lead and result.stories[0].section == "Politics"
    assert result.stories[13].section == "Business"  # the feed's section map applied
    assert {item.source for item in result.skipped} == {str(RSS)}  # the feed's bad items


async def test_a_source_that_gives_nothing_is_named(tmp_path: Path) -> None:
    """An empty feed (or a page with no story) is never silent: it is listed by name, alone
    (so "nothing usable" names it) or beside a source that gave stories (a warning)."""
    empty = tmp_path / "empty.rss"
    empty.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>Empty</title>'
                     "<link>https://news.example.org/</link></channel></rss>")
    alone = await gather([str(empty)])
    assert [(i.source, i.reason) for i in alone.skipped] == [
        (str(empty), "the feed holds no items")]
    assert alone.errors and str(empty) in alone.errors[0]
    mixed = await gather([str(RSS), str(empty)])
    assert mixed.errors == [] and len(mixed.stories) == 4
    assert (str(empty), None, "the feed holds no items") in {
        (i.source, i.line, i.reason) for i in mixed.skipped}


async def test_the_kind_comes_from_the_content_not_the_name(tmp_path: Path) -> None:
    feed_as_txt = tmp_path / "feed.txt"
    page_as_xml = tmp_path / "page.xml"
    shutil.copy(RSS, feed_as_txt)
    shutil.copy(SEED, page_as_xml)
    result = await gather([str(feed_as_txt), str(page_as_xml)])
    assert result.errors == []
    assert result.stories[0].url == "https://wire.example.org/1"
    assert result.stories[4].is_lead and result.stories[4].source == str(page_as_xml)


async def test_without_as_of_a_page_file_is_dated_by_its_modification_time(tmp_path: Path) -> None:
    page = tmp_path / "front.txt"
    shutil.copy(SEED, page)
    captured = datetime(2026, 11, 17, 6, 30, tzinfo=UTC)
    os.utime(page, (captured.timestamp(), captured.timestamp()))
    result = await gather([str(page)], as_of=None)
    sports = result.stories[1]
    assert sports.published_at == captured - timedelta(weeks=4)
    given = await gather([str(page)], as_of=AS_OF)
    assert given.stories[1].published_at == AS_OF - timedelta(weeks=4)


async def test_unreadable_sources_are_errors_and_the_others_still_come_through(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    html = tmp_path / "saved.html"
    html.write_text("<!DOCTYPE html><html><body><h1>Saved page</h1></body></html>")
    binary = FIXTURES / "feeds" / "binary.bin"
    missing = tmp_path / "missing.txt"
    sources = [
        str(missing),
        str(SEED),
        str(empty),
        str(tmp_path),
        str(html),
        str(binary),
        "ftp://127.0.0.1/x.rss",
    ]
    result = await gather(sources)
    assert len(result.stories) == 13
    assert len(result.errors) == 6
    messages = dict(zip([s for s in sources if s != str(SEED)], result.errors, strict=True))
    assert (
        messages[str(missing)]
        == f"Cannot read {missing}: No such file or directory; check the path."
    )
    assert "is empty" in messages[str(empty)]
    assert messages[str(tmp_path)].startswith(f"Cannot read {tmp_path}: Is a directory")
    assert "HTML or XML document" in messages[str(html)]
    assert "binary data" in messages[str(binary)]
    assert "ftp: scheme" in messages["ftp://127.0.0.1/x.rss"]
    for message in result.errors:
        assert "\n" not in message and message.endswith(".")
    whole_source_skips = [item for item in result.skipped if item.line is None]
    assert [(item.source, item.reason) for item in whole_source_skips] == list(messages.items())


async def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    result = await gather([str(SEED)], fetch=FetchSettings(timeout=5.0, max_bytes=1000))
    assert result.stories == []
    assert result.errors == [
        f"{SEED} is larger than 1,000 bytes; raise [fetch] max_bytes if it is real."
    ]


async def test_urls_next_to_broken_ones(feed_server: FeedServer) -> None:
    good = feed_server.url("/gzip.xml")
    missing = feed_server.url("/status/404")
    broken = feed_server.url("/not-a-feed.xml")
    escaping = feed_server.url("/to-file")
    result = await gather([missing, good, broken, escaping])
    assert [s.headline for s in result.stories] == [
        "Markets & Money: Stocks Rally Again",
        "Relative Link Resolved Against the Channel",
        "No Link, No Guid, No Category",
        "Long Summary Item",
    ]
    assert all(s.source == good for s in result.stories)
    assert len(result.errors) == 3
    assert f"{missing} answered HTTP 404" in result.errors[0]
    assert broken in result.errors[1] and "HTML or XML document" in result.errors[1]
    assert escaping in result.errors[2] and "file:" in result.errors[2]


async def test_a_page_over_http_is_dated_by_last_modified(feed_server: FeedServer) -> None:
    result = await gather([feed_server.url("/page.txt")], as_of=None)
    assert result.errors == []
    assert result.stories[1].published_at == datetime(
        2025, 7, 26, 12, 0, tzinfo=UTC
    )  # 4 weeks before


async def test_slow_sources_are_read_concurrently_each_within_its_deadline(
    feed_server: FeedServer,
) -> None:
    fetch = FetchSettings(timeout=0.6, max_bytes=1_000_000)
    started = time.monotonic()
    result = await gather([feed_server.url("/drip")] * 3 + [str(SEED)], fetch=fetch)
    elapsed = time.monotonic() - started
    assert len(result.errors) == 3 and all("took longer than 0.6s" in e for e in result.errors)
    assert len(result.stories) == 13
    assert elapsed < 1.5  # three 0.6 s deadlines one after another would take 1.8 s


async def test_a_client_passed_in_is_used_and_left_open(feed_server: FeedServer) -> None:
    async with httpx.AsyncClient() as client:
        result = await gather([feed_server.url("/feed.xml")], client=client)
        assert not client.is_closed
    assert len(result.stories) == 4


@pytest.mark.parametrize("as_of", [None, AS_OF])
async def test_no_sources_give_an_empty_result(as_of: datetime | None) -> None:
    result = await gather([], as_of=as_of)
    assert result.stories == [] and result.errors == [] and result.skipped == []
