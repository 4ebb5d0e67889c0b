"""SMTPUTF8 end to end or not at all (RFC 6531/6532; issue 9, item 5): with
``allow_smtputf8 = true`` an address with a non-ASCII local part goes out with the SMTPUTF8
parameter when the relay offers it, and fails with one clear reason when it does not.
Real aiosmtpd servers on loopback, one offering SMTPUTF8 and one not.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import httpx
import pytest
from smtp_servers import smtp_server
from test_consent_web import DAY1, KEY, SELF, consent_config

from digest import pipeline
from digest.config import load_settings
from digest.store import open_store
from digest.web import create_app

pytest_plugins = ["store_backends"]

READERS = ("email,name,sections\n"
           "ann@example.org,Ann,\n"
           "rené@example.org,René,\n")
MAIL_FAILED = "not supported by the relay: SMTPUTF8 (needed for a non-ASCII address)"


async def _send(tmp_path: Path, store_url: str, *, offered: bool):  # type: ignore[no-untyped-def]
    async with smtp_server(smtputf8=offered) as srv:
        settings = load_settings(consent_config(tmp_path, srv.port, smtputf8=True,
                                                readers=READERS),
                                 env={"DIGEST_SECRET_KEY": KEY, "DIGEST_DATABASE_URL": store_url})
        with open_store(settings.database_url) as store:
            outcome = await pipeline.send_edition(settings, settings.get_list("daily"),
                                                  store=store, as_of=DAY1)
            summary = store.delivery_summary(outcome.edition_id)
    return outcome, summary, srv


async def test_a_non_ascii_address_goes_with_smtputf8_when_the_relay_offers_it(
        tmp_path: Path, store_url: str) -> None:
    outcome, summary, srv = await _send(tmp_path, store_url, offered=True)
    assert summary == {"sent": 2}
    assert "was delivered" in outcome.message
    by_rcpt = {r.rcpt_tos[0]: r for r in srv.handler.received}
    assert set(by_rcpt) == {"ann@example.org", "rené@example.org"}
    mail = sorted(c for c in srv.handler.commands if c.startswith("MAIL"))
    assert len(mail) == 2
    assert ["SMTPUTF8" in c.split() for c in mail] == [False, True]  # ASCII rows go without
    # RFC 6532: the header is raw UTF-8 (Python's bytes parser would escape it).
    msg = email.message_from_string(by_rcpt["rené@example.org"].data.decode("utf-8"),
                                    policy=email.policy.SMTPUTF8)
    assert msg["To"].addresses[0].addr_spec == "rené@example.org"
    assert msg["To"].addresses[0].display_name == "René"
    assert b"To: " in by_rcpt["ann@example.org"].data
    assert by_rcpt["ann@example.org"].data.isascii()


async def test_without_smtputf8_those_rows_fail_with_one_reason(tmp_path: Path,
                                                                store_url: str) -> None:
    outcome, summary, srv = await _send(tmp_path, store_url, offered=False)
    assert summary == {"sent": 1, "failed": 1}
    assert [r.rcpt_tos for r in srv.handler.received] == [("ann@example.org",)]
    assert not any("ren" in c for c in srv.handler.commands)  # nothing was even tried
    report = outcome.report
    assert dict(report.reasons["failed"]) == {MAIL_FAILED: 1}
    assert report.suppressed == 0
    assert "was delivered" not in outcome.message
    assert "1 delivered, 1 failed" in outcome.message
    with open_store(store_url) as store:  # the address is kept: the relay, not the reader
        assert store.get_membership("daily", "rené@example.org").status == "active"
        assert not store.is_suppressed("rené@example.org")


@pytest.mark.parametrize("offered", [True, False])
async def test_the_web_confirmation_follows_the_same_rule(tmp_path: Path, store_url: str,
                                                          offered: bool) -> None:
    async with smtp_server(smtputf8=offered) as srv:
        settings = load_settings(consent_config(tmp_path, srv.port, smtputf8=True),
                                 env={"DIGEST_SECRET_KEY": KEY, "DIGEST_DATABASE_URL": store_url})
        with open_store(settings.database_url) as store:
            transport = httpx.ASGITransport(app=create_app(settings, store))
            async with httpx.AsyncClient(transport=transport,
                                         base_url="https://news.example.org") as client:
                response = await client.post("/digest/subscribe/daily", headers=SELF,
                                             data={"email": "zoë@example.org"})
            assert response.status_code == 200 and "Check your inbox" in response.text
            assert store.get_membership("daily", "zoë@example.org").status == "pending"
    received = srv.handler.received
    if offered:
        [msg] = received
        assert msg.rcpt_tos == ("zoë@example.org",)
        [mail] = [c for c in srv.handler.commands if c.startswith("MAIL")]
        assert "SMTPUTF8" in mail.split()
        parsed = email.message_from_string(msg.data.decode("utf-8"),
                                           policy=email.policy.SMTPUTF8)
        assert parsed["To"].addresses[0].addr_spec == "zoë@example.org"
    else:
        assert received == []
        assert not any(c.startswith("MAIL") for c in srv.handler.commands)
