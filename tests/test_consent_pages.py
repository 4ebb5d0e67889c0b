"""The web side of the ownership rule's edges, end to end on SQLite and PostgreSQL with real
SMTP on loopback (review of issue 9, defects 3, 5, 6, 7, 8 and 13): an export synced by
`send` after a reader came back, complained mailboxes under other spellings, double clicks,
no redirect from the Host header, typed names, the subscribe-again notice, a second
confirmation click.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from test_consent_web import (
    BASE,
    KEY,
    ONE_CLICK,
    SELF,
    Site,
    make_client,
    manage_path,
    site,
    unsubscribe_path,
)

from digest import tokens
from digest.web import create_app

pytest_plugins = ["store_backends"]

__all__ = ["site"]  # the fixture, shared with test_consent_web

STRANGER = "Your account is locked - call 555-0100"


def _link(message: EmailMessage) -> str:
    found = re.search(r"https://\S+/confirm/\S+", message.get_body(("plain",)).get_content())
    assert found is not None
    return found.group(0)


def _confirmations(site: Site, address: str) -> list[EmailMessage]:
    return [m for m in site.mail_to(address) if m["Subject"].startswith("Confirm")]


async def _sign_up(site: Site, address: str, name: str = "") -> None:
    response = await site.client.post("/digest/subscribe/daily", headers=SELF,
                                      data={"email": address, "name": name})
    assert response.status_code == 200 and "Check your inbox" in response.text


# --------------------------------------------------------------------------- defect 3


async def test_send_never_unsubscribes_a_reader_who_came_back_with_an_old_export(
        site: Site) -> None:
    await site.send()
    ann = site.sid("ann@example.org")
    assert (await site.client.post(unsubscribe_path(ann), **ONE_CLICK)).status_code == 200
    # The editor exports the list over the subscribers file (ann's row: unsubscribed).
    exported = io.StringIO()
    site.store.export_csv("daily", exported)
    Path(site.settings.get_list("daily").subscribers_files[0]).write_text(
        exported.getvalue(), encoding="utf-8")
    # ann comes back by her own confirmed sign-up ...
    await _sign_up(site, "ann@example.org")
    [mail] = _confirmations(site, "ann@example.org")
    assert (await site.client.post(_link(mail), headers=SELF)).status_code == 200
    # ... and the next send syncs the stale export: she stays, and gets the edition.
    outcome = await site.send(1)
    assert outcome.status == "sent"
    assert site.store.get_membership("daily", "ann@example.org").status == "active"
    assert len(site.editions_to("ann@example.org")) == 2
    [(_, report)] = outcome.imports
    assert [(k.line, "the reader came back" in k.reason) for k in report.kept] == [(2, True)]
    assert [e.cause for e in site.store.membership_history("ann@example.org")][-1] == "confirm"


# --------------------------------------------------------------------------- defects 5, 13


async def test_a_complained_mailbox_gets_no_mail_under_any_spelling(site: Site) -> None:
    await site.send()
    site.store.record_bounce("arf-1", kind="complaint", subscriber_id=site.sid("bob@example.org"),
                             delivery_id=None, status=None, reason="abuse")
    for spelling in ("bob+news@example.org", "BOB@example.org", "Bob+x@Example.org"):
        await _sign_up(site, spelling)
    await site.send(1)
    assert [r for r in site.smtp.handler.received
            if r.rcpt_tos[0].lower().split("+")[0].startswith("bob")][1:] == []
    assert site.store.count_members("daily") == {"active": 2, "complained": 1}


# --------------------------------------------------------------------------- defect 6


async def test_a_double_click_on_the_sign_up_form_never_fails(site: Site) -> None:
    site.store.ensure_list("daily", "Morning Briefing")
    app = create_app(site.settings, site.store)
    for n in range(5):
        address = f"double{n}@example.org"
        async with make_client(site.settings, site.store, ip=f"192.0.2.{n}", app=app) as c:
            codes = await asyncio.gather(*(c.post(
                "/digest/subscribe/daily", headers=SELF, data={"email": address})
                for _ in range(2)))
        assert [c.status_code for c in codes] == [200, 200]
        member = site.store.get_membership("daily", address)
        assert member is not None and member.status == "pending"
        assert len(_confirmations(site, address)) == 2


# --------------------------------------------------------------------------- defect 7


async def test_no_redirect_is_built_from_the_host_header(site: Site) -> None:
    site.load()
    token = tokens.make_unsubscribe_token((KEY,), site.sid("ann@example.org"), "daily")
    paths = ["/digest", "/digest/", "/digest/desk", "/digest/desk/", "/digest/desk/login/",
             "/digest/desk/login/?next=/digest/desk/", "/digest/desk/subscribers/",
             "/digest/desk/editions/1/", "/digest/subscribe/daily/", "/digest/archive/daily/",
             f"/digest/unsubscribe/{token}/", f"/digest/manage/{token}/", "/desk/login/",
             "/digest/healthz/", "/digest/nowhere/"]
    async with make_client(site.settings, site.store, base_url="https://evil.example") as c:
        locations = {}
        for path in paths:
            for method in ("GET", "HEAD", "POST"):
                response = await c.request(method, path, headers={"host": "evil.example"})
                assert response.status_code < 500, (method, path)
                if 300 <= response.status_code < 400:
                    locations[(method, path)] = response.headers["location"]
        assert locations and all(loc.startswith(BASE + "/") for loc in locations.values()), \
            locations
        assert locations[("GET", "/digest/desk/login/")] == BASE + "/desk/login"
        assert locations[("GET", "/digest/desk/login/?next=/digest/desk/")] == \
            BASE + "/desk/login?next=/digest/desk/"


# --------------------------------------------------------------------------- defect 8


async def test_a_strangers_typed_name_never_reaches_the_reader(site: Site) -> None:
    site.load()
    await _sign_up(site, "victim3@example.org", STRANGER)
    await _sign_up(site, "victim3@example.org", "Vic")  # the reader, who confirms theirs
    stranger_mail, reader_mail = _confirmations(site, "victim3@example.org")
    assert (await site.client.post(_link(reader_mail), headers=SELF)).status_code == 200
    await site.send()
    [edition] = site.editions_to("victim3@example.org")
    assert edition["To"].addresses[0].display_name == "Vic"
    assert "555-0100" not in edition.as_string()
    # A stranger signing the reader up again: "already subscribed", greeting no one.
    await _sign_up(site, "victim3@example.org", STRANGER)
    already = [m for m in site.mail_to("victim3@example.org")
               if m["Subject"].startswith("You are already subscribed")]
    assert len(already) == 1
    text = already[0].get_body(("plain",)).get_content()
    assert text.splitlines()[0] == "Hello," and "Vic" not in text and "555-0100" not in text
    assert already[0]["To"].addresses[0].display_name == ""
    # The stranger's own link, confirmed late, names no one either (it is older).
    assert "555-0100" not in stranger_mail.as_string()
    member = site.store.get_membership("daily", "victim3@example.org")
    assert member is not None and member.name == "Vic"


# --------------------------------------------------------------------------- defect 13


async def test_the_subscribe_again_notice_is_true_and_tells_nothing(site: Site) -> None:
    await site.send()
    ann, bob = site.sid("ann@example.org"), site.sid("bob@example.org")
    await site.client.post(unsubscribe_path(ann), **ONE_CLICK)
    await site.client.post(unsubscribe_path(bob), **ONE_CLICK)
    site.store.record_bounce("arf-2", kind="complaint", subscriber_id=bob, delivery_id=None,
                             status=None, reason="abuse")
    notices = []
    for sid, address in ((ann, "ann@example.org"), (bob, "bob@example.org")):
        page = await site.client.post(manage_path(sid), headers=SELF,
                                      data={"action": "resubscribe"})
        assert page.status_code == 200 and "We sent" not in page.text
        found = re.search(r"If \S+ can receive our emails[^<]*", page.text)
        assert found is not None, page.text
        notices.append(found.group(0).replace(address[0] + "**", "?"))
    assert len(_confirmations(site, "ann@example.org")) == 1
    assert _confirmations(site, "bob@example.org") == []
    masked = [re.sub(r"If \S+ ", "If X ", n) for n in notices]
    assert masked[0] == masked[1]  # the complained reader's page reads the same


async def test_a_second_confirmation_click_is_logged_once(site: Site,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    await _sign_up(site, "new@example.org")
    [mail] = _confirmations(site, "new@example.org")
    with caplog.at_level(logging.INFO, logger="digest.web"):
        for _ in range(3):
            page = await site.client.post(_link(mail), headers=SELF)
            assert page.status_code == 200 and "You are subscribed" in page.text
    assert [r.getMessage() for r in caplog.records].count(
        "subscription confirmed list=daily") == 1
    assert [e.cause for e in site.store.membership_history("new@example.org")] == [
        "web-signup", "confirm"]
