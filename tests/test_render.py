"""The render stage: templates, Premailer inlining, the checklist and the size budget."""

from __future__ import annotations

import email.policy
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import lxml.html
import pytest
from render_checks import check_html, check_text, media_rules
from render_editions import (
    AS_OF,
    LIST,
    SITE,
    TEMPLATES,
    large_edition,
    make_renderer,
    person,
    seed_edition,
)

from digest.errors import RenderError
from digest.i18n import load_translations
from digest.models import Image
from digest.render import Renderer
from digest.render.budget import (
    HTML_BUDGET,
    SLOT_RESERVE,
    base64_size,
    qp_size,
    transfer_encoding,
    transmitted_size,
)
from digest.render.context import reference_now
from digest.render.environment import relative_time
from digest.render.inline import inline_css


@pytest.fixture(scope="module")
def seed_mail() -> tuple[str, str]:
    return make_renderer().variant(seed_edition()).fill(person())


@pytest.fixture(scope="module")
def large_variant():
    return make_renderer().variant(large_edition())


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- the checklist on real editions -------------------------------------------------------

def test_seed_edition_passes_every_static_check(seed_mail):
    html, text = seed_mail
    edition = seed_edition()
    assert check_html(html, subject=edition.subject, postal_address=SITE.postal_address) == []
    assert check_text(text, unsubscribe_url=person().unsubscribe_url,
                      postal_address=SITE.postal_address) == []


def test_seed_edition_shows_the_lead_and_every_teaser(seed_mail):
    html, _ = seed_mail
    doc = lxml.html.document_fromstring(html)
    edition = seed_edition()
    assert doc.findtext(".//h1").strip() == edition.lead.headline
    headlines = [" ".join(h.text_content().split()) for h in doc.iter("h3")]
    assert headlines == [s.headline for sec in edition.sections for s in sec.teasers]
    sections = [h.text_content().strip() for h in doc.iter("h2")]
    assert sections == [sec.name for sec in edition.sections]
    # page stories have no URL: no button, no linked headline
    assert "Read the full story" not in html
    assert doc.find(".//h1/a") is None
    first_paragraph = edition.lead.body[0].text
    assert first_paragraph in doc.text_content()


def test_large_edition_passes_every_check_and_fits_the_budget(large_variant):
    html, text = large_variant.fill(person())
    assert check_html(html, postal_address=SITE.postal_address, all_classes_used=True) == []
    assert check_text(text, unsubscribe_url=person().unsubscribe_url,
                      postal_address=SITE.postal_address) == []
    assert large_variant.html_size + SLOT_RESERVE <= HTML_BUDGET
    assert transmitted_size(html) <= HTML_BUDGET


def test_large_edition_without_summaries_fits_whole():
    variant = make_renderer().variant(large_edition(summaries=False))
    assert variant.dropped == ()
    html, _ = variant.fill(person())
    assert len(lxml.html.document_fromstring(html).findall(".//h3")) == 100


def test_lead_image_keeps_hand_written_size_and_alt(large_variant):
    html, _ = large_variant.fill(person())
    img = lxml.html.document_fromstring(html).find(".//img")
    assert (img.get("width"), img.get("height")) == ("600", "338")
    assert img.get("alt") == "Members of parliament voting"
    assert "height:auto" in img.get("style").replace(" ", "")


@pytest.mark.parametrize("url", ["http://cdn.example.org/a.jpg", "https://cdn.example.org/a.svg",
                                 "https://cdn.example.org/a.webp", "/relative.jpg"])
def test_images_clients_refuse_are_left_out(url):
    edition = large_edition(per_section=1)
    edition = replace(edition, lead=replace(edition.lead, image=Image(url, "x", 10, 10)))
    html, _ = make_renderer().variant(edition).fill(person())
    assert "<img" not in html


# --- Premailer done right ------------------------------------------------------------------

def test_media_queries_keep_important_after_inlining(seed_mail):
    html, _ = seed_mail
    head = lxml.html.document_fromstring(html).find(".//head")
    css = "".join(s.text for s in head.iter("style"))
    rules = media_rules(css)
    assert {r.media.mediaText for r in rules} == {"screen and (max-width: 599px)",
                                                  "(prefers-color-scheme: dark)"}
    declarations = [p for r in rules for inner in r.cssRules for p in inner.style]
    assert len(declarations) > 20
    assert all(p.priority == "important" for p in declarations)


def test_inlining_keeps_six_digit_colours_and_inlines_classes(seed_mail):
    html, _ = seed_mail
    brand = lxml.html.document_fromstring(html).find(".//p[@class='brand serif']")
    assert "color:#1f1d1a" in brand.find("a").get("style").replace(" ", "")
    assert not re.search(r"#[0-9a-f]{3}\b(?![0-9a-f])", html, re.IGNORECASE)


def test_conditional_comments_survive_byte_for_byte(seed_mail):
    html, _ = seed_mail
    source = (TEMPLATES / "email" / "base.html").read_text(encoding="utf-8")
    wanted = re.findall(r"<!--\[if.*?<!\[endif\]-->", source, re.DOTALL)
    assert re.findall(r"<!--\[if.*?<!\[endif\]-->", html, re.DOTALL) == wanted
    assert len(wanted) == 3


@pytest.mark.parametrize("link", ['<link rel="stylesheet" href="http://127.0.0.1:9/x.css">',
                                  '<style>@import url("http://127.0.0.1:9/x.css");</style>'])
def test_external_css_is_refused_before_any_fetch(link):
    with pytest.raises(RenderError, match="external stylesheet"):
        inline_css(f"<!DOCTYPE html><html><head>{link}</head><body><p>x</p></body></html>")


def test_cssutils_errors_fail_and_warnings_stay_quiet(capsys):
    ok = inline_css("<!DOCTYPE html><html><head><style>p{mso-line-height-rule:exactly;"
                    "-webkit-text-size-adjust:100%;color:#102030}</style></head>"
                    "<body><p>x</p></body></html>")
    assert 'style="mso-line-height-rule:exactly' in ok
    assert capsys.readouterr().err == ""
    with pytest.raises(RenderError, match="cssutils"):
        inline_css("<!DOCTYPE html><html><head><style>p{color:}</style></head>"
                   "<body><p>x</p></body></html>")


def test_a_newsroom_restyles_by_editing_templates_alone(tmp_path):
    templates = copy_templates(tmp_path)
    edit(templates / "email" / "base.html", ".kicker { margin: 6px 0 0; font-size: 12px;",
         ".kicker { margin: 6px 0 0; font-size: 15px;")
    edit(templates / "email" / "_footer.html", "You are receiving", "You get")
    html, _ = make_renderer(templates).variant(seed_edition()).fill(person())
    kicker = lxml.html.document_fromstring(html).find(".//p[@class='kicker sans']")
    assert "font-size:15px" in kicker.get("style").replace(" ", "")
    assert "You get Morning Briefing" in html


def test_undefined_variables_and_broken_templates_are_render_errors(tmp_path):
    templates = copy_templates(tmp_path)
    edit(templates / "email" / "_footer.html", "{{ site.postal_address }}", "{{ site.fax }}")
    with pytest.raises(RenderError, match="fax"):
        make_renderer(templates).variant(seed_edition())
    edit(templates / "email" / "edition.html", "{% block content %}", "{% block content %")
    with pytest.raises(RenderError, match="syntax error"):
        make_renderer(templates)
    with pytest.raises(RenderError, match="does not exist"):
        make_renderer(tmp_path / "nowhere")


def test_story_text_is_escaped_in_html_and_plain_in_text():
    edition = large_edition(n_sections=1, per_section=1)
    sec = edition.sections[0]
    teaser = replace(sec.teasers[0], headline='Fish & <script>alert("x")</script> "chips"')
    edition = replace(edition, sections=(replace(sec, teasers=(teaser,)),))
    html, text = make_renderer().variant(edition).fill(person())
    assert "<script" not in html
    h3 = lxml.html.document_fromstring(html).find(".//h3")
    assert h3.text_content() == teaser.headline
    assert 'Fish & <script>alert("x")</script> "chips"' in text


def test_style_over_16_kb_is_warned(tmp_path):
    templates = copy_templates(tmp_path)
    filler = "".join(f".unused{i} {{ color: #123456 !important; }}\n" for i in range(600))
    edit(templates / "email" / "base.html", "@media (prefers-color-scheme: dark) {",
         filler + "@media (prefers-color-scheme: dark) {")
    variant = make_renderer(templates).variant(seed_edition())
    assert any("16384" in w and "<style>" in w for w in variant.warnings)
    assert not any("<style>" in w for w in make_renderer().variant(seed_edition()).warnings)


def test_output_is_deterministic():
    one = make_renderer().variant(large_edition()).fill(person())
    two = make_renderer().variant(large_edition()).fill(person())
    assert one == two


# --- size budget ------------------------------------------------------------------------------

def test_budget_drops_from_the_longest_sections_first_and_reports_it():
    edition = large_edition(n_sections=3, per_section=8)
    sec = edition.sections
    edition = replace(edition, sections=(sec[0], replace(sec[1], teasers=sec[1].teasers[:3]),
                                         replace(sec[2], teasers=sec[2].teasers[:6])))
    full = make_renderer(budget=10**9).variant(edition)
    assert full.dropped == ()
    budget = full.html_size + SLOT_RESERVE - 4000
    variant = make_renderer(budget=budget).variant(edition)
    assert variant.html_size + SLOT_RESERVE <= budget
    assert variant.dropped, "a smaller budget must drop teasers"
    first = variant.dropped[0]
    assert (first.section, first.story_id, first.headline) == (
        "Section 1", sec[0].teasers[-1].id, sec[0].teasers[-1].headline)
    kept = {s.name: len(s.teasers) for s in edition.sections}
    for drop in variant.dropped:
        kept[drop.section] -= 1
    assert kept["Section 2"] == 3  # the short section is untouched
    assert max(kept.values()) - min(kept["Section 1"], kept["Section 3"]) <= 1
    assert any("Dropped" in w for w in variant.warnings)
    html, text = variant.fill(person())
    for drop in variant.dropped:
        assert drop.headline not in html and drop.headline not in text


def test_an_edition_that_cannot_fit_is_an_error():
    with pytest.raises(RenderError, match="even without teasers"):
        make_renderer(budget=12 * 1024).variant(large_edition(n_sections=2, per_section=2))


def test_transmitted_size_counts_quoted_printable_and_crlf(seed_mail):
    assert qp_size("abc") == transmitted_size("abc") == 5  # "abc" CRLF
    assert qp_size("é") == len("=C3=A9\r\n")
    assert transmitted_size("x" * 200) == 200 + 2 + 3 * 2  # two soft breaks, three CRLF
    html, _ = seed_mail
    # RFC 2045 caps quoted-printable lines at 76; Python's default policy allows 78, so
    # our count is the larger, conservative one
    policy = email.policy.SMTP.clone(max_line_length=76)
    message = EmailMessage(policy=policy)
    message.set_content(html, subtype="html", cte="quoted-printable")
    body = message.as_bytes(policy=policy).split(b"\r\n\r\n", 1)[1]
    assert transfer_encoding(html) == ("quoted-printable", len(body))
    assert transmitted_size(html) == len(body)


@pytest.mark.parametrize("text", ["Привет, мир\n", "東京で記者会見が行われました。\n" * 400,
                                  "<p>Москва</p>\n" * 900])
def test_transmitted_size_counts_base64_when_that_is_smaller(text):
    """Mostly non-Latin text is smaller in base64: the budget counts what is sent."""
    message = EmailMessage(policy=email.policy.SMTP)
    message.set_content(text, subtype="html", cte="base64")
    body = message.as_bytes().split(b"\r\n\r\n", 1)[1]
    assert base64_size(text) == len(body)
    assert transfer_encoding(text) == ("base64", len(body)) and len(body) < qp_size(text)
    assert transmitted_size(text) == len(body)


# --- time -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("delta", "label", "french"), [
    (timedelta(seconds=20), "just now", "à l’instant"),
    (timedelta(minutes=1), "1 minute ago", "il y a 1 minute"),
    (timedelta(minutes=59), "59 minutes ago", "il y a 59 minutes"),
    (timedelta(hours=3), "3 hours ago", "il y a 3 heures"),
    (timedelta(hours=23, minutes=59), "23 hours ago", "il y a 23 heures"),
    (timedelta(days=1, hours=2), "1 day ago", "il y a 1 jour"),
    (timedelta(days=6), "6 days ago", "il y a 6 jours"),
    (timedelta(days=7), "Aug 18, 2025", "18 août 2025"),
    (-timedelta(hours=2), "just now", "à l’instant"),
])
def test_relative_time(delta, label, french):
    assert relative_time(AS_OF - delta, AS_OF, UTC) == label
    assert relative_time(AS_OF - delta, AS_OF, UTC, "fr", load_translations("fr")) == french


def test_reference_now_is_the_send_time_or_the_newest_story():
    edition = seed_edition()
    scheduled = datetime(2025, 8, 25, 7, 0, tzinfo=LIST.timezone)
    assert reference_now(edition, LIST, None) == scheduled
    late = replace(edition, lead=replace(edition.lead, published_at=scheduled + timedelta(hours=5)))
    assert reference_now(late, LIST, None) == scheduled + timedelta(hours=5)
    assert reference_now(edition, LIST, AS_OF) == AS_OF


def test_renderer_without_as_of_uses_the_scheduled_send_time():
    renderer = Renderer(templates_dir=TEMPLATES, site=SITE, list_settings=LIST,
                        web_base_url="https://digest.example.org")
    edition = large_edition(n_sections=1, per_section=1, as_of=datetime(2025, 8, 25, 6, 0,
                                                                         tzinfo=UTC))
    html, _ = renderer.variant(edition).fill(person())
    # the teaser is 2 h before 06:00 UTC; the list sends at 07:00 London (06:00 UTC)
    assert "2 hours ago" in html
