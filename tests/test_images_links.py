"""A story's image (format, avatar, alt text) and its links (relative, https upgrade, counted)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.models import Image, Story
from digest.sources import parse_feed
from digest.sources.images import ImageRef, alt_text, choose_image, email_format
from digest.sources.links import secure_links

MRSS = 'xmlns:media="http://search.yahoo.com/mrss/"'


def item_feed(body: str, extra_ns: str = MRSS) -> bytes:
    return (
        f'<rss version="2.0" {extra_ns}><channel><title>t</title>'
        "<link>https://site.example.org/</link>\n"
        f"<item><title>Story</title><link>https://site.example.org/s</link>{body}</item>"
        "\n</channel></rss>"
    ).encode()


def image_of(body: str) -> Image | None:
    return parse_feed(item_feed(body), source="s", section_map={}).stories[0].image


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "mime", "ok"),
    [
        ("https://e.example.org/a.jpg", None, True),
        ("https://e.example.org/a.JPEG?w=600", "image/jpeg", True),
        ("https://e.example.org/a.png", "image/png", True),
        ("https://e.example.org/a.gif", None, True),
        ("https://e.example.org/photo?id=5", None, False),  # nothing says it is one
        ("https://e.example.org/photo?id=5", "image/jpeg", True),  # the declared type says
        ("https://e.example.org/photo.php?id=5", "image/jpeg", False),  # not an image file
        ("https://e.example.org/photo?id=5", "image/webp", False),  # the declared type says
        ("https://e.example.org/a.webp", None, False),
        ("https://e.example.org/a.webp", "image/jpeg", False),  # the suffix says
        ("https://e.example.org/a.jpg", "image/avif", False),
        ("https://e.example.org/a.svg", None, False),
        ("https://e.example.org/a.heic", "image/heic", False),
    ],
)
def test_only_jpeg_png_and_gif_by_type_and_suffix(url: str, mime: str | None, ok: bool) -> None:
    assert email_format(url, mime) is ok


def test_a_webp_served_without_a_suffix_is_passed_over_for_the_next_image() -> None:
    image = image_of(
        '<media:content url="https://site.example.org/photo?id=5" type="image/webp" medium="image"/>'
        '<enclosure url="https://site.example.org/photo?id=6" type="image/jpeg" length="1"/>'
    )
    assert image == Image(url="https://site.example.org/photo?id=6")


def test_an_image_whose_format_nothing_declares_is_left_out() -> None:
    """medium="image" says it is an image, not which format: no type and no suffix is
    not a known JPEG, PNG or GIF."""
    assert image_of('<media:content url="https://site.example.org/cdn/x9" medium="image"/>') \
        is None
    assert image_of(
        '<media:content url="https://site.example.org/cdn/x9" medium="image"/>'
        '<media:thumbnail url="https://site.example.org/cdn/x9-t.png"/>'
    ) == Image(url="https://site.example.org/cdn/x9-t.png")


def test_a_json_feed_image_takes_the_type_its_attachment_declares() -> None:
    """The issue's own example: the same URL as "image" and as a WebP attachment."""
    import json

    def feed(attachment_type: str) -> bytes:
        return json.dumps({
            "version": "https://jsonfeed.org/version/1.1", "title": "t",
            "home_page_url": "https://ex.org/",
            "items": [{"id": "1", "title": "Story", "url": "https://ex.org/s",
                       "content_text": "Text.", "image": "https://ex.org/photo?id=5",
                       "attachments": [{"url": "https://ex.org/photo?id=5",
                                        "mime_type": attachment_type}]}]}).encode()

    webp = parse_feed(feed("image/webp"), source="f.json", section_map={})
    assert webp.stories[0].image is None
    jpeg = parse_feed(feed("image/jpeg"), source="f.json", section_map={})
    assert jpeg.stories[0].image == Image(url="https://ex.org/photo?id=5")


def test_avatars_are_never_the_story_image_and_thumbnails_come_last() -> None:
    image = image_of(
        '<media:thumbnail url="https://site.example.org/thumb.jpg"/>'
        '<media:content url="https://secure.gravatar.com/avatar/1?s=96" medium="image"/>'
        '<media:content url="https://site.example.org/cdn/x9" medium="image">'
        "<media:title>author-avatar</media:title></media:content>"
        '<media:content url="https://site.example.org/big.jpg" medium="image" width="1200"'
        ' height="800"/>'
    )
    assert image == Image(url="https://site.example.org/big.jpg", width=1200, height=800)


def test_is_default_wins_within_a_group() -> None:
    image = image_of(
        "<media:group>"
        '<media:content url="https://site.example.org/small.jpg" medium="image"/>'
        '<media:content url="https://site.example.org/main.jpg" medium="image" isDefault="true"/>'
        "<media:description>Main view of the harbour</media:description>"
        "</media:group>"
    )
    assert image == Image(url="https://site.example.org/main.jpg", alt="Main view of the harbour")


# --- alt text and captions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "alt"),
    [
        (
            ('<media:content url="https://site.example.org/a.jpg" medium="image">'
            '<media:description type="html">Crowds at the &lt;b&gt;harbour&lt;/b&gt;'
            "</media:description></media:content>"),
            "Crowds at the harbour",
        ),
        (
            ('<media:content url="https://site.example.org/a.jpg" medium="image">'
            "<media:title>The new ferry at dawn</media:title></media:content>"),
            "The new ferry at dawn",
        ),
        (
            ("<media:description>Item-level caption of the photo</media:description>"
            '<enclosure url="https://site.example.org/e.jpg" type="image/jpeg" length="1"/>'),
            "Item-level caption of the photo",
        ),
        (
            ('<media:content url="https://site.example.org/DSC_0042.jpg" medium="image">'
            "<media:title>DSC_0042.jpg</media:title></media:content>"),
            "",
        ),
        (
            ('<media:content url="https://site.example.org/sunset.jpg" medium="image">'
            "<media:title>sunset</media:title></media:content>"),
            "",  # the file's own name
        ),
    ],
)
def test_alt_text_comes_from_media_descriptions_and_titles(body: str, alt: str) -> None:
    image = image_of(body)
    assert image is not None and image.alt == alt


def test_an_atom_enclosure_title_is_its_alt_text() -> None:
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b"<entry><title>Story</title><id>urn:1</id><link href='https://site.example.org/s'/>"
        b"<link rel='enclosure' type='image/png' href='https://site.example.org/m.png'"
        b" title='Map of the new tram line'/></entry></feed>"
    )
    image = parse_feed(data, source="s", section_map={}).stories[0].image
    assert image == Image(url="https://site.example.org/m.png", alt="Map of the new tram line")


@pytest.mark.parametrize("order", ["caption first", "caption last"])
def test_a_caption_never_replaces_the_article_text(order: str) -> None:
    caption = (
        '<media:content url="https://site.example.org/a.jpg" medium="image">'
        "<media:description>Photo: Staff photographer</media:description></media:content>"
    )
    article = "<content:encoded><![CDATA[<p>The article itself.</p>]]></content:encoded>"
    body = caption + article if order == "caption first" else article + caption
    ns = f'{MRSS} xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    story = parse_feed(item_feed(body, ns), source="s", section_map={}).stories[0]
    assert story.summary == "The article itself."
    assert story.image is not None and story.image.alt == "Photo: Staff photographer"


def test_an_image_caption_alone_is_not_a_summary() -> None:
    body = (
        '<media:content url="https://site.example.org/a.jpg" medium="image">'
        "<media:description>Photo: Staff photographer</media:description></media:content>"
    )
    story = parse_feed(item_feed(body), source="s", section_map={}).stories[0]
    assert story.summary is None


def test_alt_text_helpers() -> None:
    assert alt_text((None, None), ("featured1", "html"), ("A real title", None)) == "A real title"
    assert alt_text(("https://e.example.org/x.jpg", None)) == ""
    assert len(alt_text(("word " * 100, None))) <= 250
    refs = [ImageRef("/rel/a.jpg", kind="content")]
    assert choose_image(refs, base_url="https://site.example.org/feed/") == Image(
        url="https://site.example.org/rel/a.jpg"
    )
    assert choose_image([ImageRef("ftp://e.example.org/a.jpg")]) is None


# --- links in the email ---------------------------------------------------------------------


def story(url: str, image: str | None = None, summary_html: str | None = None) -> Story:
    return Story(
        id=url, section="News", headline="H", url=url, summary_html=summary_html,
        image=Image(image) if image else None, published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_http_links_on_the_sites_own_host_become_https() -> None:
    stories = [
        story(
            "http://news.example.org/a",
            image="http://www.news.example.org/a.jpg",
            summary_html='<p><a href="http://news.example.org:80/b" rel="noopener">b</a></p>',
        ),
        story("https://news.example.org/c"),
    ]
    out, warnings = secure_links(stories, source="s", site_url="https://news.example.org")
    assert out[0].url == "https://news.example.org/a"
    assert out[0].image == Image("https://www.news.example.org/a.jpg")
    assert out[0].summary_html == (
        '<p><a href="https://news.example.org/b" rel="noopener">b</a></p>'
    )
    assert out[1] is stories[1]
    assert warnings == []


def test_other_http_links_are_kept_and_counted() -> None:
    stories = [
        story("http://other.example.com/a", image="http://other.example.com/a.jpg"),
        story("http://other.example.com/b"),
        story("http://news.example.org/c"),
    ]
    out, warnings = secure_links(stories, source="feed.rss", site_url="http://news.example.org")
    assert [s.url for s in out] == [s.url for s in stories]  # an http site: nothing upgraded
    assert [w.reason for w in warnings] == [
        ("3 links on http:// rather than https:// were kept as written "
        "(e.g. http://other.example.com/a)"),
        ("1 image on http:// rather than https:// will not be shown in the email "
        "(e.g. http://other.example.com/a.jpg)"),
    ]
    assert all(w.source == "feed.rss" for w in warnings)


def test_the_fetched_address_is_the_base_and_xml_base_still_wins() -> None:
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b"<entry><title>Plain</title><id>urn:1</id><link href='one'/></entry>"
        b"<entry xml:base='https://other.example.org/b/'><title>Based</title><id>urn:2</id>"
        b"<link href='two'/></entry></feed>"
    )
    result = parse_feed(data, source="s", section_map={},
                        document_url="https://feeds.example.org/a/feed.xml")
    assert [s.url for s in result.stories] == [
        "https://feeds.example.org/a/one",
        "https://other.example.org/b/two",
    ]
    # A file has no address: relative links use the channel's link, else the item is skipped.
    result = parse_feed(data, source="s", section_map={})
    assert [s.url for s in result.stories] == ["https://other.example.org/b/two"]
    assert "has a relative link 'one'" in result.skipped[0].reason
