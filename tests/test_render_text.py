"""The plaintext part: its own template, wrapped at 78, links as numbered references."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from render_checks import check_text
from render_editions import SITE, large_edition, make_renderer, person, seed_edition

from digest.render.text import LINE_WIDTH, LinkRefs, is_url_line, reference, tidy_text, wrap_text

LONG_URL = "https://news.example.org/" + "very-long-path/" * 8 + "?utm_source=digest&x=1"


@pytest.fixture(scope="module")
def large_text() -> str:
    return make_renderer().variant(large_edition(summaries=False)).fill(person())[1]


def test_seed_text_has_title_lead_paragraphs_and_every_teaser_by_section():
    edition = seed_edition()
    _, text = make_renderer().variant(edition).fill(person())
    assert check_text(text, unsubscribe_url=person().unsubscribe_url,
                      postal_address=SITE.postal_address) == []
    lines = text.splitlines()
    assert lines[0] == "THE MORNING LEDGER"
    assert lines[1] == "Morning Briefing - Monday, August 25, 2025"  # CLDR's "en" full date
    flat = " ".join(text.split())
    assert edition.lead.headline in flat
    paragraphs = [b.text for b in edition.lead.body if b.kind == "paragraph"]
    assert " ".join(paragraphs[0].split()) in flat
    assert " ".join(paragraphs[2].split()) in flat
    assert " ".join(paragraphs[3].split()) not in flat  # only the first paragraphs
    position = 0
    for section in edition.sections:
        position = text.index(f"\n{section.name.upper()}\n", position)
        for teaser in section.teasers:
            assert f"- {teaser.headline}" in text[position:]
    assert "[1]" not in text  # page stories have no links to number


def test_every_link_is_a_numbered_reference(large_text):
    edition = large_edition(summaries=False)
    refs = dict(re.findall(r"^\[(\d+)\][ \n](\S+)$", large_text, re.MULTILINE))
    urls = [edition.lead.url] + [s.url for sec in edition.sections for s in sec.teasers]
    assert list(refs.values()) == urls
    assert list(refs) == [str(n) for n in range(1, len(urls) + 1)]
    assert f"{edition.lead.headline} [1]" in " ".join(large_text.split())
    assert "Read the full story: [1]" in large_text
    headline = edition.sections[0].teasers[0].headline
    assert f"- {headline} [2]" in large_text


def test_large_text_passes_the_checks(large_text):
    assert check_text(large_text, unsubscribe_url=person().unsubscribe_url,
                      postal_address=SITE.postal_address) == []
    long_lines = [line for line in large_text.splitlines() if len(line) > LINE_WIDTH]
    assert all(is_url_line(line) for line in long_lines)


def test_long_urls_and_long_names_keep_lines_in_bounds():
    edition = large_edition(n_sections=1, per_section=1)
    sec = edition.sections[0]
    teaser = replace(sec.teasers[0], url=LONG_URL,
                     headline="A headline with &amp; entity-looking text & a very long tail " * 2)
    edition = replace(edition, sections=(replace(sec, teasers=(teaser,)),))
    p = replace(person("Maximiliana " * 10), unsubscribe_url=LONG_URL)
    _, text = make_renderer().variant(edition).fill(p)
    assert f"[2]\n{LONG_URL}" in text
    long_lines = [line for line in text.splitlines() if len(line) > LINE_WIDTH]
    assert long_lines and all(is_url_line(line) for line in long_lines)
    assert "Hi Maximiliana" in text
    # the headline's own "&amp;" is content, but must not be doubled into an entity
    assert "&amp;amp;" not in text


def test_no_markup_in_text_even_from_markup_in_html_sources():
    edition = large_edition(n_sections=1, per_section=1)
    lead = replace(edition.lead, summary="Plain summary.", summary_html="<p><b>Bold</b></p>")
    _, text = make_renderer().variant(replace(edition, lead=lead)).fill(person())
    assert "<b>" not in text and "Plain summary." in text


@given(st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")),
                                  min_size=1, max_size=120),
                          st.just(LONG_URL)), max_size=40),
       st.sampled_from(["", "- ", "  "]))
def test_wrap_text_keeps_words_and_widths(words, indent):
    text = " ".join(words)
    wrapped = wrap_text(text, LINE_WIDTH, indent, "  " if indent else "")
    for line in wrapped.split("\n"):
        assert len(line) <= LINE_WIDTH or is_url_line(line)
    expected = "".join((indent + text).split()) if text.strip() else ""
    assert "".join(wrapped.split()) == expected


def test_reference_lines():
    assert reference(3, "https://a.example/x") == "[3] https://a.example/x"
    assert reference(12, LONG_URL) == f"[12]\n{LONG_URL}"


def test_link_refs_number_each_url_once():
    refs = LinkRefs()
    assert [refs.ref(u) for u in ("https://a", None, "https://b", "https://a")] == [1, None, 2, 1]
    assert refs.links == [(1, "https://a"), (2, "https://b")]


def test_tidy_text():
    assert tidy_text("a  \r\n\n\n\nb\n\n") == "a\n\nb\n"


def test_summary_parts_link_the_runs_the_sanitised_html_links() -> None:
    from digest.render.context import StoryView, SummaryPart, summary_parts

    parts = summary_parts(
        "The council voted. Read the explainer.",
        '<p>The council voted.</p><p><a href="https://ex.org/e" rel="noopener">Read the '
        "<em>explainer</em></a>.</p>")
    assert parts == (SummaryPart("The council voted. "),
                     SummaryPart("Read the explainer", "https://ex.org/e"), SummaryPart("."))
    # A link whose text the shortened summary lost, or an unsafe one, stays text.
    assert summary_parts("Short.", '<a href="https://ex.org/x">Gone</a>') == (
        SummaryPart("Short."),)
    assert summary_parts("Go here.", '<a href="javascript:x()">here</a>') == (
        SummaryPart("Go here."),)
    assert summary_parts("", None) == ()
    view = StoryView(id="s", section="World", headline="h", url=None, summary="x",
                     paragraphs=(), image=None, author=None, published_at=None, time_label="",
                     ref=None, summary_parts=(
                         SummaryPart("word " * 20), SummaryPart("the long linked text here",
                                                                "https://ex.org/l", 3),
                         SummaryPart(" and the rest " * 5)))
    cut = view.summary_within(120)
    assert cut[0].url is None and cut[1].url == "https://ex.org/l" and cut[-1].text == "…"
    assert len("".join(p.text for p in cut)) <= 120
    assert view.summary_with_refs().startswith("word word") and "here [3] and" in \
        view.summary_with_refs()
    short = StoryView(**{**view.__dict__, "summary_parts": (SummaryPart("Fits."),)})
    assert short.summary_within(140) == (SummaryPart("Fits."),)
