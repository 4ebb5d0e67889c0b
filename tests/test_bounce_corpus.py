"""Public bounce corpora (Sisimai's set-of-emails, flufl.bounce's test data) and the shared
cases: each report is read as tests/fixtures/bounces/corpus.csv says, and processed against
a real store it changes only what it is evidence of (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.bounces import RawMessage, classify, decide, process_bounces
from digest.config import Settings, load_settings
from digest.errors import InvalidSubscriberError
from digest.models import Edition, EditionSection, Story
from digest.store import Store, open_store

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
TABLE = FIXTURES / "corpus.csv"
CORPORA = ("sisimai", "flufl")
DOMAIN = "news.example.org"
CASE_ID = "<e12.s34.Ab12Cd34Ef56Gh78@news.example.org>"
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
sections = ["World"]
from = "The Morning Ledger <briefing@news.example.org>"
"""

with TABLE.open(encoding="utf-8", newline="") as _table:
    ROWS = list(csv.DictReader(_table))
# What decide() calls for, by the outcome the table expects once the report is attributed.
ACTIONS = {"bounced": "suppress-bounced", "complained": "suppress-complained",
           "unsubscribed": "unsubscribe", "recorded": "record-soft", "ignored": "ignore",
           "unattributed": "ignore"}
RESULTS = {"bounced": "suppressed", "complained": "suppressed", "unsubscribed": "unsubscribed",
           "recorded": "recorded", "ignored": "ignored", "unattributed": "unattributed"}
STATUSES = {"bounced": "bounced", "complained": "complained", "unsubscribed": "unsubscribed"}


def raw_of(row: dict[str, str]) -> bytes:
    return (FIXTURES / row["file"]).read_bytes()


# --------------------------------------------------------------------------- the table


def test_table_lists_every_corpus_file_once_and_each_corpus_keeps_its_licence() -> None:
    listed = [row["file"] for row in ROWS]
    assert len(listed) == len(set(listed))
    on_disk = sorted(f"{corpus}/{p.name}" for corpus in CORPORA
                     for p in (FIXTURES / corpus).iterdir() if p.name != "LICENSE")
    assert sorted(listed) == on_disk
    for corpus in CORPORA:
        assert (FIXTURES / corpus / "LICENSE").stat().st_size > 200
    kinds = Counter(row["kind"] for row in ROWS)
    # A representative set: every kind of report, dozens of each failure.
    assert len(ROWS) >= 100
    assert kinds["hard"] >= 15 and kinds["soft"] >= 60 and kinds["complaint"] >= 4
    assert {"feedback", "unsubscribe", "auto-reply", "unknown"} <= set(kinds)
    assert {row["outcome"] for row in ROWS} == set(ACTIONS)


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_corpus_report_reads_as_the_table_says(row: dict[str, str]) -> None:
    event = classify(raw_of(row), domain=DOMAIN)
    found = {"kind": event.kind, "about": event.about if event.kind in ("hard", "soft") else "",
             "status": event.status or "", "recipient": event.recipient or "",
             "recipients": " ".join(event.recipients), "message_id": event.message_id or ""}
    expected = {key: row[key] for key in found}
    assert found == expected, row["note"]
    action = decide(event)
    assert action.kind == ACTIONS[row["outcome"]], action.reason
    assert action.reason.startswith("unattributed") == (row["outcome"] == "unattributed")


# --------------------------------------------------------------------------- with a store


@pytest.fixture
def app(tmp_path: Path, store_url: str) -> Settings:
    (tmp_path / "templates").mkdir()
    (tmp_path / "digest.toml").write_text(CONFIG, encoding="utf-8")
    return load_settings(tmp_path / "digest.toml",
                         env={"DIGEST_SECRET_KEY": "corpus-test-signing-key-0123456789",
                              "DIGEST_DATABASE_URL": store_url})


def _publish(store: Store) -> dict[int, str]:
    """Publish and send one edition to every member; subscriber id -> Message-ID."""
    day = date(2026, 3, 2)
    lead = Story(id="lead", section="World", headline="Vote tonight", is_lead=True)
    teaser = Story(id="t", section="World", headline="Summit", url="https://x.test/t")
    record = store.record_edition(Edition(
        list_name="daily", date=day, subject="Vote tonight", preheader="", lead=lead,
        sections=(EditionSection("World", (teaser,)),)))
    store.publish_edition(record.id, message_id_domain=DOMAIN, now=NOW)
    claims = store.claim_deliveries(record.id, worker_id="w", limit=1000, now=NOW,
                                    lease=timedelta(minutes=5))
    store.mark_sent_many([(c, "250 ok") for c in claims], now=NOW)
    return {c.subscriber_id: c.message_id for c in claims}


def _bare(message_id: str) -> bytes:
    return message_id.strip("<>").encode()


def test_corpus_reports_change_only_what_they_are_evidence_of(app: Settings) -> None:
    """Each report is made about a delivery of ours: its original's Message-ID becomes one
    we issued, and the address it names becomes that reader's own (made unique, as several
    reports name the same test address). Then one run processes them all."""
    with open_store(app.database_url) as store:
        readers: list[tuple[int, str, str | None]] = []
        for i, row in enumerate(ROWS):
            named = row["recipient"] or (row["recipients"].split() or [""])[0] or None
            address = f"r{i}.{named}" if named else f"reader{i}@example.org"
            try:
                sid = store.add_subscriber("daily", address)
            except InvalidSubscriberError:
                # Only reports that can never be attributed may name such an address.
                assert not row["message_id"], row["file"]
                named, address = None, f"reader{i}@example.org"
                sid = store.add_subscriber("daily", address)
            readers.append((sid, address, named))
        issued = _publish(store)
        messages = []
        for row, (sid, address, named) in zip(ROWS, readers, strict=True):
            raw = raw_of(row)
            if named:
                raw = re.sub(re.escape(named.encode()), address.encode(), raw,
                             flags=re.IGNORECASE)
            if row["message_id"]:
                raw = raw.replace(_bare(row["message_id"]), _bare(issued[sid]))
            messages.append(RawMessage(row["file"], raw))
        report = process_bounces(app, store, messages, dry_run=False, now=NOW)

        results = {o.key: (o.result, o.reason) for o in report.outcomes}
        members = {m.subscriber_id: m.status for m in store.iter_members("daily")}
        wrong = []
        for row, (sid, _address, _named) in zip(ROWS, readers, strict=True):
            result, reason = results[row["file"]]
            status = STATUSES.get(row["outcome"], "active")
            if (result, members[sid]) != (RESULTS[row["outcome"]], status):
                wrong.append(f"{row['file']}: {result} / {members[sid]} ({reason})")
        assert wrong == []
        counts = Counter(row["outcome"] for row in ROWS)
        assert report.results["suppressed"] == counts["bounced"] + counts["complained"]
        assert report.unattributed == counts["unattributed"]
        assert report.about_us == sum(1 for row in ROWS if row["about"] == "us")


# --------------------------------------------------------------------------- shared cases


@pytest.mark.parametrize(("name", "reader", "kind", "status", "member_status"), [
    ("dsn-global-headers.eml", "reader@example.net", "hard", "5.1.1", "bounced"),
    ("jmrp-complaint.eml", "kijitora@example.com", "complaint", None, "complained"),
])
def test_shared_case_is_attributed_to_the_reader_it_is_about(
        app: Settings, name: str, reader: str, kind: str, status: str | None,
        member_status: str) -> None:
    """/work/shared/cases/bounces: original headers as message/global-headers (RFC 6533),
    and an Outlook.com JMRP report (no message/feedback-report part)."""
    raw = (FIXTURES / "cases" / name).read_bytes()
    event = classify(raw, domain=DOMAIN)
    assert (event.kind, event.status, event.recipient, event.message_id) == (
        kind, status, reader, CASE_ID)
    with open_store(app.database_url) as store:
        sid = store.add_subscriber("daily", reader)
        bystander = store.add_subscriber("daily", "bystander@example.org")
        issued = _publish(store)
        ours = raw.replace(_bare(CASE_ID), _bare(issued[sid]))
        report = process_bounces(app, store, [RawMessage("case", ours)], dry_run=False,
                                 now=NOW)
        assert report.results["suppressed"] == 1, report.summary()
        assert store.get_membership_by_id(sid, "daily").status == member_status
        assert store.is_suppressed(reader)
        assert store.get_membership_by_id(bystander, "daily").status == "active"
