"""Story identity: normalised links and guids, and what is not an identity."""

from __future__ import annotations

import pytest

from digest.identity import KEY_MAX, guid_key, headline_key, identity_keys, link_key
from digest.models import Story, story_id


@pytest.mark.parametrize("variant", [
    "http://news.example.org/2026/11/17/story",
    "https://news.example.org/2026/11/17/story/",
    "HTTPS://NEWS.Example.ORG/2026/11/17/story",
    "https://news.example.org:443/2026/11/17/story",
    "http://news.example.org:80/2026/11/17/story#comments",
    "https://news.example.org/2026/11/17/story?utm_source=rss&utm_medium=feed&utm_campaign=x",
    "https://news.example.org/2026/11/17/story?fbclid=IwAR0abc&gclid=EAIa&msclkid=1",
    "https://news.example.org/2026/11/17/story?mc_cid=abc&mc_eid=def&_ga=2.1&UTM_Term=x",
    "https://news.example.org./2026/11/17/story",
    "  https://news.example.org/2026/11/17/story  ",
])
def test_one_story_however_its_link_is_spelled(variant: str) -> None:
    assert link_key(variant) == "u:news.example.org/2026/11/17/story"


@pytest.mark.parametrize(("one", "other"), [
    ("https://news.example.org/story?id=1", "https://news.example.org/story?id=2"),
    ("https://news.example.org/Story", "https://news.example.org/story"),
    ("https://news.example.org/a", "https://www.news.example.org/a"),
    ("https://news.example.org/a", "https://news.example.org:8443/a"),
    ("https://news.example.org/letters/1", "https://news.example.org/letters/2"),
])
def test_different_documents_stay_different(one: str, other: str) -> None:
    assert link_key(one) != link_key(other)


def test_meaningful_query_parameters_are_kept_in_a_stable_order() -> None:
    assert link_key("https://n.example/a?b=2&a=1&utm_source=x") == "u:n.example/a?a=1&b=2"
    assert link_key("https://n.example/caf%c3%a9?q=a b") == link_key(
        "https://n.example/caf%C3%A9?q=a+b")


@pytest.mark.parametrize("junk", [None, "", "ftp://n.example/a", "mailto:a@b.example",
                                  "/relative/path", "https://", "http://n.example:99999/a"])
def test_non_http_links_have_no_key(junk: str | None) -> None:
    assert link_key(junk) is None


def test_guids_url_guids_normalise_like_links_and_derived_ids_are_not_guids() -> None:
    assert guid_key("http://news.example.org/a/") == link_key("https://news.example.org/a")
    assert guid_key(" newsroom-48213 ") == "g:newsroom-48213"
    assert guid_key("tag:news.example.org,2026:7") == "g:tag:news.example.org,2026:7"
    assert guid_key(story_id("World", "Weather")) is None
    assert guid_key("") is None and guid_key(None) is None


def test_keys_are_bounded() -> None:
    long_url = "https://n.example/" + "a" * 3000
    key = link_key(long_url)
    assert key is not None and len(key) <= KEY_MAX and key.startswith("u:sha256:")
    assert key == link_key(long_url + "/")
    assert len(headline_key("word " * 400)) <= KEY_MAX


def test_identity_of_a_story() -> None:
    page_teaser = Story(id=story_id("World", "Weather"), section="World", headline="Weather")
    assert identity_keys(page_teaser) == frozenset()
    feed_item = Story(id="newsroom-1", section="World", headline="X",
                      url="http://n.example/x?utm_source=rss")
    assert identity_keys(feed_item) == {"g:newsroom-1", "u:n.example/x"}
    permalink = Story(id="https://n.example/x", section="World", headline="X",
                      url="http://n.example/x/")
    assert identity_keys(permalink) == {"u:n.example/x"}
