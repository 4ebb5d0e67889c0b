"""What `bounces process` writes into the consent record: the cause and the report's own
Message-ID, for a complaint and for a mailto unsubscribe (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.bounces.process import process_bounces
from digest.bounces.sources import RawMessage
from digest.config import load_settings
from digest.models import Edition, EditionSection, Story
from digest.store import Store, open_store
from digest.tokens import make_unsubscribe_token

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
PLACEHOLDER_ID = "<e1.s2.0a1b2c3d4e5f@news.example.org>"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CONFIG = """
[digest]
work_dir = "var"

[site]
name = "The Morning Ledger"
url = "https://news.example.org"
postal_address = "1 Press Row"
domain = "news.example.org"

[web]
base_url = "https://news.example.org/digest"

[lists.daily]
sources = ["front.txt"]
from = "The Morning Ledger <briefing@news.example.org>"
"""


def _story(store: Store, email: str) -> list[tuple[str | None, str, str, str]]:
    return [(e.old_status, e.new_status, e.actor, e.cause)
            for e in store.membership_history(email)]


def test_reports_name_their_message_id_in_the_record(tmp_path: Path, store_url: str) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "digest.toml").write_text(CONFIG, encoding="utf-8")
    settings = load_settings(tmp_path / "digest.toml",
                             env={"DIGEST_SECRET_KEY": "k" * 32, "DIGEST_DATABASE_URL": store_url})
    with open_store(store_url) as store:
        for name in ("complainer", "leaver"):
            store.add_subscriber("daily", f"{name}@example.org")
        record = store.record_edition(Edition(
            list_name="daily", date=NOW.date(), subject="s", preheader="",
            lead=Story(id="l", section="World", headline="h", is_lead=True),
            sections=(EditionSection("World", ()),)))
        store.publish_edition(record.id, message_id_domain="news.example.org", now=NOW)
        claims = store.claim_deliveries(record.id, worker_id="w", limit=9, now=NOW,
                                        lease=timedelta(minutes=5))
        store.mark_sent_many([(c, "250 ok") for c in claims], now=NOW)
        sent = {c.email: c for c in claims}
        complaint = (FIXTURES / "arf-abuse.eml").read_bytes().replace(
            PLACEHOLDER_ID.encode(), sent["complainer@example.org"].message_id.encode())
        token = make_unsubscribe_token(settings.web.secret_keys,
                                       sent["leaver@example.org"].subscriber_id, "daily")
        mailto = (f"From: leaver@example.org\nTo: unsubscribe@news.example.org\n"
                  f"Subject: unsubscribe {token}\nMessage-ID: <u1@mail.example.org>\n\n\n"
                  ).encode()
        report = process_bounces(settings, store, [RawMessage("1", complaint),
                                                   RawMessage("2", mailto)],
                                 dry_run=False, now=NOW)
        assert report.results["suppressed"] == report.results["unsubscribed"] == 1
        assert _story(store, "complainer@example.org")[-1] == (
            "active", "complained", "system", "complaint")
        assert store.membership_history("complainer@example.org")[-1].detail[
            "report_message_id"] == "<fbl.20260302091402.77aa@fbl.example-isp.net>"
        assert _story(store, "leaver@example.org")[-1] == (
            "active", "unsubscribed", "reader", "mailto-unsubscribe")
        assert store.membership_history("leaver@example.org")[-1].detail == {
            "report_message_id": "<u1@mail.example.org>"}
