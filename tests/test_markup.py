"""Text stays text, markup is de-tagged, blocks are boundaries, refused links leave no pointer."""

from __future__ import annotations

import pytest

from digest.sources import parse_feed
from digest.sources.markup import html_to_text, markup_to_text, sanitise_html
from digest.sources.text import clean_headline, clean_text


@pytest.mark.parametrize(
    "title",
    ["History of the <blink> tag", "Why a<b matters for x>y", "AT&amp;T is spelled with &amp;"],
)
def test_plain_text_keeps_everything_shaped_like_markup(title: str) -> None:
    assert clean_text(title) == title


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("Markets &amp; Money: <em>Rally</em>", "Markets & Money: Rally"),
        ("&lt;3 Deno", "<3 Deno"),
        ("<3 Deno", "<3 Deno"),
        ("One<br>Two<div>Three</div>", "One Two Three"),
        ("<script>alert(1)</script>Safe", "Safe"),
    ],
)
def test_markup_titles_are_de_tagged_without_full_stops(markup: str, text: str) -> None:
    assert clean_headline(markup) == text


def test_rss_title_type_decides() -> None:
    data = (
        b'<rss version="2.0"><channel>'
        b"<item><title>History of the &lt;blink&gt; tag</title><link>https://e.example.org/1</link></item>"
        b"<item><title>Big &lt;b&gt;news&lt;/b&gt; today</title><link>https://e.example.org/2</link></item>"
        b"</channel></rss>"
    )
    result = parse_feed(data, source="s", section_map={})
    # feedparser reports the first as text/plain, the second (a closing tag) as HTML.
    assert [s.headline for s in result.stories] == ["History of the <blink> tag", "Big news today"]


@pytest.mark.parametrize(
    ("html", "text", "sanitised"),
    [
        (
            "<div>Doors open at six.</div><div>Bring a dish</div>",
            "Doors open at six. Bring a dish",
            "<p>Doors open at six.</p><p>Bring a dish</p>",
        ),
        (
            "<ul><li>Apples</li><li>Pears</li></ul>",
            "Apples. Pears",
            "<ul><li>Apples</li><li>Pears</li></ul>",
        ),
        ("<h2>Schedule</h2>Monday", "Schedule. Monday", "<p><strong>Schedule</strong></p>Monday"),
        (
            "<table><tr><td>A</td><td>B</td></tr><tr><td>C</td></tr></table>",
            "A B. C",
            "<p> A  B <br> C <br></p>",
        ),
        ("Line<br>next", "Line next", "Line<br>next"),
        ("<p>Ends: </p><p>next</p>", "Ends: next", "<p>Ends: </p><p>next</p>"),
        ("<figure><figcaption>The hall</figcaption></figure>Enter", "The hall. Enter",
         "<p>The hall</p>Enter"),
    ],
)
def test_block_elements_are_boundaries_in_both_parts(html: str, text: str, sanitised: str) -> None:
    assert html_to_text(html) == text
    assert sanitise_html(html) == sanitised


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # a sentence that only points at a refused link goes with it
        ('<p>Council voted. Read the <a href="/explainer">explainer</a>.</p>', "Council voted."),
        ('<p>Votes counted. <a href="javascript:go()">Full results</a></p>', "Votes counted."),
        ('<p>Rain due. See <a href="/x">our forecast</a> for more. Dry later.</p>',
         "Rain due. Dry later."),
        # a link in running prose is only unwrapped
        ('<p>The <a href="javascript:x">mayor</a> said the budget was balanced today.</p>',
         "The mayor said the budget was balanced today."),
        # a live link in the same sentence keeps the sentence; only the dead link goes
        ('<p>More: <a href="/a">one</a> and <a href="https://e.example.org/b">two</a>.</p>',
         "More: and two."),
    ],
)
def test_refused_links_leave_no_dangling_pointer(html: str, text: str) -> None:
    assert html_to_text(html) == text
    assert " ".join(markup_to_text(sanitise_html(html)).split()) == text


def test_sanitised_html_has_only_the_allowlist() -> None:
    dirty = (
        '<div class="x" onclick="x()"><p style="color:red" lang="en">Hi '
        '<a href="https://a.example.org/" title="t" onmouseover="y()">a</a></p>'
        "<img src=x onerror=alert(1)><script>alert(2)</script><iframe></iframe><!-- c --></div>"
    )
    assert sanitise_html(dirty) == (
        '<p>Hi <a href="https://a.example.org/" rel="noopener">a</a></p>'
    )


@pytest.mark.parametrize(
    "html",
    [
        "<p>" + 'word <a href="javascript:x">link</a> ' * 20000 + "</p>",
        "<p>" + 'Read <a href="/x">it</a>. ' * 20000 + "</p>",
        "<div>" * 100000 + "t",
        "<a>" * 50000,
        "<table><tr><td>" * 20000,
    ],
    ids=["dead-links", "pointer-sentences", "nested-divs", "bare-anchors", "nested-tables"],
)
def test_hostile_summaries_finish_at_once(html: str) -> None:
    """Each of these once took minutes; a hang fails the run."""
    sanitised = sanitise_html(html)
    assert "javascript" not in sanitised
    html_to_text(html)
