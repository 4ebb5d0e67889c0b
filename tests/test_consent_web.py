"""Readers' consent end to end on SQLite and PostgreSQL: the web pages, `send` with its
subscriber-file sync, and real SMTP on loopback (issue 9, items 1, 3, 4 and 7).
"""

from __future__ import annotations

import email
import email.policy
import re
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from smtp_servers import ServerInfo, smtp_server
from starlette.applications import Starlette
from store_rows import all_rows

from digest import pipeline, tokens
from digest.config import Settings, load_settings
from digest.store import Store, open_store
from digest.web import create_app

pytest_plugins = ["store_backends"]

REPO = Path(__file__).resolve().parent.parent
SEED = Path(__file__).resolve().parent / "fixtures" / "pages" / "seed.txt"
KEY = "consent-test-signing-key-0123456789"
BASE = "https://news.example.org/digest"
SITE = "https://www.gazette.example"  # the newsroom's own site, where a form may be embedded
DAY1 = datetime.fromisoformat("2025-08-23T12:00:00+01:00")
READERS = ("email,name,sections\n"
           "ann@example.org,Ann,\n"
           "bob@example.org,Bob,\n"
           "cat@example.org,Cat,Sports\n")
SELF = {"origin": "https://news.example.org", "sec-fetch-site": "same-origin"}
EVIL = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}


def consent_config(folder: Path, port: int, *, smtputf8: bool = False,
                   readers: str = READERS) -> Path:
    (folder / "readers.csv").write_text(readers, encoding="utf-8")
    path = folder / "digest.toml"
    path.write_text(textwrap.dedent(f"""\
        [digest]
        work_dir = "var"
        templates_dir = "{REPO / 'templates'}"
        allow_smtputf8 = {'true' if smtputf8 else 'false'}

        [site]
        name = "The Morning Ledger"
        url = "{SITE}"
        postal_address = "The Morning Ledger, 1 Press Row, Springfield 12345"
        domain = "news.example.org"

        [web]
        base_url = "{BASE}"

        [[relays]]
        name = "loopback"
        host = "127.0.0.1"
        port = {port}
        security = "none"

        [lists.daily]
        title = "Morning Briefing"
        sources = ["{SEED}"]
        sections = ["Politics", "World", "Business", "Top Stories", "Sports", "Health",
                    "Entertainment", "Lifestyle", "Technology"]
        lead_section = "Politics"
        timezone = "Europe/London"
        from = "The Morning Ledger <briefing@news.example.org>"
        subscribers_files = ["readers.csv"]
        """), encoding="utf-8")
    return path


@dataclass
class Site:
    settings: Settings
    store: Store
    client: httpx.AsyncClient
    smtp: ServerInfo

    async def send(self, day: int = 0, **kwargs: object) -> pipeline.SendOutcome:
        return await pipeline.send_edition(
            self.settings, self.settings.get_list("daily"), store=self.store,
            as_of=DAY1 + timedelta(days=day), force=day > 0, **kwargs)  # type: ignore[arg-type]

    def mail_to(self, address: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(r.data, policy=email.policy.default)
                for r in self.smtp.handler.received if address in r.rcpt_tos]

    def editions_to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.mail_to(address) if m["List-Unsubscribe"]]

    def load(self) -> None:
        """The readers of the list's file, imported as a send would (without sending)."""
        pipeline.sync_subscriber_files(self.settings, self.settings.get_list("daily"),
                                       self.store)

    def sid(self, address: str) -> int:
        member = self.store.get_membership("daily", address)
        assert member is not None
        return member.subscriber_id


def make_client(settings: Settings, store: Store, *, ip: str = "127.0.0.1",
                base_url: str = "https://news.example.org",
                app: Starlette | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app or create_app(settings, store), client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=False)


@pytest.fixture
async def site(tmp_path: Path, store_url: str) -> AsyncIterator[Site]:
    async with smtp_server() as srv:
        settings = load_settings(consent_config(tmp_path, srv.port),
                                 env={"DIGEST_SECRET_KEY": KEY, "DIGEST_DATABASE_URL": store_url})
        with open_store(settings.database_url) as store:
            async with make_client(settings, store) as client:
                yield Site(settings, store, client, srv)


def unsubscribe_path(sid: int) -> str:
    return "/digest/unsubscribe/" + tokens.make_unsubscribe_token((KEY,), sid, "daily")


def manage_path(sid: int) -> str:
    return "/digest/manage/" + tokens.make_manage_token((KEY,), sid, "daily")


ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"content-type": "application/x-www-form-urlencoded"}}


# --------------------------------------------------------------------------- item 7


async def test_one_click_unsubscribe_then_a_sign_up_then_send_delivers_nothing(site) -> None:
    first = await site.send()
    assert first.status == "sent" and "was delivered" in first.message
    assert len(site.editions_to("ann@example.org")) == 1
    ann = site.sid("ann@example.org")
    # The reader's mail provider: RFC 8058 one-click, no browser headers.
    left = await site.client.post(unsubscribe_path(ann), **ONE_CLICK)
    assert left.status_code == 200
    # Anyone then posts the public sign-up form with the reader's address.
    signup = await site.client.post("/digest/subscribe/daily", headers=SELF,
                                    data={"email": "Ann@Example.org", "name": "Mallory"})
    assert signup.status_code == 200 and "Check your inbox" in signup.text
    before = all_rows(site.store)
    dry = await site.send(1, dry_run=True)
    assert all_rows(site.store) == before  # the dry run wrote nothing at all
    assert "built 2 messages" in dry.message
    second = await site.send(1)
    assert second.status == "sent"
    assert len(site.editions_to("ann@example.org")) == 1  # only the edition before leaving
    assert len(site.editions_to("bob@example.org")) == 2
    assert site.store.get_membership("daily", "ann@example.org").status == "unsubscribed"
    causes = [(e.new_status, e.cause) for e in site.store.membership_history("ann@example.org")]
    assert causes == [("active", "import"), ("unsubscribed", "one-click-unsubscribe"),
                      ("unsubscribed", "web-signup")]
    # Only the reader, from the email the sign-up sent them, can come back.
    [confirmation] = [m for m in site.mail_to("ann@example.org")
                      if m["Subject"].startswith("Confirm")]
    assert "Mallory" not in confirmation.as_string()
    link = re.search(r"https://\S+/confirm/\S+", confirmation.get_body(("plain",))
                     .get_content()).group(0)
    assert (await site.client.post(link, headers=SELF)).status_code == 200
    await site.send(2)
    assert len(site.editions_to("ann@example.org")) == 2


async def test_a_complained_reader_gets_no_confirmation_and_no_edition(site) -> None:
    await site.send()
    bob = site.sid("bob@example.org")
    site.store.record_bounce("arf-1", kind="complaint", subscriber_id=bob, delivery_id=None,
                             status=None, reason="abuse", report_message_id="<arf@x.test>")
    for _ in range(3):
        response = await site.client.post("/digest/subscribe/daily", headers=SELF,
                                          data={"email": "bob@example.org"})
        assert response.status_code == 200 and "Check your inbox" in response.text
    await site.send(1)
    assert len(site.mail_to("bob@example.org")) == 1  # the first edition, nothing since
    assert site.store.get_membership("daily", "bob@example.org").status == "complained"


async def test_sections_saved_on_the_web_survive_send(site) -> None:
    await site.send()
    cat = site.sid("cat@example.org")
    saved = await site.client.post(manage_path(cat), headers=SELF,
                                   data={"action": "save", "sections": ["World"]})
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    outcome = await site.send(1)
    [(_, report)] = outcome.imports
    # The file is unchanged, so it is not read again (a later edit to it reports cat's row
    # as kept: test_send_reports); her sections stand either way.
    assert report.unchanged_since is not None and report.kept == []
    assert site.store.get_membership("daily", "cat@example.org").sections == {"World"}
    latest = site.editions_to("cat@example.org")[-1]
    html = latest.get_body(("html",)).get_content()
    assert set(re.findall(r"<h2 [^>]*>([^<]+)</h2>", html)) == {"World"}
    assert [e.cause for e in site.store.membership_history("cat@example.org")] == [
        "import", "preferences"]


# --------------------------------------------------------------------------- item 3


CROSS_SITE = [
    EVIL, {"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"},
    {"origin": "null"}, {"origin": "https://news.example.org.evil.example"},
    {"origin": "https://evil.example", "sec-fetch-site": "same-site"},
]


async def test_cross_site_posts_are_refused(site) -> None:
    site.load()
    ann, bob = site.sid("ann@example.org"), site.sid("bob@example.org")
    request = site.store.request_subscription("daily", "new@example.org")
    confirm = tokens.confirm_url(BASE, tokens.make_confirm_token(
        (KEY,), request.member.subscriber_id, "daily", request_id=request.request_id))
    attempts = [
        ("/digest/subscribe/daily", {"email": "victim@example.org"}),
        (manage_path(ann), {"action": "save", "sections": ["World"]}),
        (manage_path(bob), {"action": "resubscribe"}),
        (unsubscribe_path(bob), {"List-Unsubscribe": "One-Click"}),
        (confirm, {}),
    ]
    before = all_rows(site.store)
    for headers in CROSS_SITE:
        for path, data in attempts:
            response = await site.client.post(path, headers=headers, data=data)
            assert response.status_code == 403, (path, headers)
            assert "can only be sent from our own pages" in response.text
            assert response.headers["x-frame-options"] == "DENY"
    assert all_rows(site.store) == before
    assert site.mail_to("victim@example.org") == []


async def test_same_site_forms_and_one_click_still_work(site) -> None:
    site.load()
    ann, bob, cat = (site.sid(f"{n}@example.org") for n in ("ann", "bob", "cat"))
    assert (await site.client.post(unsubscribe_path(ann), **ONE_CLICK)).status_code == 200
    assert (await site.client.post(unsubscribe_path(bob), headers=SELF,
                                   data={"List-Unsubscribe": "One-Click"})).status_code == 200
    # Local testing: the browser vouches for same-origin whatever the host is called.
    local = {"origin": "http://127.0.0.1:8080", "sec-fetch-site": "same-origin"}
    assert (await site.client.post(manage_path(cat), headers=local, data={
        "action": "save", "sections": ["World"]})).status_code == 200
    # A sign-up form embedded on the newsroom's own site (site.url).
    embedded = await site.client.post("/digest/subscribe/daily", data={"email": "d@example.org"},
                                      headers={"origin": SITE, "sec-fetch-site": "cross-site"})
    assert embedded.status_code == 200
    assert [e.cause for e in site.store.membership_history("ann@example.org")][-1] == \
        "one-click-unsubscribe"
    assert [e.cause for e in site.store.membership_history("bob@example.org")][-1] == \
        "unsubscribe-page"


async def test_tagged_addresses_share_one_mailbox_limit(site) -> None:
    codes = []
    app = create_app(site.settings, site.store)
    for n in range(150):  # from 30 networks, so the per-client limit never bites
        async with make_client(site.settings, site.store, ip=f"198.51.100.{n // 5}",
                               app=app) as client:
            variant = ["victim+{n}@example.org", "VICTIM+{n}@example.org",
                       "victim@EXAMPLE.org"][n % 3].format(n=n)
            response = await client.post("/digest/subscribe/daily", headers=SELF,
                                         data={"email": variant})
            codes.append(response.status_code)
    assert codes == [200] * 150
    sent = [r for r in site.smtp.handler.received
            if r.rcpt_tos[0].lower().split("+")[0].split("@")[0] == "victim"]
    assert len(sent) == 3  # as for one address: the mailbox's limit, not the spelling's
    assert sum(site.store.count_members("daily").values()) == 3  # and nothing else recorded


async def test_gmail_dots_share_the_mailbox_limit(site) -> None:
    app = create_app(site.settings, site.store)
    for n, spelling in enumerate(["jane.doe@gmail.com", "janedoe@gmail.com",
                                  "j.a.n.e.doe+x@gmail.com", "JaneDoe@googlemail.com",
                                  "jane.d.o.e@gmail.com"]):
        async with make_client(site.settings, site.store, ip=f"203.0.113.{n}",
                               app=app) as client:
            await client.post("/digest/subscribe/daily", headers=SELF, data={"email": spelling})
    assert len([r for r in site.smtp.handler.received
                if "gmail" in r.rcpt_tos[0].lower()]) == 3


async def test_ipv6_clients_are_limited_by_their_64(site) -> None:
    app = create_app(site.settings, site.store)

    async def sign_up(ip: str, n: int) -> int:
        async with make_client(site.settings, site.store, ip=ip, app=app) as client:
            response = await client.post("/digest/subscribe/daily", headers=SELF,
                                         data={"email": f"reader{n}@example.org"})
            return response.status_code

    same_64 = [await sign_up(f"2001:db8:1:2::{n:x}", n) for n in range(1, 7)]
    assert same_64 == [200] * 5 + [429]
    assert await sign_up("2001:db8:1:2:ffff:ffff:ffff:ffff", 7) == 429
    assert await sign_up("2001:db8:1:3::1", 8) == 200  # the next /64 is someone else
    assert await sign_up("::ffff:192.0.2.1", 9) == 200
    assert await sign_up("192.0.2.1", 10) == 200  # the same IPv4 client: its 2nd request


async def test_limits_hold_across_restarts_and_processes(site, store_url) -> None:
    codes = []
    for attempt in range(7):  # each request to a freshly started app with its own store
        with open_store(store_url) as store:
            async with make_client(site.settings, store, ip="192.0.2.77") as client:
                response = await client.post("/digest/subscribe/daily", headers=SELF,
                                             data={"email": f"r{attempt}@example.org"})
                codes.append(response.status_code)
    assert codes == [200] * 5 + [429, 429]
    assert int(response.headers["retry-after"]) > 0


# --------------------------------------------------------------------------- item 4


def _signed(salt: str, payload: object) -> str:
    return str(tokens._serializer((KEY,), salt, None).dumps(payload))


async def test_token_tricks_are_400_not_500(site) -> None:
    site.load()
    ann = site.sid("ann@example.org")
    good = tokens.make_unsubscribe_token((KEY,), ann, "daily")
    paths = [f"/digest/unsubscribe/{good}{suffix}" for suffix in ("=", "%3D", "==", "A", "!")]
    paths += [f"/digest/unsubscribe/{_signed(tokens.UNSUBSCRIBE, [n, 'daily'])}"
              for n in (2**31, 10**20, -1, 0)]
    paths += [f"/digest/manage/{_signed(tokens.MANAGE, [10**12, 'daily'])}",
              f"/digest/confirm/{_signed(tokens.CONFIRM, [ann, 'daily', 2**40])}",
              f"/digest/confirm/{_signed(tokens.CONFIRM, [2**35, 'daily', 1])}"]
    before = all_rows(site.store)
    for path in paths:
        for method in ("GET", "POST"):
            response = await site.client.request(method, path, headers=SELF)
            assert response.status_code == 400, (method, path)
            assert "This link does not work" in response.text
    assert all_rows(site.store) == before
    assert (await site.client.get(f"/digest/unsubscribe/{good}")).status_code == 200


async def test_slash_redirects_use_the_base_url_not_the_host(site) -> None:
    async with make_client(site.settings, site.store, base_url="https://evil.example") as c:
        root = await c.get("/digest", headers={"host": "evil.example"})
        assert root.status_code == 307 and root.headers["location"] == BASE + "/"
        token = tokens.make_unsubscribe_token((KEY,), 1, "daily")
        slash = await c.get(f"/unsubscribe/{token}/?x=1", headers={"host": "evil.example"})
        assert slash.headers["location"] == f"{BASE}/unsubscribe/{token}?x=1"
        assert (await c.get("/digest/nowhere/")).status_code == 404
