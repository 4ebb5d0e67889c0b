"""A French newsroom: its edition, its emails and every web page a reader sees are French.

A list with ``language = "fr"`` is built from a French feed through the real pipeline; the
subscriber's message (subject, HTML part, plaintext part), the confirmation emails and each
web page (sign-up, confirmation, preferences, unsubscribe, archive, errors) are checked for
English words that our own templates and code could have left, and for ``lang="fr"``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import lxml.html
import pytest
from test_web import maildir_messages

from digest import tokens
from digest.config import Settings, load_settings
from digest.pipeline import MessageFactory, build_edition
from digest.store import open_store
from digest.web import create_app

REPO = Path(__file__).resolve().parent.parent
FEED = Path(__file__).resolve().parent / "fixtures" / "feeds" / "french.rss"
KEY = "french-test-signing-key-0123456789"
BASE = "https://news.example.fr/digest"
AS_OF = datetime(2025, 8, 25, 6, 0, tzinfo=UTC)

# English words our templates, catalogs or code could leave behind, none of them also a French
# word (so not "confirmation", "content", "large", "sent", "ignore", "tue", "mon", "oct"...):
# the fixed strings' words, date and age words, and the commonest function words.
ENGLISH = frozenset(re.findall(r"\w+", """
    the your you here is was were from by read full story view browser unsubscribe
    unsubscribed subscribe subscribed subscription manage managed receiving because hello hi
    ago just now hour hours day days links link email emails preferences preference confirm
    please check inbox skip past edition editions optional leave empty save send again not
    found sections choose works already sign up requests request too many try soon
    something wrong went bad allowed newsletters our shown told expired valid latest instead
    want them yours alone who copy closed ticked added later whole waiting follow finish
    understood buttons folder nothing arrived few address name and of to in for with this
    that will get no more what which monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    wed thu fri sat sun jan feb apr jun jul aug sep dec
"""))
_URL = re.compile(r"(?:https?://|mailto:)\S+")
_WORD = re.compile(r"[^\W\d_]+")


def english_words(text: str) -> list[str]:
    """The English words in ``text`` (URLs left out: they are addresses, not words)."""
    return sorted({w for w in _WORD.findall(_URL.sub(" ", text).casefold()) if w in ENGLISH})


def visible_text(html: str) -> str:
    """What a reader sees or hears: text, and the attributes read out or shown."""
    doc = lxml.html.document_fromstring(html)
    for bad in doc.xpath("//style | //script"):
        bad.drop_tree()
    parts = [doc.text_content()]
    for attr in ("alt", "title", "aria-label", "aria-roledescription", "placeholder"):
        parts += doc.xpath(f"//@{attr}")
    parts += doc.xpath("//input[@type='submit' or @type='button']/@value")  # not hidden ones
    return " ".join(parts)


def assert_french_page(html: str) -> None:
    assert re.search(r'<html lang="fr" dir="ltr"', html), html[:300]
    assert english_words(visible_text(html)) == [], visible_text(html)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "digest.toml"
    config.write_text(textwrap.dedent(f"""\
        [digest]
        work_dir = "var"
        templates_dir = "{REPO / 'templates'}"
        [site]
        name = "Le Matin"
        url = "https://news.example.fr"
        postal_address = "Le Matin, 12 rue de la Presse, 69002 Lyon"
        domain = "news.example.fr"
        [web]
        base_url = "{BASE}"
        [lists.quotidien]
        title = "La Matinale"
        language = "fr"
        sources = ["{FEED}"]
        sections = ["Politique", "Monde", "Économie", "Culture"]
        lead_section = "Politique"
        timezone = "Europe/Paris"
        from = "Le Matin <matinale@news.example.fr>"
        subject = "{{title}} du {{weekday}} {{date:%d %B %Y}} : {{lead_headline}}"
        """), encoding="utf-8")
    return load_settings(config, env={"DIGEST_SECRET_KEY": KEY})


def test_the_french_email_has_no_english_left(settings: Settings) -> None:
    lst = settings.get_list("quotidien")
    edition = asyncio.run(build_edition(settings, lst, store=None, as_of=AS_OF)).edition
    factory = MessageFactory(settings, lst, edition, as_of=AS_OF)
    for name in ("Amélie", None):
        raw = factory.message(email="amelie@example.fr", name=name, sections=None,
                              subscriber_id=3, message_id="<m3@news.example.fr>")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        subject = str(message["Subject"])
        assert subject.startswith("La Matinale du lundi 25 août 2025 : Le conseil municipal")
        assert english_words(subject) == []
        html = message.get_body(preferencelist=("html",)).get_content()
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert_french_page(html)
        assert english_words(text) == [], text
        assert ('lang="fr"' in html.split("<body", 1)[1]
                and 'aria-roledescription="courriel"' in html)
        greeting = "Bonjour Amélie," if name else "Bonjour,"
        for part in (html, text):
            for words in (greeting, "Voici votre La Matinale, de la part de Le Matin.",
                          "lundi 25 août 2025", "il y a 50 minutes", "Par Camille Durand",
                          "Vous recevez La Matinale à la suite de votre abonnement"):
                assert words in " ".join(part.split()), words
        for words in ("Voir en ligne", "Lire l’article complet", "Gérer vos rubriques",
                      "Se désabonner", "Voir dans votre navigateur", "il y a 2 minutes",
                      "11 août 2025"):
            assert words in html, words
        for words in ("Lire l’article complet\u00a0: [1]", "LIENS", "Se désabonner\u00a0:",
                      "Gérer vos rubriques\u00a0:", "Voir dans votre navigateur\u00a0:"):
            assert words in text, words


async def test_every_web_page_and_confirmation_email_is_french(settings: Settings) -> None:
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        app = create_app(settings, store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://news.example.fr") as client:
            await _walk_the_pages(client, store, settings)


async def _walk_the_pages(client: httpx.AsyncClient, store, settings: Settings) -> None:
    seen: list[str] = []

    async def page(method: str, path: str, status: int = 200, **kwargs) -> httpx.Response:
        response = await client.request(method, path, **kwargs)
        assert response.status_code == status, (path, response.text)
        assert_french_page(response.text)
        seen.append(f"{method} {path.split('/')[2]} {status}")
        return response

    await page("GET", "/digest/")
    form = await page("GET", "/digest/subscribe/quotidien")
    assert "Adresse électronique" in form.text and "S’abonner" in form.text
    await page("POST", "/digest/subscribe/quotidien", 400, data={"email": "pas une adresse"})
    await page("POST", "/digest/subscribe/quotidien", 400,
               data={"email": "a@example.fr", "name": "=?utf-8?q?x?="})
    done = await page("POST", "/digest/subscribe/quotidien",
                      data={"email": "lea@example.fr", "sections": ["Monde"]})
    assert "Consultez votre boîte de réception" in done.text and "7\u00a0jours" not in done.text

    [confirmation] = maildir_messages(settings)
    link = _check_french_email(confirmation, "Confirmez votre abonnement à La Matinale")
    await page("GET", link.removeprefix("https://news.example.fr"))
    await page("POST", link.removeprefix("https://news.example.fr"))
    await page("POST", "/digest/subscribe/quotidien", data={"email": "lea@example.fr"})
    [already] = [m for m in maildir_messages(settings)
                 if m["Message-ID"] != confirmation["Message-ID"]]  # the folder is unordered
    _check_french_email(already, "Cette adresse est déjà abonnée à La Matinale")

    member = store.get_membership("quotidien", "lea@example.fr")
    sid = member.subscriber_id
    manage = "/digest/manage/" + tokens.make_manage_token((KEY,), sid, "quotidien")
    unsubscribe = "/digest/unsubscribe/" + tokens.make_unsubscribe_token((KEY,), sid,
                                                                         "quotidien")
    await page("GET", manage)
    await page("POST", manage, 400, data={"action": "save"})  # no section ticked
    saved = await page("POST", manage, data={"action": "save", "sections": ["Monde"]})
    assert "Vos préférences sont enregistrées." in saved.text
    await page("POST", manage, 400, data={"action": "nonsense"})
    await page("GET", unsubscribe)
    await page("POST", unsubscribe)
    await page("GET", unsubscribe)  # "this address is not subscribed"
    await page("GET", manage)  # the "subscribe again" form
    pending = store.request_subscription("quotidien", "zoe@example.fr").member
    await page("GET", "/digest/manage/" + tokens.make_manage_token(
        (KEY,), pending.subscriber_id, "quotidien"))

    await page("GET", "/digest/archive/quotidien")  # no edition yet
    edition = (await build_edition(settings, settings.get_list("quotidien"), store=None,
                                   as_of=AS_OF)).edition
    record = store.record_edition(edition)
    store.add_subscriber("quotidien", "paul@example.fr")  # an edition nobody gets stays private
    assert store.publish_edition(record.id, message_id_domain="news.example.fr",
                                 now=datetime.now(UTC)) == 1
    index = await page("GET", "/digest/archive/quotidien")
    assert "25 août 2025" in index.text
    archived = await page("GET", "/digest/archive/quotidien/2025-08-25")
    assert "Bonjour," in archived.text
    await page("GET", "/digest/archive/quotidien/1999-01-01", 404)
    await page("GET", "/digest/archive/quotidien/nope", 404)
    await page("GET", "/digest/links/quotidien")
    await page("GET", "/digest/nowhere", 404)
    await page("GET", "/digest/unsubscribe/not-a-token", 400)
    await page("GET", "/digest/confirm/not-a-token", 400)
    old = tokens.make_confirm_token((KEY,), pending.subscriber_id, "quotidien",
                                    now=datetime(2020, 1, 1, tzinfo=UTC))
    await page("GET", f"/digest/confirm/{old}", 400)  # expired
    await page("DELETE", "/digest/subscribe/quotidien", 405)
    await page("POST", "/digest/subscribe/quotidien", 403, data={"email": "v@example.fr"},
               headers={"origin": "https://ailleurs.example"})  # a form on another site
    await page("POST", "/digest/subscribe/quotidien", 413, data={"email": "x" * 100_000})
    for _ in range(10):  # the sign-up limit per network
        response = await client.post("/digest/subscribe/quotidien",
                                     data={"email": "x@example.fr"})
        if response.status_code == 429:
            break
    assert response.status_code == 429
    assert_french_page(response.text)
    assert len(seen) == 30, seen


def _check_french_email(message: email.message.EmailMessage, subject: str) -> str:
    """The confirmation-style email is French in every part; returns its link."""
    assert str(message["Subject"]) == subject
    assert english_words(subject) == []
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert english_words(text) == [], text
    assert_french_page(html)
    assert text.startswith("Bonjour")
    return re.findall(rf"{re.escape(BASE)}/\S+", text)[0]
