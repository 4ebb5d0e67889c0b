"""Variants: inline once per section set, fill per subscriber, same bytes as a full render."""

from __future__ import annotations

import shutil
from pathlib import Path

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from render_checks import check_html, check_text
from render_editions import (
    AS_OF,
    LIST,
    SITE,
    TEMPLATES,
    WEB,
    large_edition,
    make_renderer,
    person,
    seed_edition,
)

from digest import render
from digest.errors import RenderError
from digest.render import Personalisation, render_full
from digest.render.inline import inline_css
from digest.render.text import is_url_line
from digest.render.variant import make_markers

SEED = seed_edition()
LARGE = large_edition()
SMALL = large_edition(n_sections=3, per_section=3)


def full(edition, p, sections=None):
    return render_full(templates_dir=TEMPLATES, site=SITE, list_settings=LIST, web_base_url=WEB,
                       edition=edition, personalisation=p, sections=sections, as_of=AS_OF)


@pytest.fixture(scope="module")
def renderer():
    return make_renderer()


@pytest.mark.parametrize(("edition", "sections"), [
    (SEED, None), (LARGE, None), (SEED, frozenset({"Business", "Sports"})),
    (LARGE, frozenset({"Section 2", "Section 9"})), (SMALL, frozenset()),
])
def test_fill_is_identical_to_a_full_render(renderer, edition, sections):
    p = person('<b>Ana & "Bo"</b> O\'Neil')
    assert renderer.variant(edition, sections).fill(p) == full(edition, p, sections)


def test_a_name_with_markup_renders_literally(renderer):
    html, text = renderer.variant(SEED).fill(person('<b>Ana & "Bo"</b>'))
    hello = lxml.html.document_fromstring(html).find(".//p[@class='hello']")
    assert hello.text_content() == 'Hi <b>Ana & "Bo"</b>,'
    assert len(hello) == 0  # no <b> element was injected
    assert 'Hi <b>Ana & "Bo"</b>,' in text.splitlines()


def test_no_name_gets_a_plain_greeting(renderer):
    html, text = renderer.variant(SEED).fill(person(None))
    assert "Hello," in text.splitlines()
    assert lxml.html.document_fromstring(html).find(".//p[@class='hello']").text == "Hello,"
    assert renderer.variant(SEED).fill(person("   ")) == (html, text)


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
url_tails = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF,
                                  blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, tail=url_tails)
def test_fill_matches_full_render_for_any_name_and_url(renderer, name, tail):
    p = Personalisation(email="x@example.org", name=name,
                        unsubscribe_url=f"{WEB}/u/{tail}?a=1&b='{tail}'",
                        manage_url=f"{WEB}/m/{tail}#frag", browser_url=f"{WEB}/e?q={tail}")
    html, text = renderer.variant(SMALL).fill(p)
    assert (html, text) == full(SMALL, p)
    href = lxml.html.document_fromstring(html).xpath("//a[text()='Unsubscribe']/@href")[0]
    assert href == renderer.variant(SMALL).slot_values(p)[1]["unsubscribe_url"]
    assert href in text.splitlines()
    assert all(len(line) <= 78 or is_url_line(line) for line in text.splitlines())


def test_slot_urls_are_escaped_for_html_and_raw_in_text(renderer):
    p = person()
    html_values, text_values = renderer.variant(SEED).slot_values(p)
    assert html_values["unsubscribe_url"] == f"{WEB}/unsubscribe/tok123?list=daily&amp;x=1"
    assert text_values["unsubscribe_url"] == p.unsubscribe_url
    html, text = renderer.variant(SEED).fill(p)
    doc = lxml.html.document_fromstring(html)
    assert doc.xpath("//a[text()='Unsubscribe']/@href") == [p.unsubscribe_url]
    assert doc.xpath("//a[text()='Manage your sections']/@href") == [p.manage_url]
    assert doc.xpath("//a[contains(text(), 'View in')]/@href") == [p.browser_url] * 2
    for url in (p.unsubscribe_url, p.manage_url, p.browser_url):
        assert url in text.splitlines()


def test_relative_slot_urls_are_refused(renderer):
    bad = Personalisation(email="x@example.org", name=None, unsubscribe_url="/u/abc",
                          manage_url=f"{WEB}/m", browser_url=f"{WEB}/e")
    with pytest.raises(RenderError, match="unsubscribe_url"):
        renderer.variant(SEED).fill(bad)


def test_segments_and_slots_alternate(renderer):
    variant = renderer.variant(SEED)
    assert len(variant.html_segments) == len(variant.html_slots) + 1
    assert len(variant.text_segments) == len(variant.text_slots) + 1
    assert set(variant.html_slots) == {"greeting", "unsubscribe_url", "manage_url",
                                       "browser_url"}
    assert set(variant.text_slots) == set(variant.html_slots)


def test_markers_survive_premailer_inside_href_and_text():
    markers = make_markers("0123abcdef")
    doc = ("<!DOCTYPE html><html><head><style>a{color:#112233}</style></head><body>"
           f"<p>{markers['greeting']}</p><a href=\"{markers['unsubscribe_url']}\">u</a>"
           f"<img src=\"https://x.example/i.png\" alt=\"{markers['greeting']}\"></body></html>")
    out = inline_css(doc)
    for name in ("greeting", "unsubscribe_url"):
        assert out.count(markers[name]) == (2 if name == "greeting" else 1)
    assert f'href="{markers["unsubscribe_url"]}"' in out


def test_sections_choose_the_variant_and_the_lead_always_shows(renderer):
    html, text = renderer.variant(SEED, frozenset({"sports", "Health", "Nope"})).fill(person())
    doc = lxml.html.document_fromstring(html)
    assert [h.text for h in doc.iter("h2")] == ["Sports", "Health"]
    assert doc.find(".//h1") is not None
    assert "BUSINESS" not in text and "SPORTS" in text
    lead_only, _ = renderer.variant(SEED, frozenset()).fill(person())
    doc = lxml.html.document_fromstring(lead_only)
    assert doc.find(".//h2") is None and doc.find(".//h1") is not None
    assert check_html(lead_only) == []


def test_variants_are_built_once_and_cached(monkeypatch):
    calls = []

    def counting(html, *, template="email/edition.html"):
        calls.append(template)
        return inline_css(html, template=template)

    monkeypatch.setattr(render, "inline_css", counting)
    renderer = make_renderer()
    first = renderer.variant(SEED, frozenset({"Sports"}))
    assert renderer.variant(SEED, frozenset({"sports"})) is first
    assert renderer.variant(SEED, frozenset({"Sports", "Unknown"})) is first
    for i in range(50):
        first.fill(person(f"Reader {i}", token=f"t{i}"))
    assert len(calls) == 1
    everything = renderer.variant(SEED)
    assert everything is not first and len(calls) == 2
    assert renderer.variant(SEED, frozenset(SEED.section_names)) is everything
    assert len(calls) == 2


def test_a_different_edition_object_is_not_served_from_the_cache():
    renderer = make_renderer(cache_size=1)
    one = renderer.variant(SEED)
    other = seed_edition()
    assert renderer.variant(other) is not one
    assert renderer.variant(other).fill(person()) == one.fill(person())


def test_a_slot_in_the_wrong_place_is_refused(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    footer = templates / "email" / "_footer.html"
    footer.write_text(footer.read_text(encoding="utf-8").replace(
        "<p class=\"address\">", "<p class=\"address\">{{ unsubscribe_url }} "),
        encoding="utf-8")
    with pytest.raises(RenderError, match="unsubscribe_url somewhere other than a whole href"):
        make_renderer(templates).variant(SEED)
    text = templates / "email" / "edition.txt"
    shutil.copy(TEMPLATES / "email" / "_footer.html", footer)
    text.write_text(text.read_text(encoding="utf-8").replace(
        '{{ _("Unsubscribe:") }}\n{{ unsubscribe_url }}', "Unsubscribe: {{ unsubscribe_url }}"),
        encoding="utf-8")
    with pytest.raises(RenderError, match="a line of its own"):
        make_renderer(templates).variant(SEED)


def test_render_full_needs_no_renderer(tmp_path: Path):
    html, text = full(SEED, person())
    assert check_html(html) == [] and check_text(text) == []
