"""The render stage: an Edition becomes inlined HTML and plaintext variants with slots.

Rendering and CSS inlining cost tens of milliseconds, so they run once per edition and
section variant (:meth:`Renderer.variant`, cached); a subscriber's email is then only
string joins (:meth:`RenderedVariant.fill`). :func:`render_full` is the slow reference that
renders everything per subscriber; tests prove both give the same output. Each variant keeps
the HTML under the size budget by dropping teasers (reported in ``RenderedVariant.dropped``)
and fills its own subject and preheader from the teasers it keeps.

Relative ages ("3 hours ago") are measured from the edition's scheduled send time (its date
at the list's ``send_time``) or the newest story in it, whichever is later, unless the
renderer is given ``as_of``; older than a week shows the date.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import jinja2

from digest import i18n
from digest.config import ListSettings, SiteSettings
from digest.errors import RenderError
from digest.models import Edition
from digest.render.budget import (
    HTML_BUDGET,
    SLOT_RESERVE,
    STYLE_BUDGET,
    estimate_drop_count,
    pick_drops,
    style_bytes,
    transfer_encoding,
    transmitted_size,
)
from digest.render.context import build_context, reference_now, variant_subject_preheader
from digest.render.environment import make_environment
from digest.render.inline import inline_css
from digest.render.text import tidy_text, wrap_greeting
from digest.render.variant import (
    URL_SLOTS,
    Drop,
    Personalisation,
    RenderedVariant,
    greeting_for,
    make_markers,
    normalise_url,
    split_at_markers,
)

__all__ = ["HTML_TEMPLATE", "TEXT_TEMPLATE", "Drop", "Personalisation", "RenderedVariant",
           "Renderer", "render_full", "variant_label"]

HTML_TEMPLATE = "email/edition.html"
TEXT_TEMPLATE = "email/edition.txt"


class Renderer:
    """Renders the variants of editions of one list; thread-safe, caches recent variants.

    :param templates_dir: the folder holding ``email/edition.html`` and ``email/edition.txt``.
    :param web_base_url: the public address of the web app (templates see it as
        ``web_base_url``).
    :param as_of: "now" for relative ages; see the module docstring for the default.
    :param budget: bytes allowed for the transmitted HTML part.
    :param cache_size: how many variants to keep.
    :raises RenderError: when the templates cannot be found or do not compile.
    """

    def __init__(self, *, templates_dir: Path, site: SiteSettings, list_settings: ListSettings,
                 web_base_url: str, as_of: datetime | None = None, budget: int = HTML_BUDGET,
                 cache_size: int = 64) -> None:
        self.site = site
        self.list_settings = list_settings
        self.web_base_url = web_base_url
        self.as_of = as_of
        self.budget = budget
        env = make_environment(Path(templates_dir), list_settings.language)
        # The list's catalogs, loaded once: every fixed word is translated per variant.
        self.translations = i18n.load_translations(list_settings.language, Path(templates_dir))
        _ = self.translations.gettext
        self.greetings = (_("Hi %(name)s,"), _("Hello,"))
        self._html_template = _load(env, HTML_TEMPLATE)
        self._text_template = _load(env, TEXT_TEMPLATE)
        self.markers = make_markers(secrets.token_hex(5))
        self._cache: OrderedDict[tuple[int, frozenset[str]], tuple[Edition, RenderedVariant]]
        self._cache = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def effective_sections(self, edition: Edition,
                           sections: frozenset[str] | None) -> frozenset[str]:
        """The edition's sections a subscriber sees (names compared case-insensitively)."""
        if sections is None:
            return frozenset(edition.section_names)
        wanted = {s.casefold() for s in sections}
        return frozenset(n for n in edition.section_names if n.casefold() in wanted)

    def variant(self, edition: Edition, sections: frozenset[str] | None = None) -> RenderedVariant:
        """The inlined variant of ``edition`` showing ``sections`` (None: all) and the lead.

        Built on first use, then served from the cache.

        :raises RenderError: when a template or the inliner fails, or the edition cannot fit
            the size budget even without teasers.
        """
        chosen = self.effective_sections(edition, sections)
        key = (id(edition), chosen)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is edition:
                self._cache.move_to_end(key)
                return hit[1]
            built = self._build(edition, chosen)
            self._cache[key] = (edition, built)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return built

    def _render(self, edition: Edition, sections: frozenset[str], dropped: list[tuple[str, str]],
                values: dict[str, str], text_greeting: str) -> tuple[str, str]:
        context = build_context(
            edition=edition, site=self.site, lst=self.list_settings, sections=sections,
            dropped=frozenset(story_id for _, story_id in dropped),
            now=reference_now(edition, self.list_settings, self.as_of),
            web_base_url=self.web_base_url, slots=values, greeting_text=text_greeting,
            translations=self.translations)
        try:
            html = self._html_template.render(context)
            text = self._text_template.render(context)
        except jinja2.TemplateError as exc:
            raise RenderError(f"Rendering the email templates failed ({exc.__class__.__name__}: "
                              f"{exc}); fix the template.") from exc
        return inline_css(html, template=HTML_TEMPLATE), tidy_text(text)

    def plan(self, edition: Edition, sections: frozenset[str]
             ) -> tuple[str, str, list[tuple[str, str]], int]:
        """Render with markers, dropping teasers until the HTML fits the budget.

        :returns: ``(html, text, dropped (section, story id) pairs, transmitted size)``.
        """
        dropped: list[tuple[str, str]] = []
        total = sum(len(sec.teasers) for sec in edition.sections if sec.name in sections)
        while True:
            html, text = self._render(edition, sections, dropped, self.markers,
                                      self.markers["greeting"])
            size = transmitted_size(html)
            if size + SLOT_RESERVE <= self.budget:
                return html, text, dropped, size
            left = total - len(dropped)
            if left == 0:
                raise RenderError(f"The edition of {edition.date} for list "
                                  f"{self.list_settings.name!r} is {size} bytes of HTML even "
                                  f"without teasers, over the {self.budget} byte budget; "
                                  "shorten the lead or the templates.")
            count = estimate_drop_count(size + SLOT_RESERVE, self.budget, left)
            dropped.extend(pick_drops(edition, sections, dropped, count))

    def _build(self, edition: Edition, sections: frozenset[str]) -> RenderedVariant:
        html, text, dropped, size = self.plan(edition, sections)
        html_segments, html_slots = split_at_markers(html, self.markers, html=True,
                                                     template=HTML_TEMPLATE)
        text_segments, text_slots = split_at_markers(text, self.markers, html=False,
                                                     template=TEXT_TEMPLATE)
        headlines = {s.id: s.headline for sec in edition.sections for s in sec.teasers}
        drops = tuple(Drop(section, story_id, headlines[story_id])
                      for section, story_id in dropped)
        gone = {story_id for _, story_id in dropped}
        subject, preheader = variant_subject_preheader(
            edition, self.list_settings, self.site,
            [s.headline for sec in edition.sections if sec.name in sections
             for s in sec.teasers if s.id not in gone])
        warnings = []
        if drops:
            warnings.append(f"Dropped {len(drops)} teaser(s) from the "
                            f"{variant_label(edition, sections)} variant to keep the HTML "
                            f"under {self.budget // 1024} KB: " + "; ".join(
                                f"{d.section}: {d.headline}" for d in drops))
        styles = style_bytes(html)
        if styles > STYLE_BUDGET:
            warnings.append(f"The <style> blocks hold {styles} bytes, over Gmail's "
                            f"{STYLE_BUDGET} byte limit; Gmail will ignore them.")
        return RenderedVariant(
            sections=sections, html_segments=html_segments, html_slots=html_slots,
            text_segments=text_segments, text_slots=text_slots, html_size=size,
            dropped=drops, warnings=tuple(warnings), subject=subject, preheader=preheader,
            greetings=self.greetings, html_encoding=transfer_encoding(html)[0],
            text_encoding=transfer_encoding(text)[0])

    def render_for(self, edition: Edition, personalisation: Personalisation,
                   sections: frozenset[str] | None = None) -> tuple[str, str]:
        """A full per-subscriber render + inline (slow: the reference for :meth:`fill`)."""
        chosen = self.effective_sections(edition, sections)
        _, _, dropped, _ = self.plan(edition, chosen)
        greeting = greeting_for(personalisation.name, *self.greetings)
        values = {"greeting": greeting}
        for slot in URL_SLOTS:
            values[slot] = normalise_url(getattr(personalisation, slot), slot=slot)
        return self._render(edition, chosen, dropped, values, wrap_greeting(greeting))


def variant_label(edition: Edition, sections: frozenset[str]) -> str:
    """How reports name a variant: "all-sections", or its sections ("Sports", "Business +
    World") in the edition's order."""
    if set(edition.section_names) <= sections:
        return "all-sections"
    return " + ".join(n for n in edition.section_names if n in sections) or "lead-only"


def render_full(*, templates_dir: Path, site: SiteSettings, list_settings: ListSettings,
                web_base_url: str, edition: Edition, personalisation: Personalisation,
                sections: frozenset[str] | None = None,
                as_of: datetime | None = None) -> tuple[str, str]:
    """The ``(html, text)`` of one subscriber's email by a full Jinja2 render and inline.

    The reference that proves :meth:`RenderedVariant.fill` right; too slow to send with.
    The teasers dropped for size are chosen as for the variant.
    """
    renderer = Renderer(templates_dir=templates_dir, site=site, list_settings=list_settings,
                        web_base_url=web_base_url, as_of=as_of)
    return renderer.render_for(edition, personalisation, sections)


def _load(env: jinja2.Environment, name: str) -> jinja2.Template:
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"The template {exc.name} is missing from the templates folder; "
                          "restore it.") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"The template {exc.name or name} has a syntax error on line "
                          f"{exc.lineno} ({exc.message}); fix it.") from exc
