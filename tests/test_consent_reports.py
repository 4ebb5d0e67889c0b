"""Evidence that removes a reader must be about the reader's own mailbox (review of issue 9,
defects 2 and 12): a complaint by someone the edition was forwarded to, and a forward
target's 5.1.1, are noted or counted soft, never suppressing; a report about the reader's
mailbox under another spelling still is. Real reports through ``process_bounces`` against
a real store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.bounces.process import process_bounces
from digest.bounces.sources import RawMessage
from digest.config import Settings, load_settings
from digest.models import Edition, EditionSection, Story
from digest.store import Store, open_store

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
ARF_ID = "<e1.s2.0a1b2c3d4e5f@news.example.org>"
CASE_ID = "<e12.s34.Ab12Cd34Ef56Gh78@news.example.org>"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
READERS = ("fatima@example.org", "ines@example.org", "gone@example.net", "kept@example.net",
           "wen@gmail.com")
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


@dataclass
class World:
    settings: Settings
    store: Store
    sent: dict[str, str]  # address -> the Message-ID of its delivery

    def process(self, *reports: bytes) -> list[tuple[str, str]]:
        outcome = process_bounces(self.settings, self.store,
                                  [RawMessage(str(i), r) for i, r in enumerate(reports)],
                                  dry_run=False, now=NOW)
        return [(o.result, o.reason) for o in outcome.outcomes]

    def status(self, address: str) -> str:
        member = self.store.get_membership("daily", address)
        assert member is not None
        return member.status


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> Iterator[World]:
    (tmp_path / "templates").mkdir()
    (tmp_path / "digest.toml").write_text(CONFIG, encoding="utf-8")
    settings = load_settings(tmp_path / "digest.toml",
                             env={"DIGEST_SECRET_KEY": "k" * 32, "DIGEST_DATABASE_URL": store_url})
    with open_store(store_url) as store:
        for address in READERS:
            store.add_subscriber("daily", address)
        store.add_subscriber("weekly", "fatima@example.org")
        record = store.record_edition(Edition(
            list_name="daily", date=NOW.date(), subject="s", preheader="",
            lead=Story(id="l", section="World", headline="h", is_lead=True),
            sections=(EditionSection("World", ()),)))
        store.publish_edition(record.id, message_id_domain="news.example.org", now=NOW)
        claims = store.claim_deliveries(record.id, worker_id="w", limit=9, now=NOW,
                                        lease=timedelta(minutes=5))
        store.mark_sent_many([(c, "250 ok") for c in claims], now=NOW)
        yield World(settings, store, {c.email: c.message_id for c in claims})


def _bare(message_id: str) -> bytes:
    return message_id.strip("<>").encode()


def jmrp(world: World, reader: str) -> bytes:
    """The shared JMRP case as the review sent it: attributed to ``reader``'s delivery,
    X-HmXmrOriginalRecipient and To: left naming kijitora@example.com."""
    return (FIXTURES / "cases" / "jmrp-complaint.eml").read_bytes().replace(
        _bare(CASE_ID), _bare(world.sent[reader]))


def arf(world: World, reader: str, reporter: str) -> bytes:
    raw = (FIXTURES / "arf-abuse.eml").read_bytes().replace(_bare(ARF_ID),
                                                            _bare(world.sent[reader]))
    return raw.replace(b"Original-Rcpt-To: <redacted@example-isp.net>",
                       f"Original-Rcpt-To: <{reporter}>".encode())


def dsn(world: World, reader: str, original: str, final: str) -> bytes:
    raw = (FIXTURES / "postfix-dsn-5.1.1.eml").read_text(encoding="utf-8")
    raw = raw.replace("Final-Recipient: rfc822; gone.reader@example.net",
                      f"Final-Recipient: rfc822; {final}")
    raw = raw.replace("Original-Recipient: rfc822;gone.reader@example.net",
                      f"Original-Recipient: rfc822;{original}")
    raw = raw.replace("gone.reader@example.net", final)
    found = re.search(r"Message-ID: <(e\d+\.s\d+\.[^>]+)>", raw, re.IGNORECASE)
    assert found is not None
    return raw.replace(found.group(1), world.sent[reader].strip("<>")).encode()


# --------------------------------------------------------------------------- defect 2


def test_a_complaint_by_a_forward_recipient_is_noted_not_suppressing(world: World) -> None:
    [(result, reason)] = world.process(jmrp(world, "fatima@example.org"))
    assert result == "noted" and "another recipient" in reason
    assert world.status("fatima@example.org") == "active"
    assert not world.store.is_suppressed("fatima@example.org")
    last = world.store.membership_history("fatima@example.org", "daily")[-1]
    assert (last.old_status, last.new_status, last.actor, last.cause) == (
        "active", "active", "system", "forwarded-complaint")
    assert last.detail["report_message_id"] == (
        "<CAT0-NNE-000000000000000022@CAT0-RRR.example.org>")
    assert "active (unchanged)" in last.describe()
    # The other list is untouched; the same report again is a duplicate, noted once.
    assert world.store.get_membership("weekly", "fatima@example.org").status == "active"
    assert len(world.store.membership_history("fatima@example.org", "weekly")) == 1
    assert world.process(jmrp(world, "fatima@example.org"))[0][0] == "duplicate"
    assert [e.cause for e in world.store.membership_history("fatima@example.org", "daily")
            ].count("forwarded-complaint") == 1


def test_an_arf_complaint_is_the_readers_only_for_their_own_mailbox(world: World) -> None:
    results = world.process(
        arf(world, "ines@example.org", "friend@outlook.example"),  # a forward's reader
        arf(world, "wen@gmail.com", "W.E.N+news@GMAIL.com"),  # her own mailbox, respelled
        arf(world, "kept@example.net", "redacted@example-isp.net"))  # RFC 6590 redaction
    assert [r for r, _ in results] == ["noted", "suppressed", "suppressed"]
    assert world.status("ines@example.org") == "active"
    assert not world.store.is_suppressed("ines@example.org")
    assert world.status("wen@gmail.com") == world.status("kept@example.net") == "complained"


# --------------------------------------------------------------------------- defect 12


def test_a_forward_targets_hard_bounce_counts_soft(world: World) -> None:
    [(result, reason)] = world.process(dsn(world, "gone@example.net", "gone@example.net",
                                           "forward.target@elsewhere.example"))
    assert result == "recorded" and "counted as soft" in reason
    assert world.status("gone@example.net") == "active"
    assert not world.store.is_suppressed("gone@example.net")
    # The reader's own mailbox failing (whatever the case or tag) is a hard bounce.
    [(result, _)] = world.process(dsn(world, "kept@example.net", "kept@example.net",
                                      "KEPT+x@example.net"))
    assert result == "suppressed" and world.status("kept@example.net") == "bounced"
