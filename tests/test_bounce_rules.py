"""The rules that decide whether a report is evidence about the reader: which status code a
report means (RFC 3463), what each ARF feedback type counts as (RFC 5965, 6430, 6591),
where our original is found (RFC 6522, 6533), and that a failure is read for the address
the delivery went to (SQLite and PostgreSQL where the store is involved)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.bounces import RawMessage, classify, decide, process_bounces
from digest.bounces.status import assess, codes_in, pick_status
from digest.config import Settings, load_settings
from digest.models import Edition, EditionSection, Story
from digest.store import Store, open_store

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
DOMAIN = "news.example.org"
OURS = "<e1.s2.0a1b2c3d4e5f@news.example.org>"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def dsn(status: str, diagnostic: str, *, recipient: str = "reader@example.net",
        blocks: str = "", original: str = "message/rfc822",
        report_type: str = "; report-type=delivery-status") -> bytes:
    """An RFC 3464 DSN with one recipient block (and ``blocks`` appended) and our
    original's headers in a part of type ``original``."""
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: briefing@news.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report{report_type}; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}
{blocks}
--B
Content-Type: {original}

From: The Morning Ledger <briefing@news.example.org>
To: {recipient}
Subject: Morning Briefing
Message-ID: {OURS}

--B--
""".encode()


# --------------------------------------------------------------------------- status codes


@pytest.mark.parametrize(("status", "diagnostic", "picked"), [
    ("5.0.0", "550 5.7.1 Message rejected as unsolicited mail", "5.7.1"),  # Exim
    ("5.0.0", "550 5.1.1 <reader@example.net>: user unknown", "5.1.1"),
    ("5.1.0", "550 5.1.1 user unknown", "5.1.1"),
    ("5.1.1", "550 5.7.1 IP address blacklisted by recipient", "5.7.1"),  # the server's words
    ("5.1.1", "550 5.0.0 user unknown", "5.1.1"),
    ("5.0.0", "452 4.2.2 mailbox full", "5.2.2"),  # failed for good: the Status's class
    ("5.0.0 (permanent failure)", "5.1.0 - Unknown address error 550-'5.2.2 Mailbox Full'",
     "5.2.2"),  # Amazon SES quotes its own code, then the remote one
    ("", "550 Unknown user", "5.0.0"),
    ("4.4.7", "", "4.4.7"),
    ("", "", None),
])
def test_the_most_specific_status_code_wins(status: str, diagnostic: str,
                                            picked: str | None) -> None:
    assert pick_status(status, diagnostic) == picked


def test_versions_and_addresses_are_not_status_codes() -> None:
    assert codes_in("Received: by mx (Exim 4.94.2) 192.0.2.5.1.1 id 5.1.1.2") == []
    assert codes_in("(#5.1.1) and 550-5.7.26") == ["5.1.1", "5.7.26"]


@pytest.mark.parametrize(("status", "text", "kind", "about"), [
    ("5.0.0", "550 Unknown user", "soft", "reader"),  # wording never makes it hard
    ("5.0.0", "550 Denied by policy", "soft", "us"),
    ("5.0.0", "550 Bad SPF records for [example.org]", "soft", "us"),
    ("5.0.0", "554 rejected due to spam classification", "soft", "us"),
    ("5.5.0", "550 5.5.0 Invalid recipient", "soft", "reader"),
    ("5.5.0", "550 domain mismatches client ip", "soft", "us"),
    ("5.2.1", ("550-5.2.1 The user is receiving mail at a rate that prevents additional "
               "messages"), "soft", "us"),
    ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled", "hard",
     "reader"),
    ("5.7.1", "550 5.7.1 user unknown", "soft", "us"),  # a specific code is not reworded
    (None, "Delivery to the following recipient failed permanently", "soft", "reader"),
])
def test_wording_decides_only_what_codes_leave_open(status: str | None, text: str, kind: str,
                                                    about: str) -> None:
    verdict = assess(status, text)
    assert (verdict.kind, verdict.about) == (kind, about)


def test_exim_generic_status_with_a_policy_diagnostic_changes_nothing() -> None:
    """The issue's own example: Exim writes Status 5.0.0 whatever the remote said."""
    event = classify(dsn("5.0.0", "550 5.7.1 Message rejected as unsolicited mail"),
                     domain=DOMAIN)
    assert (event.kind, event.status, event.about) == ("soft", "5.7.1", "us")
    action = decide(event)
    assert action.kind == "ignore" and "about our mail" in action.reason


@pytest.mark.parametrize("status", ["5.1.7", "5.1.8"])
def test_a_bad_sender_address_is_ours_not_the_readers(status: str) -> None:
    event = classify(dsn(status, f"553 {status} <briefing@news.example.org>: Sender address "
                                 "rejected: Domain not found"), domain=DOMAIN)
    assert (event.kind, event.about, event.status) == ("soft", "us", status)
    assert decide(event).kind == "ignore"


def test_a_delivered_or_verified_dsn_is_not_a_failure() -> None:
    for action in ("delivered", "relayed", "deliverable"):
        raw = dsn("2.0.0", "250 2.0.0 Ok").replace(b"Action: failed",
                                                   f"Action: {action}".encode())
        assert classify(raw, domain=DOMAIN).kind == "unknown"


# --------------------------------------------------------------------------- feedback


@pytest.mark.parametrize(("feedback_type", "kind", "action"), [
    ("abuse", "complaint", "suppress-complained"),
    ("fraud", "complaint", "suppress-complained"),
    ("Abuse", "complaint", "suppress-complained"),
    ("auth-failure", "feedback", "ignore"),
    ("not-spam", "feedback", "ignore"),
    ("virus", "feedback", "ignore"),
    ("other", "feedback", "ignore"),
    ("x-something-new", "feedback", "ignore"),
    ("opt-out", "unsubscribe", "unsubscribe"),
])
def test_only_abuse_and_fraud_reports_are_complaints(feedback_type: str, kind: str,
                                                     action: str) -> None:
    raw = fixture("arf-abuse.eml").replace(b"Feedback-Type: abuse",
                                           f"Feedback-Type: {feedback_type}".encode())
    event = classify(raw, domain=DOMAIN)
    assert (event.kind, event.message_id) == (kind, OURS)
    assert decide(event).kind == action


def test_a_feedback_report_without_a_type_is_no_complaint() -> None:
    raw = fixture("arf-abuse.eml").replace(b"Feedback-Type: abuse\n", b"")
    assert b"Feedback-Type" not in raw
    event = classify(raw, domain=DOMAIN)
    assert event.kind == "feedback" and decide(event).kind == "ignore"


def test_jmrp_is_recognised_by_its_marker_or_its_sender() -> None:
    case = fixture("cases/jmrp-complaint.eml")
    event = classify(case, domain=DOMAIN)
    assert event.kind == "complaint"
    assert event.report_id == "<CAT0-NNE-000000000000000022@CAT0-RRR.example.org>"
    # The same report as multipart/report, and one without the marker header.
    as_report = case.replace(b"multipart/mixed;", b"multipart/report;")
    assert classify(as_report, domain=DOMAIN).kind == "complaint"
    unmarked = case.replace(b"X-HmXmrOriginalRecipient: kijitora@example.com\n", b"")
    event = classify(unmarked, domain=DOMAIN)
    assert (event.kind, event.recipient) == ("complaint", "kijitora@example.com")  # To:
    # Neither marker nor Outlook.com's sender and subject: a forwarded message, no complaint.
    forwarded = unmarked.replace(b"From: staff@hotmail.com", b"From: friend@example.org")
    assert classify(forwarded, domain=DOMAIN).kind == "unknown"


# --------------------------------------------------------------------------- originals


@pytest.mark.parametrize("part_type", ["message/rfc822", "message/global",
                                       "text/rfc822-headers", "message/rfc822-headers",
                                       "message/global-headers"])
def test_our_message_id_is_found_in_every_kind_of_returned_original(part_type: str) -> None:
    event = classify(dsn("5.1.1", "550 5.1.1 user unknown", original=part_type),
                     domain=DOMAIN)
    assert (event.kind, event.message_id) == ("hard", OURS)


def test_global_dsn_fields_are_read_past_the_first_block() -> None:
    raw = dsn("5.1.1", "550 5.1.1 user unknown").replace(
        b"message/delivery-status", b"message/global-delivery-status").replace(
        b"rfc822; reader@example.net", b"utf-8; r\\x{E9}ader@example.net")
    event = classify(raw, domain=DOMAIN)
    assert (event.kind, event.recipient) == ("hard", "réader@example.net")


def test_only_the_originals_own_message_id_attributes_it() -> None:
    """A reader's reply to us names our Message-ID in References; a report about the reply
    is not about our delivery."""
    raw = dsn("5.1.1", "550 5.1.1 user unknown").replace(
        f"Message-ID: {OURS}".encode(),
        f"Message-ID: <reply-1@example.net>\nReferences: {OURS}".encode())
    assert classify(raw, domain=DOMAIN).message_id == "<reply-1@example.net>"


def test_a_multipart_report_without_report_type_gets_the_bounce_heuristics() -> None:
    raw = dsn("5.1.1", "", report_type="").replace(
        b"Content-Type: message/delivery-status", b"Content-Type: text/plain").replace(
        b"Your message could not be delivered.",
        b"<reader@example.net>: host mx said: 550 5.1.1 User unknown")
    event = classify(raw, domain=DOMAIN)
    assert (event.kind, event.status, event.message_id) == ("hard", "5.1.1", OURS)
    mdn = raw.replace(b"multipart/report;", b"multipart/report; "
                                            b"report-type=disposition-notification;")
    assert classify(mdn, domain=DOMAIN).kind == "unknown"  # a read receipt
    tls = raw.replace(b"multipart/report;", b"multipart/report; report-type=tlsrpt;")
    assert classify(tls, domain=DOMAIN).kind == "unknown"  # RFC 8460, not about a delivery


def test_a_long_prose_bounce_is_read_from_its_beginning() -> None:
    """flufl.bounce reads only the first FLUFL_BYTES: the diagnosis, not megabytes of the
    returned original."""
    head = (b"From: MAILER-DAEMON@mx.example.net\nSubject: Mail delivery failed\n\n"
            b"The following address failed:\n\n  gone@example.net\n"
            b"    550 5.1.1 <gone@example.net>: No such user\n\n"
            b"------ This is a copy of the message, including all the headers. ------\n\n"
            + f"Message-ID: {OURS}\n\n".encode())
    event = classify(head + b"lorem ipsum dolor sit amet 550\n" * 60_000, domain=DOMAIN)
    assert (event.kind, event.status, event.recipients, event.message_id) == (
        "hard", "5.1.1", ("gone@example.net",), OURS)


def test_flufl_bounce_failures_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A detector that trips on odd input logs a traceback quoting the message; we drop it."""
    caplog.set_level(logging.DEBUG)
    raw = b"Subject: Undelivered Mail\n\nsecret.reader@example.org failed 550\n"
    assert classify(raw, domain=DOMAIN).kind == "soft"
    assert not [r for r in caplog.records if r.name.startswith("flufl")]


# --------------------------------------------------------------------------- the reader's block


@pytest.fixture
def app(tmp_path: Path, store_url: str) -> Settings:
    (tmp_path / "templates").mkdir()
    (tmp_path / "digest.toml").write_text("""
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
""", encoding="utf-8")
    return load_settings(tmp_path / "digest.toml",
                         env={"DIGEST_SECRET_KEY": "rules-test-signing-key-0123456789",
                              "DIGEST_DATABASE_URL": store_url})


def _delivered(store: Store, address: str) -> str:
    """Our Message-ID of a sent delivery to ``address``."""
    sid = store.add_subscriber("daily", address)
    lead = Story(id="lead", section="World", headline="Vote", is_lead=True)
    record = store.record_edition(Edition(
        list_name="daily", date=date(2026, 3, 2), subject="Vote", preheader="", lead=lead,
        sections=(EditionSection("World", (lead,)),)))
    store.publish_edition(record.id, message_id_domain=DOMAIN, now=NOW)
    claims = store.claim_deliveries(record.id, worker_id="w", limit=10, now=NOW,
                                    lease=timedelta(minutes=5))
    store.mark_sent_many([(c, "250 ok") for c in claims], now=NOW)
    return next(c.message_id for c in claims if c.subscriber_id == sid)


def test_a_hard_bounce_for_another_address_is_only_counted(app: Settings) -> None:
    """Our message to the reader, forwarded to an address that is gone: mail to the reader
    fails, but the reader's own address is not shown to be gone."""
    with open_store(app.database_url) as store:
        ours = _delivered(store, "reader@example.net")
        raw = dsn("5.1.1", "550 5.1.1 user unknown", recipient="old.target@example.com")
        report = process_bounces(app, store, [RawMessage("k", raw.replace(
            OURS.encode(), ours.encode()))], dry_run=False, now=NOW)
        (outcome,) = report.outcomes
        assert (outcome.kind, outcome.result) == ("hard", "recorded")
        assert "another address" in outcome.reason
        assert store.get_membership("daily", "reader@example.net").status == "active"


def test_a_report_naming_several_recipients_is_read_for_the_reader(app: Settings) -> None:
    other = ("\nFinal-Recipient: rfc822; someone.else@example.com\nAction: failed\n"
             "Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n")
    with open_store(app.database_url) as store:
        ours = _delivered(store, "Reader@Example.NET")
        raw = dsn("5.2.2", "552 5.2.2 mailbox full", blocks=other)
        assert classify(raw, domain=DOMAIN).kind == "hard"  # the worst block, unattributed
        report = process_bounces(app, store, [RawMessage("k", raw.replace(
            OURS.encode(), ours.encode()))], dry_run=False, now=NOW)
        (outcome,) = report.outcomes
        assert (outcome.kind, outcome.status, outcome.result) == ("soft", "5.2.2", "recorded")
        assert store.get_membership("daily", "reader@example.net").status == "active"


def test_the_summary_counts_failures_about_our_mail(app: Settings) -> None:
    with open_store(app.database_url) as store:
        ours = _delivered(store, "reader@example.net")
        raw = dsn("5.0.0", "550 5.7.1 unsolicited mail").replace(OURS.encode(),
                                                                   ours.encode())
        report = process_bounces(app, store, [RawMessage("k", raw)], dry_run=False, now=NOW)
        head, changes = report.summary()[:2]
        assert "1 soft" in head and "1 failure about our mail, not the reader" in head
        assert "0 suppressed" in changes and "1 ignored" in changes
        assert store.get_membership("daily", "reader@example.net").status == "active"
