"""Messages outside an edition (the confirmation and "already subscribed" emails, the editors'
notices) are written by the same header code as the editions: encoded header lines within 76
characters (RFC 2047 section 2), base64 when smaller, and nothing built another way."""

from __future__ import annotations

import ast
import email
import email.policy
import mailbox
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from test_mail_encoding import assert_rfc2047_lines, decoded

from digest.config import Settings, load_settings
from digest.mail.notice import EditorNotice, notice_message
from digest.mail.single import single_message
from digest.store import open_store
from digest.web import create_app

REPO = Path(__file__).resolve().parent.parent
FEED = Path(__file__).resolve().parent / "fixtures" / "feeds" / "french.rss"
# The review's sender: From was folded to a 78-character line, the Subject to 77.
FROM_NAME = "Rédaction du Quotidien du Matin — Édition spéciale des abonnés francophones"
TITLE = "La Matinale des abonnés francophones — édition spéciale du week-end"
HEADERS = ("From", "To", "Subject", "Reply-To")


def all_header_lines_fit(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for line in head.split("\r\n"):
        assert len(line) <= (76 if "=?" in line else 78), line


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
        base_url = "https://news.example.fr/digest"
        [lists.matin]
        title = "{TITLE}"
        language = "fr"
        sources = ["{FEED}"]
        sections = ["Politique", "Monde"]
        timezone = "Europe/Paris"
        from = "{FROM_NAME} <matinale@news.example.fr>"
        reply_to = "Courrier des lecteurs du Quotidien — réponses <lecteurs@news.example.fr>"
        """), encoding="utf-8")
    return load_settings(config, env={"DIGEST_SECRET_KEY": "single-message-key-0123456789"})


def raw_maildir(settings: Settings) -> list[bytes]:
    box = mailbox.Maildir(settings.maildir, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


async def test_the_web_emails_fold_like_the_editions(settings: Settings) -> None:
    """POST /subscribe twice (a confirmation, then "already subscribed"): every header line
    within its limit, the values decode back, and the text part's link line is the
    catalog's (French puts a no-break space before the colon)."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        app = create_app(settings, store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://news.example.fr") as client:
            response = await client.post("/digest/subscribe/matin",
                                         data={"email": "lea@example.fr"})
            assert response.status_code == 200, response.text
            store.add_subscriber("matin", "max@example.fr", confirmed=True, name="Max")
            response = await client.post("/digest/subscribe/matin",
                                         data={"email": "max@example.fr"})
            assert response.status_code == 200, response.text
    messages = raw_maildir(settings)
    assert len(messages) == 2
    for raw in messages:
        all_header_lines_fit(raw)
        for name in ("From", "Subject"):
            assert len(assert_rfc2047_lines(raw, name)) > 1, name  # long: folded
        assert decoded(raw, "From") == f"{FROM_NAME} <matinale@news.example.fr>"
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert TITLE in decoded(raw, "Subject") and parsed["Auto-Submitted"] == "auto-generated"
        text = parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
        html = parsed.get_body(preferencelist=("html",)).get_content()
        assert ("Confirmer mon abonnement\u00a0:\nhttps://" in text
                or "Mes préférences\u00a0:\nhttps://" in text), text
        assert 'lang="fr"' in html


def test_editor_notices_fold_like_the_editions() -> None:
    notice = EditorNotice(kind="review", list_name="matin", list_title=TITLE, edition_id=4,
                          day="2026-11-28", subject="Le conseil municipal adopte le budget "
                          "après une nuit de débats — les élus de l’opposition quittent la salle",
                          due="07:00 Europe/Paris", closes="09:00 Europe/Paris")
    raw = notice_message(notice, from_header=f"{FROM_NAME} <matinale@news.example.fr>",
                         to="ana@example.fr", message_id="<n1@news.example.fr>",
                         date=datetime(2026, 11, 28, 5, tzinfo=UTC))
    all_header_lines_fit(raw)
    assert len(assert_rfc2047_lines(raw, "Subject")) > 1
    assert len(assert_rfc2047_lines(raw, "From")) > 1
    assert decoded(raw, "Subject") == f"[Review] {TITLE}, 2026-11-28: {notice.subject}"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert "is ready for review" in parsed.get_content()


def test_a_non_latin_body_goes_in_base64_when_smaller() -> None:
    kwargs = {"from_header": "Новости <news@example.ru>", "to": "ivan@example.ru",
              "subject": "Подтвердите подписку", "message_id": "<x@example.ru>",
              "date": datetime(2026, 11, 28, 5, tzinfo=UTC)}
    russian = "Пожалуйста, подтвердите, что вы хотите получать рассылку.\n" * 20
    raw = single_message(text=russian, html=f"<p>{russian}</p>", **kwargs)  # type: ignore[arg-type]
    assert raw.count(b"Content-Transfer-Encoding: base64") == 2
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n") \
        == russian
    plain = single_message(text="Please confirm.\n", **kwargs)  # type: ignore[arg-type]
    assert b"Content-Transfer-Encoding: quoted-printable" in plain
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76


def test_no_module_builds_a_message_another_way() -> None:
    """Every message digest writes goes through digest/mail/headers.py: no module makes an
    ``EmailMessage`` or serialises one with the standard library's folding (parsing
    received mail, as the bounce reader does, is fine)."""
    offenders = []
    for path in (REPO / "digest").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("EmailMessage", "MIMEText", "MIMEMultipart", "as_bytes",
                            "as_string", "set_content", "add_alternative"):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert offenders == []
