"""Editions and settings for the render tests, built directly from digest.models."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.config import ListSettings, SiteSettings
from digest.models import Block, Edition, EditionSection, Image, Story, story_id
from digest.render import Personalisation, Renderer

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
SEED_PAGE = Path(__file__).resolve().parent / "fixtures" / "pages" / "seed.txt"
WEB = "https://digest.example.org"
AS_OF = datetime(2025, 8, 25, 6, 0, tzinfo=UTC)

SITE = SiteSettings(
    name="The Morning Ledger",
    url="https://news.example.org",
    postal_address="The Morning Ledger, 1 Press Row, Springfield 12345",
    domain="news.example.org",
)

LIST = ListSettings(
    name="daily",
    title="Morning Briefing",
    sources=(),
    sections=("Politics", "World", "Business", "Top Stories", "Sports", "Health",
              "Entertainment", "Lifestyle", "Technology"),
    section_map={},
    lead_section="Politics",
    teasers_per_section=10,
    max_age=None,
    timezone=ZoneInfo("Europe/London"),
    send_time=time(7, 0),
    from_name="The Morning Ledger",
    from_email="briefing@news.example.org",
    reply_to=None,
    subject="{lead_headline}",
    preheader="{teaser_headlines}",
    relay=None,
)

_AGE = re.compile(r"^(?P<section>.*?)(?P<n>\d+)\s+(?P<unit>minute|hour|day|week|month)s?\s+ago$")
_UNIT = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1),
         "week": timedelta(weeks=1), "month": timedelta(days=30)}


def _is_subheading(text: str) -> bool:
    return len(text) < 80 and not text.endswith((".", "!", "?", ":", "”", "\""))


def seed_edition(as_of: datetime = AS_OF) -> Edition:
    """The edition the seed page yields: its lead and its teasers grouped by section.

    Page stories have no URLs, so this edition has no story links at all.
    """
    text = SEED_PAGE.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    blocks = text.split("\n-\n")
    first = [line.strip() for line in blocks[0].split("\n") if line.strip()]
    section, headline, body = first[0], first[1], first[2:]
    lead = Story(
        id=story_id(section, headline), section=section, headline=headline,
        body=tuple(Block("subheading" if _is_subheading(t) else "paragraph", t) for t in body),
        source="seed.txt", is_lead=True)
    by_section: dict[str, list[Story]] = {}
    for block in blocks[1:]:
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if len(lines) < 2:
            continue
        m = _AGE.match(lines[0])
        assert m, lines[0]
        published = as_of - int(m["n"]) * _UNIT[m["unit"]]
        story = Story(id=story_id(m["section"], lines[1]), section=m["section"],
                      headline=lines[1], published_at=published, source="seed.txt")
        by_section.setdefault(m["section"], []).append(story)
    sections = tuple(
        EditionSection(name, tuple(sorted(by_section[name], key=lambda s: s.published_at,
                                          reverse=True)))
        for name in LIST.sections if name in by_section)
    return Edition(list_name="daily", date=date(2025, 8, 25), subject=headline,
                   preheader="; ".join(s.teasers[0].headline for s in sections),
                   lead=lead, sections=sections)


_WORDS = ["Council", "approves", "new", "budget", "for", "riverside", "park", "after", "months", "of", "debate", "among", "residents", "and", "local", "business", "owners", "who", "feared", "rising", "costs"]


def large_edition(n_sections: int = 10, per_section: int = 10, *, summaries: bool = True,
                  image: bool = True, as_of: datetime = AS_OF) -> Edition:
    """A synthetic edition of ``n_sections`` x ``per_section`` teasers with links."""
    lead = Story(
        id="lead-1", section="Politics",
        headline="Parliament Passes Landmark Climate Bill After All-Night Session",
        url="https://news.example.org/politics/climate-bill?ref=digest&utm_source=email",
        summary=("Lawmakers voted 312 to 290 in the early hours to adopt the bill, which sets "
                 "binding targets for 2035 and funds a new grid authority."),
        body=(Block("paragraph", "First paragraph of the lead."),),
        image=Image("https://cdn.example.org/img/climate.jpg", "Members of parliament voting",
                    1200, 675) if image else None,
        author="Dana Whitfield", published_at=as_of - timedelta(hours=3), is_lead=True)
    sections = []
    for i in range(n_sections):
        name = f"Section {i + 1}"
        teasers = []
        for j in range(per_section):
            words = _WORDS[j % 5: j % 5 + 9]
            teasers.append(Story(
                id=f"s{i}-t{j}", section=name,
                headline=f"{' '.join(words).capitalize()} ({i + 1}.{j + 1})",
                url=f"https://news.example.org/{i}/{j}/{'-'.join(words).lower()}",
                summary=" ".join(_WORDS[: 18 + j]) + "." if summaries else None,
                author="Sam Ortiz" if j % 3 == 0 else None,
                published_at=as_of - timedelta(hours=2 + i * 7 + j * 5)))
        sections.append(EditionSection(name, tuple(teasers)))
    return Edition(list_name="daily", date=date(2025, 8, 25), subject=lead.headline,
                   preheader="Climate bill passes; plus the day's news in ten sections",
                   lead=lead, sections=tuple(sections))


FRENCH_LIST = replace(LIST, name="quotidien", title="La Matinale du Ledger", language="fr",
                      sections=("Politique", "Monde", "Économie"))


def french_edition(as_of: datetime = AS_OF) -> Edition:
    """A French edition with long words and headlines (layout checks at 375 px)."""
    lead = Story(
        id="fr-lead", section="Politique",
        headline="Le conseil municipal adopte le nouveau plan de circulation du centre-ville",
        url="https://news.example.fr/politique/plan-de-circulation",
        summary=("Après six mois de concertation, les élus ont voté mardi soir la "
                 "piétonnisation de trois rues et la création de deux lignes de bus."),
        image=Image("https://cdn.example.org/fr/conseil.jpg",
                    "Les élus réunis dans la salle du conseil", 1200, 675),
        author="Camille Durand-Lefèvre", published_at=as_of - timedelta(minutes=50),
        is_lead=True)
    headlines = {
        "Politique": ["Intercommunalité : la fusion des syndicats des eaux est approuvée",
                      "Budget participatif : quarante-deux projets soumis au vote"],
        "Monde": ["Élections au Chili : la participation atteint un niveau record",
                  "Sommet sur le climat : les négociations se prolongent jusqu’à samedi"],
        "Économie": ["Sécheresse : les agriculteurs de la vallée demandent des aides",
                     "La coopérative laitière embauche quarante saisonniers"],
    }
    sections = tuple(
        EditionSection(name, tuple(
            Story(id=f"fr-{name}-{j}", section=name, headline=headline,
                  url=f"https://news.example.fr/{j}", author="Inès Moreau" if j else None,
                  summary="Les candidatures sont ouvertes jusqu’à la fin du mois prochain.",
                  published_at=as_of - timedelta(hours=2 + 9 * j))
            for j, headline in enumerate(items)))
        for name, items in headlines.items())
    return Edition(list_name="quotidien", date=date(2025, 8, 25), subject=lead.headline,
                   preheader="Circulation, élections, sécheresse", lead=lead,
                   sections=sections)


def make_renderer(templates_dir: Path = TEMPLATES, **kwargs: object) -> Renderer:
    """A Renderer for the test list and site (``as_of`` fixed, so ages do not drift)."""
    kwargs.setdefault("as_of", AS_OF)
    kwargs.setdefault("list_settings", LIST)
    return Renderer(templates_dir=templates_dir, site=SITE, web_base_url=WEB,
                    **kwargs)  # type: ignore[arg-type]


def person(name: str | None = "Ana", token: str = "tok123") -> Personalisation:
    """A subscriber's personalisation with links under :data:`WEB`."""
    return Personalisation(email="ana@example.org", name=name,
                           unsubscribe_url=f"{WEB}/unsubscribe/{token}?list=daily&x=1",
                           manage_url=f"{WEB}/manage/{token}",
                           browser_url=f"{WEB}/editions/daily/2025-08-25?t={token}")
