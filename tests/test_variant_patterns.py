"""Each section variant's subject and preheader come from the stories that variant shows."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from pathlib import Path

import lxml.html
from render_editions import LIST, SITE, TEMPLATES, WEB, large_edition, person
from test_cli import make_project

from digest import pipeline
from digest.config import load_settings
from digest.patterns import PREHEADER_MAX, SUBJECT_MAX, one_line
from digest.render import Renderer
from digest.render.budget import SLOT_RESERVE

PATTERNS = dataclasses.replace(LIST, subject="{story_count} stories: {lead_headline}",
                               preheader="{teaser_headlines}")


def renderer(**kwargs: object) -> Renderer:
    return Renderer(templates_dir=TEMPLATES, site=SITE, list_settings=PATTERNS,
                    web_base_url=WEB, **kwargs)  # type: ignore[arg-type]


def hidden_preheader(html: str) -> str:
    text = lxml.html.fromstring(html).find_class("preheader")[0].text_content()
    return text.split("\u034f")[0].strip()


def test_a_section_readers_preheader_names_their_stories() -> None:
    edition = large_edition(n_sections=3, per_section=3)
    heads = {sec.name: [s.headline for s in sec.teasers] for sec in edition.sections}
    every = renderer().variant(edition)
    second = renderer().variant(edition, frozenset({"Section 2"}))
    assert every.preheader == one_line(" · ".join(heads["Section 1"]), PREHEADER_MAX)
    assert second.preheader == one_line(" · ".join(heads["Section 2"]), PREHEADER_MAX)
    assert second.subject == f"4 stories: {edition.lead.headline}"
    assert every.subject == f"10 stories: {edition.lead.headline}"
    html, _ = second.fill(person())
    assert hidden_preheader(html) == second.preheader
    assert heads["Section 1"][0] not in hidden_preheader(html)
    lead_only = renderer().variant(edition, frozenset({"Astrology"}))
    assert lead_only.preheader == edition.lead.headline  # nothing but the lead to name


def test_teasers_dropped_for_size_are_not_advertised() -> None:
    edition = large_edition(n_sections=2, per_section=8)
    full = renderer(budget=10**9).variant(edition)
    tight = renderer(budget=full.html_size + SLOT_RESERVE - 3000).variant(edition)
    assert tight.dropped
    assert tight.subject == f"{1 + 16 - len(tight.dropped)} stories: {edition.lead.headline}"
    for drop in tight.dropped:
        assert drop.headline not in tight.preheader
    assert any("from the all-sections variant" in w for w in tight.warnings)


def test_each_variants_message_has_its_own_subject(tmp_path: Path, repo: Path) -> None:
    settings = load_settings(make_project(tmp_path, repo))
    lst = dataclasses.replace(settings.get_list("daily"), subject="{teaser_headlines}")
    edition = large_edition(n_sections=2, per_section=2)
    factory = pipeline.MessageFactory(settings, lst, edition, subject_prefix="[TEST] ")

    def subject(sections: frozenset[str] | None) -> str:
        data = factory.message(email="a@example.org", name=None, sections=sections,
                               subscriber_id=1, message_id="<m1@example.org>")
        return str(email.message_from_bytes(data, policy=email.policy.default)["Subject"])

    second = [s.headline for s in edition.sections[1].teasers]
    assert subject(frozenset({"Section 2"})) == "[TEST] " + one_line(" · ".join(second),
                                                                      SUBJECT_MAX)
    assert subject(None).startswith("[TEST] " + edition.sections[0].teasers[0].headline)
