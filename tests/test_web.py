"""The web app: one-click unsubscribe, preferences, double opt-in, archive, hardening.

In-process through httpx's ASGI transport against a real SQLite store, real Maildir/SMTP
servers on 127.0.0.1 for the confirmation emails, and one test against a real uvicorn.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from render_editions import seed_edition
from smtp_servers import smtp_server

from digest import tokens
from digest.config import Settings, load_settings
from digest.errors import StoreError
from digest.store import Store, open_store
from digest.web import create_app
from digest.web.middleware import redact_path
from digest.web.pages import mask_address

REPO = Path(__file__).resolve().parent.parent
KEY = "web-test-signing-key-0123456789"
BASE = "https://news.example.org/digest"
ALL_SECTIONS = ("Politics", "World", "Business", "Top Stories", "Sports", "Health",
                "Entertainment", "Lifestyle", "Technology")


def write_config(folder: Path, extra: str = "") -> Path:
    """A digest.toml shaped like the repository's, with its own work folder."""
    sections = ", ".join(f'"{s}"' for s in ALL_SECTIONS)
    path = folder / "digest.toml"
    path.write_text(textwrap.dedent(f"""\
        [digest]
        work_dir = "var"
        templates_dir = "{REPO / 'templates'}"

        [database]
        url = "sqlite:///digest.db"

        [site]
        name = "The Morning Ledger"
        url = "https://news.example.org"
        postal_address = "The Morning Ledger, 1 Press Row, Springfield 12345"
        domain = "news.example.org"

        [web]
        base_url = "{BASE}"
        host = "127.0.0.1"
        port = 8080

        [lists.daily]
        title = "Morning Briefing"
        sections = [{sections}]
        lead_section = "Politics"
        timezone = "Europe/London"
        from = "The Morning Ledger <briefing@news.example.org>"

        [lists.weekend]
        title = "Weekend Reads"
        sections = ["Lifestyle", "Technology", "World"]
        from = "The Morning Ledger <weekend@news.example.org>"
        """) + extra, encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path), env={"DIGEST_SECRET_KEY": KEY})


@pytest.fixture
def store(settings: Settings):
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as opened:
        yield opened


@pytest.fixture
async def client(settings: Settings, store: Store):
    app = create_app(settings, store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://news.example.org",
                                 follow_redirects=False) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def unsub(sid: int, list_name: str = "daily", keys: tuple[str, ...] = (KEY,)) -> str:
    return "/digest/unsubscribe/" + tokens.make_unsubscribe_token(keys, sid, list_name)


def manage_path(sid: int, list_name: str = "daily") -> str:
    return "/digest/manage/" + tokens.make_manage_token((KEY,), sid, list_name)


def status_of(store: Store, sid: int, list_name: str = "daily") -> str:
    return store.get_membership_by_id(sid, list_name).status


def maildir_messages(settings: Settings) -> list[email.message.EmailMessage]:
    if not settings.maildir.exists():
        return []
    box = mailbox.Maildir(settings.maildir, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            for key in box.iterkeys()]


def text_of(msg: email.message.EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def assert_clean_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert re.search(r"<p[^>]*>[^<]{10,}\.</p>", response.text), response.text


# --------------------------------------------------------------------------- unsubscribe


async def test_get_unsubscribe_asks_and_changes_nothing(client, store) -> None:
    sid = store.add_subscriber("daily", "ana.lopez@example.org", name="Ana")
    for method in ("GET", "HEAD"):
        response = await client.request(method, unsub(sid))
        assert response.status_code == 200
    response = await client.get(unsub(sid))
    assert "Unsubscribe from Morning Briefing?" in response.text
    assert "a•••@e•••.org" in response.text
    assert "ana.lopez@example.org" not in response.text
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert status_of(store, sid) == "active"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_one_click_post_unsubscribes_and_is_idempotent(client, store, encoding) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    other = store.add_subscriber("daily", "other@example.org")
    store.add_subscriber("weekend", "reader@example.org")
    kwargs = ({"data": {"List-Unsubscribe": "One-Click"}} if encoding == "urlencoded"
              else {"files": {"List-Unsubscribe": (None, "One-Click")}})
    first = await client.post(unsub(sid), **kwargs)
    assert first.status_code == 200
    assert "set-cookie" not in first.headers
    assert "You are unsubscribed from Morning Briefing" in first.text
    assert "subscribe again" in first.text and "/digest/manage/" in first.text
    assert status_of(store, sid) == "unsubscribed"
    second = await client.post(unsub(sid), **kwargs)
    assert second.status_code == 200
    assert status_of(store, sid) == "unsubscribed"
    # One list, one subscriber: nobody else is touched.
    assert status_of(store, sid, "weekend") == "active"
    assert status_of(store, other) == "active"
    # The page now says so instead of offering the button again.
    page = await client.get(unsub(sid))
    assert "You are not subscribed to Morning Briefing" in page.text


async def test_unsubscribe_during_a_send_stops_later_claims(client, store, settings) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    record = store.record_edition(seed_edition())
    assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                 now=datetime.now(UTC)) == 1
    assert (await client.post(unsub(sid), data={"List-Unsubscribe": "One-Click"})
            ).status_code == 200
    claims = store.claim_deliveries(record.id, worker_id="w1", limit=10,
                                    now=datetime.now(UTC), lease=timedelta(minutes=5))
    assert claims == []
    assert store.delivery_summary(record.id) == {"skipped": 1}


def _forged(sid: int) -> dict[str, str]:
    good = tokens.make_unsubscribe_token((KEY,), sid, "daily")
    return {
        "garbage": "not-a-token",
        "truncated": good[:-3],
        "extended": good + "x",
        "doubled-dot": good.replace(".", "..", 1),
        "other-key": tokens.make_unsubscribe_token(("someone-elses-key-0000",), sid, "daily"),
        "manage-salt": tokens.make_manage_token((KEY,), sid, "daily"),
        "confirm-salt": tokens.make_confirm_token((KEY,), sid, "daily"),
        "unknown-subscriber": tokens.make_unsubscribe_token((KEY,), sid + 999, "daily"),
        "other-list": tokens.make_unsubscribe_token((KEY,), sid, "weekend"),
        "unknown-list": tokens.make_unsubscribe_token((KEY,), sid, "nosuchlist"),
        "nul": "%00",
        "overlong": "A" * 600,
    }


@pytest.mark.parametrize("kind", list(_forged(1)))
async def test_bad_unsubscribe_tokens_get_400_and_change_nothing(client, store, kind) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    token = _forged(sid)[kind]
    for method in ("GET", "POST"):
        response = await client.request(method, f"/digest/unsubscribe/{token}",
                                        data={"List-Unsubscribe": "One-Click"}
                                        if method == "POST" else None)
        assert_clean_error(response, 400)
        assert "This link does not work" in response.text
    assert status_of(store, sid) == "active"


async def test_expired_unsubscribe_token_is_refused(settings, store) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    old = tokens.make_unsubscribe_token((KEY,), sid, "daily",
                                        now=datetime.now(UTC) - timedelta(days=400))
    app = create_app(settings, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://x") as c:
        response = await c.post(f"/unsubscribe/{old}")
    assert_clean_error(response, 400)
    assert "expired" in response.text


# --------------------------------------------------------------------------- manage


async def test_manage_shows_and_saves_sections(client, store) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    page = await client.get(manage_path(sid))
    assert page.status_code == 200
    boxes = re.findall(r'name="sections" value="([^"]+)"( checked)?', page.text)
    assert [name for name, _ in boxes] == list(ALL_SECTIONS)
    assert all(checked for _, checked in boxes)

    saved = await client.post(manage_path(sid), data={"action": "save",
                                                      "sections": ["World", "politics"]})
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    assert store.get_membership_by_id(sid, "daily").sections == {"Politics", "World"}
    ticked = re.findall(r'value="([^"]+)" checked', saved.text)
    assert ticked == ["Politics", "World"]

    everything = await client.post(manage_path(sid), data={"action": "save",
                                                           "sections": list(ALL_SECTIONS)})
    assert everything.status_code == 200
    assert store.get_membership_by_id(sid, "daily").sections is None


@pytest.mark.parametrize("sections, message", [
    (["World", "Cooking"], "Unknown section &#39;Cooking&#39;"),
    ([], "Tick at least one section"),
])
async def test_manage_rejects_unknown_or_no_sections(client, store, sections, message) -> None:
    sid = store.add_subscriber("daily", "reader@example.org", sections=["Sports"])
    response = await client.post(manage_path(sid), data={"action": "save",
                                                         "sections": sections})
    assert response.status_code == 400
    assert message in response.text
    assert store.get_membership_by_id(sid, "daily").sections == {"Sports"}


async def test_preferences_alias_and_unsubscribe_button(client, store) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    url = tokens.manage_url(BASE, tokens.make_manage_token((KEY,), sid, "daily"))
    page = await client.get(url)
    assert page.status_code == 200
    action = urljoin(url, re.search(r'<form method="post" action="([^"]+)"',
                                    page.text).group(1))
    assert action.startswith(BASE + "/unsubscribe/")
    assert (await client.post(action, data={"List-Unsubscribe": "One-Click"})
            ).status_code == 200
    assert status_of(store, sid) == "unsubscribed"
    again = await client.get(url)
    assert "Subscribe again" in again.text


async def test_manage_with_unsubscribe_token_or_bad_action_is_refused(client, store) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    wrong_salt = "/digest/manage/" + tokens.make_unsubscribe_token((KEY,), sid, "daily")
    assert_clean_error(await client.get(wrong_salt), 400)
    bad = await client.post(manage_path(sid), data={"action": "delete-everything"})
    assert bad.status_code == 400 and "could not be understood" in bad.text
    assert status_of(store, sid) == "active"


# --------------------------------------------------------------------------- subscribe


def _confirm_link(msg: email.message.EmailMessage) -> str:
    found = re.findall(r"^(https://\S+/confirm/\S+?)\r?$", text_of(msg), re.MULTILINE)
    assert len(found) == 1, text_of(msg)
    return found[0]


async def test_subscribe_then_confirm_from_the_email(client, store, settings) -> None:
    form = await client.get("/digest/subscribe/daily")
    assert form.status_code == 200 and 'type="email"' in form.text
    assert len(re.findall(r'name="sections"', form.text)) == len(ALL_SECTIONS)

    response = await client.post("/digest/subscribe/daily", data={
        "email": "New.Reader@Example.ORG", "name": "Nia", "sections": ["Sports", "World"]})
    assert response.status_code == 200 and "Check your inbox" in response.text
    member = store.get_membership("daily", "new.reader@example.org")
    assert member is not None and member.status == "pending"
    # What the requester typed waits in the request until its confirmation.
    assert member.sections is None and member.name is None

    [msg] = maildir_messages(settings)
    assert msg["To"].addresses[0].addr_spec == "New.Reader@example.org"
    # Nothing the requester typed reaches someone else's inbox: no name anywhere.
    assert b"Nia" not in msg.as_bytes() and msg["To"].addresses[0].display_name == ""
    assert msg["Subject"] == "Confirm your subscription to Morning Briefing"
    assert msg["Auto-Submitted"] == "auto-generated"
    link = _confirm_link(msg)
    assert link.startswith(BASE + "/confirm/")
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert link.replace("&", "&amp;") in html

    asked = await client.get(link)  # what a mail scanner does: it must not subscribe
    assert asked.status_code == 200
    assert "Confirm my subscription" in asked.text and 'method="post"' in asked.text
    assert status_of(store, member.subscriber_id) == "pending"
    confirmed = await client.post(link)
    assert confirmed.status_code == 200
    assert "You are subscribed to Morning Briefing" in confirmed.text
    assert status_of(store, member.subscriber_id) == "active"
    confirmed_member = store.get_membership("daily", "new.reader@example.org")
    assert confirmed_member.sections == {"Sports", "World"} and confirmed_member.name == "Nia"
    again = await client.get(link)  # following it again is harmless
    assert again.status_code == 200 and "You are subscribed" in again.text
    assert (await client.post(link)).status_code == 200


async def test_subscribe_answers_the_same_for_known_addresses(client, store, settings) -> None:
    sid = store.add_subscriber("daily", "known@example.org", name="Kim", sections=["Sports"])
    store.add_subscriber("weekend", "other@example.org", name="Olu")
    fresh = await client.post("/digest/subscribe/daily", data={"email": "fresh@example.org"})
    known = await client.post("/digest/subscribe/daily",
                              data={"email": "KNOWN@example.org", "name": "Mallory",
                                    "sections": ["Politics"]})
    elsewhere = await client.post("/digest/subscribe/daily",
                                  data={"email": "other@example.org", "name": "Mallory"})
    assert fresh.status_code == known.status_code == elsewhere.status_code == 200
    assert fresh.text == known.text == elsewhere.text
    # An unconfirmed request changes nothing about an existing subscriber.
    member = store.get_membership_by_id(sid, "daily")
    assert (member.status, member.name, member.sections) == ("active", "Kim", {"Sports"})
    assert store.get_membership("weekend", "other@example.org").name == "Olu"
    by_rcpt = {m["To"].addresses[0].addr_spec: m for m in maildir_messages(settings)}
    assert set(by_rcpt) == {"fresh@example.org", "known@example.org", "other@example.org"}
    note = by_rcpt["known@example.org"]
    assert note["Subject"] == "You are already subscribed to Morning Briefing"
    assert BASE + "/manage/" in text_of(note)


@pytest.mark.parametrize("data, message", [
    ({"email": "not an address"}, "This email address is not valid"),
    ({"email": "a@example.org", "name": "=?utf-8?q?x=0D=0AH:_v?="}, "This name cannot be used"),
    ({"email": "a@example.org", "sections": ["Cooking"]}, "Unknown section"),
    ({"email": "a@example.org\r\nBcc: x@example.org"}, "This email address is not valid"),
])
async def test_subscribe_refuses_bad_input(client, store, settings, data, message) -> None:
    response = await client.post("/digest/subscribe/daily", data=data)
    assert response.status_code == 400
    assert message in response.text
    assert "<form" in response.text
    checked = len(re.findall(r'name="sections" value="[^"]+" checked', response.text))
    assert checked == (0 if "sections" in data else len(ALL_SECTIONS))  # none ticked: all
    assert store.count_members("daily") == {}
    assert maildir_messages(settings) == []


async def test_subscribe_honeypot_and_unknown_list(client, store, settings) -> None:
    bot = await client.post("/digest/subscribe/daily",
                            data={"email": "bot@example.org", "website": "http://spam"})
    assert bot.status_code == 200 and "Check your inbox" in bot.text
    assert store.get_membership("daily", "bot@example.org") is None
    assert_clean_error(await client.get("/digest/subscribe/nosuchlist"), 404)


async def test_subscribe_is_rate_limited_per_client_and_address(client, store,
                                                                settings) -> None:
    codes = []
    for _ in range(5):
        response = await client.post("/digest/subscribe/daily",
                                     data={"email": "victim@example.org"})
        codes.append(response.status_code)
    assert codes == [200] * 5
    # Per address: 3 emails, then the rest are dropped quietly.
    assert len(maildir_messages(settings)) == 3
    limited = await client.post("/digest/subscribe/daily", data={"email": "x@example.org"})
    assert_clean_error(limited, 429)
    assert int(limited.headers["retry-after"]) > 0


async def test_expired_confirm_link_says_to_subscribe_again(client, store) -> None:
    request = store.request_subscription("daily", "late@example.org")
    member = request.member
    old = tokens.make_confirm_token((KEY,), member.subscriber_id, "daily",
                                    request_id=request.request_id,
                                    now=datetime.now(UTC) - timedelta(days=8))
    response = await client.get(f"/digest/confirm/{old}")
    assert_clean_error(response, 400)
    assert "This confirmation link has expired; subscribe again" in response.text
    assert f'href="{BASE}/subscribe/daily"' in response.text
    assert status_of(store, member.subscriber_id) == "pending"
    assert_clean_error(await client.get("/digest/confirm/garbage"), 400)


@pytest.mark.parametrize("with_request", [True, False])
async def test_confirm_after_unsubscribing_does_not_resubscribe(client, store,
                                                                with_request) -> None:
    request = store.request_subscription("daily", "left@example.org")
    member = request.member
    token = tokens.make_confirm_token((KEY,), member.subscriber_id, "daily",
                                      request_id=request.request_id if with_request else None)
    store.unsubscribe(member.subscriber_id, "daily")
    for method in (client.get, client.post):
        response = await method(f"/digest/confirm/{token}")
        assert response.status_code == 400 and "no longer applies" in response.text
        assert status_of(store, member.subscriber_id) == "unsubscribed"


async def test_resubscribe_from_preferences_sends_a_new_confirmation(client, store,
                                                                     settings) -> None:
    sid = store.add_subscriber("daily", "back@example.org")
    store.unsubscribe(sid, "daily")
    response = await client.post(manage_path(sid), data={"action": "resubscribe"})
    assert response.status_code == 200
    assert "If b•••@e•••.org can receive our emails, a message with a link" in response.text
    # Nothing changes until the reader confirms from their inbox.
    assert status_of(store, sid) == "unsubscribed"
    [msg] = maildir_messages(settings)
    link = _confirm_link(msg)
    assert (await client.post(link)).status_code == 200
    assert status_of(store, sid) == "active"


async def test_confirmation_goes_through_the_configured_relay(tmp_path) -> None:
    async with smtp_server() as srv:
        config = write_config(tmp_path, textwrap.dedent(f"""
            [[relays]]
            name = "local"
            host = "127.0.0.1"
            port = {srv.port}
            security = "none"
            """))
        settings = load_settings(config, env={"DIGEST_SECRET_KEY": KEY})
        with open_store(settings.database_url) as store:
            app = create_app(settings, store)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="https://news.example.org") as c:
                response = await c.post("/digest/subscribe/weekend",
                                        data={"email": "relay@example.org"})
                assert response.status_code == 200
                [received] = srv.handler.received
                assert received.rcpt_tos == ("relay@example.org",)
                assert received.mail_from == "weekend@news.example.org"
                msg = email.message_from_bytes(received.data, policy=email.policy.default)
                confirmed = await c.post(_confirm_link(msg))
                assert confirmed.status_code == 200
            assert store.get_membership("weekend", "relay@example.org").status == "active"
    assert not settings.maildir.exists()


async def test_relay_down_gives_a_clear_503(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    config = write_config(tmp_path, textwrap.dedent(f"""
        [[relays]]
        name = "down"
        host = "127.0.0.1"
        port = {dead_port}
        security = "none"
        timeout = "2s"
        """))
    settings = load_settings(config, env={"DIGEST_SECRET_KEY": KEY})
    with open_store(settings.database_url) as store:
        app = create_app(settings, store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://x") as c:
            response = await c.post("/subscribe/daily", data={"email": "a@example.org"})
    assert_clean_error(response, 503)
    assert "could not send the email" in response.text


# --------------------------------------------------------------------------- archive


async def test_archive_shows_published_editions_only(client, store) -> None:
    edition = seed_edition()
    record = store.record_edition(edition)
    day = f"/digest/archive/daily/{edition.date.isoformat()}"
    assert_clean_error(await client.get(day), 404)  # stored but not sent: still private
    # With nobody to send to, publishing changes nothing: the page stays private.
    assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                 now=datetime.now(UTC)) == 0
    assert_clean_error(await client.get(day), 404)
    store.add_subscriber("daily", "reader@example.org")
    assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                 now=datetime.now(UTC)) == 1
    response = await client.get(day)
    assert response.status_code == 200
    assert edition.lead.headline.replace("'", "&#39;") in response.text or \
        edition.lead.headline in response.text
    for section in edition.sections:
        assert section.name in response.text
    assert "Hello," in response.text
    assert f'href="{BASE}/links/daily"' in response.text
    assert "/unsubscribe/" not in response.text
    assert response.headers["cache-control"] == "public, max-age=300"
    assert list(client.app.state.web.archive_cache) == [record.id]
    again = await client.get(day)
    assert again.text == response.text

    index = await client.get("/digest/archive/daily")
    assert index.status_code == 200
    assert f'href="{BASE}/archive/daily/{edition.date.isoformat()}"' in index.text
    assert "August 25, 2025" in index.text  # CLDR's long date in the list's language
    links = await client.get("/digest/links/daily")
    assert links.status_code == 200 and "yours alone" in links.text


@pytest.mark.parametrize("path", [
    "/digest/archive/daily/2025-08-26", "/digest/archive/nosuchlist/2025-08-25",
    "/digest/archive/daily/2025-13-45", "/digest/archive/daily/yesterday",
    "/digest/archive/nosuchlist", "/digest/archive/daily/2025-08-25x",
])
async def test_archive_404s(client, store, path) -> None:
    store.publish_edition(store.record_edition(seed_edition()).id,
                          message_id_domain="news.example.org", now=datetime.now(UTC))
    assert_clean_error(await client.get(path), 404)


# --------------------------------------------------------------------------- hardening


async def test_security_headers_on_every_kind_of_response(client, store) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    responses = [
        await client.get(unsub(sid)),
        await client.get("/digest/unsubscribe/bad"),
        await client.get("/digest/nowhere"),
        await client.put(unsub(sid)),
        await client.post("/digest/subscribe/daily", content=b"x" * 70_000,
                          headers={"content-type": "application/x-www-form-urlencoded"}),
        await client.get("/digest/healthz"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 404, 405, 413, 200]
    for r in responses:
        assert r.headers["content-security-policy"].startswith(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:")
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
    assert responses[0].headers["cache-control"] == "no-store"
    assert "GET" in responses[3].headers["allow"]


async def test_prefix_is_optional(client, store) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")
    token = tokens.make_unsubscribe_token((KEY,), sid, "daily")
    assert (await client.get(f"/unsubscribe/{token}")).status_code == 200
    assert (await client.get(f"/digest/unsubscribe/{token}")).status_code == 200
    assert (await client.get("/healthz")).text == "ok\n"
    assert (await client.get("/digest/")).status_code == 200
    root = await client.get("/digest")
    assert root.status_code == 307 and root.headers["location"].endswith("/digest/")


async def _streamed(total: int):
    for _ in range(total // 8192):
        yield b"a" * 8192


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("GET", "/digest/unsubscribe/", {}, 404),
    ("GET", "/digest/unsubscribe/a/b", {}, 404),
    ("GET", "/digest/%ff%fe", {}, 404),
    ("GET", "/digest/archive/daily/..%2f..%2fetc%2fpasswd", {}, 404),
    ("GET", "/digest/confirm/" + "A" * 5000, {}, 400),
    ("GET", "/digest/manage/%3Cscript%3Ealert(1)%3C%5Cscript%3E", {}, 400),
    ("GET", "/digest/manage/%3Cscript%3Ealert(1)%3C%2Fscript%3E", {}, 404),
    ("POST", "/digest/subscribe/daily",
     {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
     400),
    ("POST", "/digest/subscribe/daily",
     {"files": {"email": ("a.txt", b"a@example.org", "text/plain")}}, 400),
    ("POST", "/digest/subscribe/daily", {"content": _streamed(200_000),
                                         "headers": {"content-type": "text/plain"}}, 413),
    ("POST", "/digest/subscribe/daily", {"data": {"email": "x" * 100_000}}, 413),
    ("POST", "/digest/subscribe/daily", {"data": {"email": ["a@example.org"] * 500}}, 400),
    ("DELETE", "/digest/unsubscribe/abc", {}, 405),
    ("POST", "/digest/confirm/abc", {}, 400),
    ("PUT", "/digest/confirm/abc", {}, 405),
])
async def test_odd_requests_get_pages_not_tracebacks(client, method, path, kwargs,
                                                     status) -> None:
    response = await client.request(method, path, **kwargs)
    assert_clean_error(response, status)


async def test_markup_in_input_is_escaped(client, store) -> None:
    response = await client.post("/digest/subscribe/daily",
                                 data={"email": "<script>alert(1)</script>@x",
                                       "name": "<b>bold</b>"})
    assert response.status_code == 400
    assert "<script>" not in response.text and "<b>bold" not in response.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in response.text


async def test_unexpected_errors_give_a_page_not_a_traceback(client, store, monkeypatch,
                                                             caplog) -> None:
    sid = store.add_subscriber("daily", "reader@example.org")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(store, "get_membership_by_id", boom)
    path = unsub(sid)
    response = await client.get(path)
    assert_clean_error(response, 500)
    assert response.headers["x-frame-options"] == "DENY"
    assert "unexpected" not in response.text
    assert "/digest/unsubscribe/[token]" in caplog.text
    assert path.rsplit("/", 1)[1] not in caplog.text


async def test_database_trouble_gives_503(client, store, monkeypatch) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise StoreError("The database could not complete the operation (locked); "
                         "try again.")

    sid = store.add_subscriber("daily", "reader@example.org")
    monkeypatch.setattr(store, "unsubscribe", down)
    monkeypatch.setattr(store, "list_names", down)
    monkeypatch.setattr(store, "get_lease", down)  # what /healthz reads
    response = await client.post(unsub(sid))
    assert_clean_error(response, 503)
    assert response.headers["retry-after"] == "60"
    health = await client.get("/digest/healthz")
    assert health.status_code == 503 and health.text == "database unavailable\n"


def test_helpers_hide_addresses_and_tokens() -> None:
    assert mask_address("ana.lopez@example.org") == "a•••@e•••.org"
    assert mask_address("x@localhost") == "x•••@l•••"
    assert redact_path("/digest/unsubscribe/abc.def?x=1") == \
        "/digest/unsubscribe/[token]?x=[redacted]"
    assert redact_path("/digest/subscribe/daily?email=leak@example.org&list=daily") == \
        "/digest/subscribe/daily?email=[redacted]&list=[redacted]"
    assert redact_path("/digest/leak%40example.org/x") == "/digest/[address]/x"
    assert redact_path("/manage/t1 /confirm/t2") == "/manage/[token] /confirm/[token]"


async def test_lifespan_opens_and_closes_its_own_store(settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://news.example.org") as c:
        assert (await c.get("/digest/healthz")).text == "ok\n"
        assert app.state.web.store is not None
    assert app.state.web.store is None
    assert Path(settings.database_url.removeprefix("sqlite:///")).exists()


# --------------------------------------------------------------------------- real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_one_click_post(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    settings = load_settings(config, env={"DIGEST_SECRET_KEY": KEY})
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        sid = store.add_subscriber("daily", "wire@example.org")
    port = _free_port()
    code = ("import sys; from digest.config import load_settings; from digest.web import serve; "
            f"serve(load_settings(sys.argv[1], env={{'DIGEST_SECRET_KEY': {KEY!r}}}), "
            f"port={port})")
    proc = subprocess.Popen([sys.executable, "-c", code, str(config)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    token = tokens.make_unsubscribe_token((KEY,), sid, "daily")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).text == "ok\n":
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        # What a mailbox provider sends (RFC 8058 §3.2): no cookies, redirects not followed.
        response = httpx.post(f"http://127.0.0.1:{port}/digest/unsubscribe/{token}",
                              content=b"List-Unsubscribe=One-Click", follow_redirects=False,
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        assert "server" not in response.headers
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    logs = out + err  # uvicorn writes its access log to stdout
    with open_store(settings.database_url) as store:
        assert status_of(store, sid) == "unsubscribed"
    assert "POST /digest/unsubscribe/[token]" in logs, logs
    assert token not in logs and "wire@example.org" not in logs
