"""Bounce processing: classification of real-looking reports, store attribution and suppression,
Maildir and IMAP (a real server on 127.0.0.1) sources, idempotent re-runs, the CLI."""

from __future__ import annotations

import mailbox
import socket
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.header import Header
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_server import ImapServer
from smtp_servers import make_tls

from digest.bounces import (
    EVENT_KINDS,
    BounceEvent,
    BounceSourceError,
    ImapSource,
    MaildirSource,
    RawMessage,
    classify,
    decide,
    parse_imap_url,
    process_bounces,
)
from digest.cli.bounces import bounces
from digest.config import Settings, load_settings
from digest.errors import ConfigError, StoreError
from digest.models import Edition, EditionSection, Story
from digest.store import Store, open_store
from digest.store.schema import bounce_events, deliveries
from digest.tokens import make_manage_token, make_unsubscribe_token

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
DOMAIN = "news.example.org"
PLACEHOLDER_ID = "<e1.s2.0a1b2c3d4e5f@news.example.org>"
KEY = "bounce-test-signing-key-0123456789"
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
title = "Morning Briefing"
sources = ["front.txt"]
sections = ["Politics", "World"]
from = "The Morning Ledger <briefing@news.example.org>"

[lists.weekly]
sources = ["front.txt"]
sections = ["World"]
from = "The Morning Ledger <weekly@news.example.org>"
"""


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --------------------------------------------------------------------------- classify

CASES = [
    # file, kind, status, action, recipient
    ("postfix-dsn-5.1.1.eml", "hard", "5.1.1", "suppress-bounced", "gone.reader@example.net"),
    ("exim-plain-550.eml", "hard", "5.1.1", "suppress-bounced", "old.account@example.com"),
    ("gmail-dsn-failure.eml", "hard", "5.1.1", "suppress-bounced", None),
    ("delayed-4.2.2.eml", "soft", "4.2.2", "record-soft", "busy.reader@example.org"),
    ("mailbox-full-5.2.2.eml", "soft", "5.2.2", "record-soft", "voll@example.de"),
    ("arf-abuse.eml", "complaint", None, "suppress-complained", "redacted@example-isp.net"),
    ("vacation.eml", "auto-reply", None, "ignore", None),
    ("vacation-subject-only.eml", "auto-reply", None, "ignore", None),
    ("delivered-dsn.eml", "unknown", "2.0.0", "ignore", "happy@example.org"),
]


@pytest.mark.parametrize(("name", "kind", "status", "action", "recipient"), CASES)
def test_fixture_is_classified_and_names_our_message(name: str, kind: str, status: str | None,
                                                     action: str, recipient: str | None) -> None:
    event = classify(fixture(name), domain=DOMAIN)
    assert (event.kind, event.status, event.recipient) == (kind, status, recipient)
    assert event.message_id == PLACEHOLDER_ID
    assert decide(event).kind == action


def test_crlf_and_lf_line_endings_classify_alike() -> None:
    lf = fixture("postfix-dsn-5.1.1.eml")
    crlf = lf.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert classify(crlf, domain=DOMAIN) == classify(lf, domain=DOMAIN)
    gmail_lf = fixture("gmail-dsn-failure.eml").replace(b"\r\n", b"\n")
    assert classify(gmail_lf, domain=DOMAIN) == classify(fixture("gmail-dsn-failure.eml"),
                                                         domain=DOMAIN)


def test_attached_original_yields_our_unsubscribe_token() -> None:
    token = make_unsubscribe_token((KEY,), 7, "daily")
    for name in ("arf-abuse.eml", "postfix-dsn-5.1.1.eml"):
        raw = fixture(name).replace(b"TOKEN-PLACEHOLDER", token.encode())
        raw = raw.replace(PLACEHOLDER_ID.encode(), b"<campaign-42@esp.example>")
        event = classify(raw, domain=DOMAIN)
        assert event.token == token
        assert event.message_id == "<campaign-42@esp.example>"
        assert decide(event).kind in ("suppress-complained", "suppress-bounced")


def test_forged_bounce_names_a_victim_but_none_of_our_messages() -> None:
    event = classify(fixture("forged-bounce.eml"), domain=DOMAIN)
    assert (event.kind, event.recipient) == ("hard", "victim@example.org")
    assert event.message_id == "<forged-1234@news.example.org>"
    assert event.token is None
    bare = BounceEvent("hard", recipient="victim@example.org", status="5.1.1")
    assert decide(bare).kind == "ignore"
    assert decide(bare).reason.startswith("unattributed")


def test_delay_or_failed_without_status_is_never_hard() -> None:
    raw = fixture("postfix-dsn-5.1.1.eml").replace(b"Status: 5.1.1\n", b"").replace(
        b"550 5.1.1", b"550").replace(b"Action: failed", b"Action: delayed")
    assert classify(raw, domain=DOMAIN).kind == "soft"
    no_status = fixture("postfix-dsn-5.1.1.eml").replace(b"Status: 5.1.1\n", b"")
    assert classify(no_status, domain=DOMAIN).status == "5.1.1"  # from Diagnostic-Code
    temporary = fixture("postfix-dsn-5.1.1.eml").replace(b"5.1.1", b"4.4.1")
    assert classify(temporary, domain=DOMAIN).kind == "soft"


def test_mailto_unsubscribe_carries_the_token_from_the_subject() -> None:
    token = make_unsubscribe_token((KEY,), 12, "daily")
    encoded = Header(f"unsubscribe {token}", "utf-8").encode()
    assert encoded.startswith("=?utf-8?")
    for subject in (f"unsubscribe {token}", f"Re: Unsubscribe {token}", encoded):
        raw = (f"From: reader@example.org\nTo: unsubscribe@{DOMAIN}\nSubject: {subject}\n"
               "Message-ID: <x1@example.org>\n\n\n").encode()
        event = classify(raw, domain=DOMAIN)
        assert (event.kind, event.token) == ("unsubscribe", token), subject
        assert decide(event).kind == "unsubscribe"
    bare = classify(f"From: a@example.org\nTo: unsubscribe@{DOMAIN}\nSubject: unsubscribe\n\n"
                    .encode(), domain=DOMAIN)
    assert bare.kind == "unsubscribe" and decide(bare).kind == "ignore"


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff" * 50, fixture("garbage.eml"), b"Subject: hi\n\nplain note\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
    b"Content-Type: multipart/report; report-type=feedback-report\n\nno parts",
    b"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n",
])
def test_garbage_and_truncated_input_is_unknown_and_never_raises(raw: bytes) -> None:
    event = classify(raw, domain=DOMAIN)
    assert event.kind in ("unknown", "soft", "feedback")
    if event.kind in ("unknown", "feedback"):
        assert decide(event).kind == "ignore"
    assert event.message_id is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=4000), junk=st.binary(max_size=64),
       name=st.sampled_from([c[0] for c in CASES]))
def test_mangled_reports_never_raise(cut: int, junk: bytes, name: str) -> None:
    raw = fixture(name)
    event = classify(raw[:cut] + junk + raw[cut:], domain=DOMAIN)
    assert event.kind in EVENT_KINDS
    assert event.about in ("reader", "us")


def test_auto_replies_never_suppress_whatever_they_say() -> None:
    raw = fixture("vacation.eml").replace(b"Subject: Out of office:", b"Subject: Re:")
    event = classify(raw, domain=DOMAIN)  # headers alone (Auto-Submitted, X-Autoreply)
    assert event.kind == "auto-reply" and decide(event).kind == "ignore"


# --------------------------------------------------------------------------- store


def _edition(list_name: str, day: date) -> Edition:
    lead = Story(id=f"lead-{day}", section="Politics", headline=f"Vote {day}", is_lead=True)
    teaser = Story(id=f"t-{day}", section="World", headline=f"Summit {day}",
                   url=f"https://x.test/{day}")
    return Edition(list_name=list_name, date=day, subject=f"Vote {day}", preheader="",
                   lead=lead, sections=(EditionSection("World", (teaser,)),))


def _publish(store: Store, day: date, list_name: str = "daily") -> dict[str, str]:
    """Publish an edition and send it; returns email → Message-ID of its ledger rows."""
    record = store.record_edition(_edition(list_name, day))
    store.publish_edition(record.id, message_id_domain=DOMAIN, now=NOW)
    claims = store.claim_deliveries(record.id, worker_id="w", limit=100, now=NOW,
                                    lease=timedelta(minutes=5))
    store.mark_sent_many([(c, "250 ok") for c in claims], now=NOW)
    return {c.email: c.message_id for c in claims}


def test_find_delivery_needs_the_exact_message_id(store: Store) -> None:
    sid = store.add_subscriber("daily", "ann@example.org")
    ids = _publish(store, date(2026, 3, 2))
    mid = ids["ann@example.org"]
    found = store.find_delivery_by_message_id(mid)
    assert found is not None
    assert (found.subscriber_id, found.list_name, found.email) == (sid, "daily",
                                                                   "ann@example.org")
    assert store.find_delivery_by_message_id(mid.upper().replace("<E", "<e").replace(
        ".S", ".s")) == found
    guessed = mid.split(".")[0] + "." + mid.split(".")[1] + ".000000000000@" + DOMAIN + ">"
    assert store.find_delivery_by_message_id(guessed) is None
    assert store.find_delivery_by_message_id("<e999.s1.abcdef@news.example.org>") is None
    assert store.find_delivery_by_message_id("<random@news.example.org>") is None


def test_record_bounce_suppresses_once_and_counts_soft_bounces_per_delivery(
        store: Store) -> None:
    sid = store.add_subscriber("daily", "soft@example.org")
    store.add_subscriber("weekly", "soft@example.org")
    deliveries_ = [store.find_delivery_by_message_id(_publish(store, date(2026, 3, d))[
        "soft@example.org"]) for d in (2, 3, 4)]
    assert all(deliveries_)
    first, second, third = (d.delivery_id for d in deliveries_ if d)

    def soft(key: str, delivery: int | None, when: datetime = NOW) -> str:
        return store.record_bounce(key, kind="soft", subscriber_id=sid, delivery_id=delivery,
                                   status="4.2.2", reason="mailbox full", now=when)

    assert soft("k1", first) == "recorded"
    assert soft("k1", first) == "duplicate"
    assert soft("k2", first) == "recorded"  # a second delay notice for the same message
    assert soft("k3", second) == "recorded"
    assert store.get_membership("daily", "soft@example.org").status == "active"
    assert soft("k4", third) == "suppressed"
    assert store.get_membership("daily", "soft@example.org").status == "bounced"
    assert store.get_membership("weekly", "soft@example.org").status == "bounced"
    assert store.is_suppressed("soft@example.org")
    # A complaint after the bounce is stronger evidence: bounced -> complained, everywhere.
    assert store.record_bounce("k5", kind="complaint", subscriber_id=sid, delivery_id=first,
                               status=None, reason="abuse", now=NOW) == "suppressed"
    assert store.get_membership("weekly", "soft@example.org").status == "complained"
    assert store.record_bounce("k6", kind="complaint", subscriber_id=sid, delivery_id=second,
                               status=None, reason="abuse", now=NOW) == "already-suppressed"


def test_soft_bounces_outside_the_window_do_not_add_up(store: Store) -> None:
    sid = store.add_subscriber("daily", "slow@example.org")
    old = NOW - timedelta(days=20)
    for i in range(2):
        assert store.record_bounce(f"old{i}", kind="soft", subscriber_id=sid, delivery_id=None,
                                   status="4.4.1", reason="no answer", now=old) == "recorded"
    assert store.record_bounce("new", kind="soft", subscriber_id=sid, delivery_id=None,
                               status="4.4.1", reason="no answer", now=NOW) == "recorded"
    assert not store.is_suppressed("slow@example.org")
    with pytest.raises(StoreError):
        store.record_bounce("bad", kind="vacation", subscriber_id=sid, delivery_id=None,
                            status=None, reason="x", now=NOW)


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def env(tmp_path: Path, store_url: str) -> dict[str, str]:
    (tmp_path / "templates").mkdir()
    (tmp_path / "digest.toml").write_text(CONFIG, encoding="utf-8")
    return {"DIGEST_SECRET_KEY": KEY, "DIGEST_DATABASE_URL": store_url}


@pytest.fixture
def app(tmp_path: Path, env: dict[str, str]) -> Settings:
    return load_settings(tmp_path / "digest.toml", env=env)


@dataclass
class World:
    store: Store
    ids: dict[str, str]
    sids: dict[str, int]


READERS = ("hard", "complainer", "leaver", "holiday", "full", "victim", "other")


@pytest.fixture
def world(app: Settings) -> World:
    with open_store(app.database_url) as store:
        sids = {name: store.add_subscriber("daily", f"{name}@example.org") for name in READERS}
        store.add_subscriber("weekly", "leaver@example.org")
        ids = _publish(store, date(2026, 3, 2))
        yield World(store, {name: ids[f"{name}@example.org"] for name in READERS}, sids)


# The address each fixture's report names; the end-to-end tests make it the reader's.
NAMED = {"postfix-dsn-5.1.1.eml": b"gone.reader@example.net",
         "mailbox-full-5.2.2.eml": b"voll@example.de"}


def _about(name: str, message_id: str, who: str) -> bytes:
    """A fixture report about our delivery ``message_id`` to ``who``@example.org."""
    raw = fixture(name).replace(PLACEHOLDER_ID.encode(), message_id.encode())
    if name in NAMED:
        raw = raw.replace(NAMED[name], f"{who}@example.org".encode())
    return raw


def _reports(app: Settings, w: World) -> dict[str, bytes]:
    def about(name: str, who: str) -> bytes:
        return _about(name, w.ids[who], who)

    token = make_unsubscribe_token(app.web.secret_keys, w.sids["leaver"], "daily")
    guess = ".".join(w.ids["victim"].split(".")[:2]) + ".ffffffffffff@" + DOMAIN + ">"
    return {
        "1-hard": about("postfix-dsn-5.1.1.eml", "hard"),
        "2-complaint": fixture("arf-abuse.eml").replace(PLACEHOLDER_ID.encode(),
                                                        w.ids["complainer"].encode()),
        "3-unsubscribe": (f"From: leaver@example.org\nTo: unsubscribe@{DOMAIN}\n"
                          f"Subject: unsubscribe {token}\nMessage-ID: <u1@example.org>\n\n"
                          "\n").encode(),
        "4-vacation": about("vacation.eml", "holiday"),
        "5-full": about("mailbox-full-5.2.2.eml", "full"),
        "6-forged": fixture("forged-bounce.eml"),
        "7-forged-guess": fixture("forged-bounce.eml").replace(
            b"<forged-1234@news.example.org>", guess.encode()),
        "8-garbage": fixture("garbage.eml"),
        "9-forged-token": (f"From: x@example.org\nTo: unsubscribe@{DOMAIN}\nSubject: "
                           f"unsubscribe {make_manage_token(app.web.secret_keys, w.sids['other'], 'daily')}"
                           "\n\n\n").encode(),
    }


def _maildir(path: Path, reports: dict[str, bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for name in sorted(reports):
        key = box.add(reports[name])
        if name.startswith("5"):  # someone read this one already: it sits in cur/
            msg = box[key]
            msg.set_subdir("cur")
            msg.add_flag("S")
            box[key] = msg
    return path


def _statuses(store: Store) -> dict[str, str]:
    return {m.email.split("@")[0]: m.status for m in store.iter_members("daily")}


def test_maildir_run_applies_attributed_reports_once(app: Settings, world: World,
                                                     tmp_path: Path) -> None:
    box = _maildir(tmp_path / "Maildir", _reports(app, world))
    state = tmp_path / "state"
    with MaildirSource(box, state_dir=state) as source:
        report = process_bounces(app, world.store, source, dry_run=False, now=NOW)

    assert report.processed == 9
    assert (report.hard, report.soft, report.complaints, report.unsubscribes,
            report.auto_replies, report.unknown) == (3, 1, 1, 2, 1, 1)
    assert report.results["suppressed"] == 2
    assert report.results["unsubscribed"] == 1
    assert report.results["recorded"] == 1
    assert report.unattributed == 3
    assert report.reasons["5.1.1 bad destination mailbox address"] == 1
    assert _statuses(world.store) == {
        "hard": "bounced", "complainer": "complained", "leaver": "unsubscribed",
        "holiday": "active", "full": "active", "victim": "active", "other": "active"}
    assert world.store.get_membership("weekly", "leaver@example.org").status == "active"
    assert world.store.is_suppressed("hard@example.org")
    assert world.store.is_suppressed("complainer@example.org")
    assert not world.store.is_suppressed("victim@example.org")
    assert all(name.endswith(":2,S") for name in _names(box, "cur"))
    assert _names(box, "new") == []

    # A later edition leaves out everyone who bounced, complained or unsubscribed.
    later = _publish(world.store, date(2026, 3, 3))
    assert {e.split("@")[0] for e in later} == {"holiday", "full", "victim", "other"}

    # Re-running finds nothing to do; losing the state file changes nothing either.
    before = _store_rows(world.store)
    with MaildirSource(box, state_dir=state) as source:
        again = process_bounces(app, world.store, source, dry_run=False, now=NOW)
    assert again.processed == 0
    with MaildirSource(box, state_dir=tmp_path / "fresh-state") as source:
        replay = process_bounces(app, world.store, source, dry_run=False, now=NOW)
    assert replay.processed == 9
    assert replay.results["duplicate"] == 3
    assert replay.results["already-inactive"] == 1
    assert replay.results["suppressed"] == replay.results["unsubscribed"] == 0
    assert _store_rows(world.store) == before


def _names(box: Path, sub: str) -> list[str]:
    return sorted(p.name for p in (box / sub).iterdir())


def _store_rows(store: Store) -> tuple[object, ...]:
    with store.read() as conn:
        events = conn.execute(sa.select(bounce_events.c.event_key, bounce_events.c.kind)
                              .order_by(bounce_events.c.id)).all()
        ledger = conn.execute(sa.select(deliveries.c.id, deliveries.c.status)
                              .order_by(deliveries.c.id)).all()
    return tuple(events), tuple(ledger), tuple(sorted(_statuses(store).items()))


def test_dry_run_changes_and_marks_nothing(app: Settings, world: World,
                                           tmp_path: Path) -> None:
    box = _maildir(tmp_path / "Maildir", _reports(app, world))
    before, names = _store_rows(world.store), _names(box, "new")
    with MaildirSource(box, state_dir=tmp_path / "state") as source:
        report = process_bounces(app, world.store, source, dry_run=True, now=NOW)
    assert report.processed == 9
    assert report.results["dry-run"] == 4
    assert "Dry run" in report.summary()[0]
    assert _store_rows(world.store) == before
    assert _names(box, "new") == names
    assert not (tmp_path / "state").exists()


def test_three_soft_bounces_on_three_editions_suppress(app: Settings, world: World) -> None:
    ids = [world.ids["full"]] + [_publish(world.store, date(2026, 3, d))["full@example.org"]
                                 for d in (3, 4)]
    messages = [RawMessage(f"m{i}", _about("mailbox-full-5.2.2.eml", mid, "full"))
                for i, mid in enumerate(ids)]
    report = process_bounces(app, world.store, messages[:2], dry_run=False, now=NOW)
    assert report.results["recorded"] == 2
    assert _statuses(world.store)["full"] == "active"
    report = process_bounces(app, world.store, messages[2:], dry_run=False, now=NOW)
    assert report.results["suppressed"] == 1
    assert _statuses(world.store)["full"] == "bounced"


def test_a_store_failure_leaves_the_message_unacknowledged(app: Settings,
                                                           world: World) -> None:
    acked: list[str] = []
    raw = _about("postfix-dsn-5.1.1.eml", world.ids["hard"], "hard")
    world.store.close()
    with world.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE bounce_events"))
    with pytest.raises(StoreError):
        process_bounces(app, world.store, [RawMessage("k", raw, lambda: acked.append("k"))],
                        dry_run=False, now=NOW)
    assert acked == []


# --------------------------------------------------------------------------- sources


def test_maildir_source_refuses_a_directory_that_is_not_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(BounceSourceError, match="not a Maildir"):
        MaildirSource(tmp_path, state_dir=tmp_path / "s").open()


def test_maildir_state_forgets_only_messages_gone_after_a_full_pass(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    keys = [box.add(f"Subject: {i}\n\nbody\n".encode()) for i in range(3)]
    state = tmp_path / "state"
    with MaildirSource(tmp_path / "Maildir", state_dir=state) as source:
        for message in source:
            message.ack()
    logged = set(next(state.iterdir()).read_text().split())
    assert logged == set(keys)
    box.remove(keys[0])
    box.add(b"Subject: new\n\nbody\n")
    with MaildirSource(tmp_path / "Maildir", state_dir=state) as source:
        next(iter(source))  # an interrupted pass prunes nothing
    assert set(next(state.iterdir()).read_text().split()) == set(keys)
    with MaildirSource(tmp_path / "Maildir", state_dir=state) as source:
        assert [m.data for m in source] == [b"Subject: new\n\nbody\n"]
    assert set(next(state.iterdir()).read_text().split()) == set(keys[1:])


def test_imap_urls_are_checked_before_any_connection() -> None:
    target = parse_imap_url("imaps://bounces%40news@mail.example.org/Bounces%20In")
    assert (target.tls, target.user, target.host, target.port, target.folder) == (
        True, "bounces@news", "mail.example.org", 993, "Bounces In")
    assert parse_imap_url("imap://u@127.0.0.1:1143").folder == "INBOX"
    for bad in ("imap://u@mail.example.org/INBOX", "imaps://u:pw@mail.example.org/INBOX",
                "https://u@mail.example.org/", "imaps://mail.example.org/INBOX",
                "imaps://u@mail.example.org:99999/", "imaps://u@host/Entw%C3%BCrfe"):
        with pytest.raises(ConfigError):
            parse_imap_url(bad)


@pytest.fixture
def imap() -> ImapServer:
    with ImapServer(users={"bounces": 'pa ss"word'}) as server:
        yield server


def test_imap_source_reads_unprocessed_messages_and_flags_them(imap: ImapServer) -> None:
    first = imap.add("INBOX", b"Subject: one\r\n\r\nbody\r\n")
    seen = imap.add("INBOX", b"Subject: read by a person\r\n\r\nbody\r\n", {"\\Seen"})
    imap.add("INBOX", b"Subject: done\r\n\r\n", {"\\Seen", "$DigestProcessed"})
    imap.add("INBOX", b"Subject: deleted\r\n\r\n", {"\\Deleted"})
    url = f"imap://bounces@127.0.0.1:{imap.port}/INBOX"
    with ImapSource(url, password='pa ss"word', timeout=2) as source:
        got = list(source)
        assert [m.key for m in got] == [f"uid:{first}", f"uid:{seen}"]
        assert "\\Seen" not in imap.flags()[first]  # BODY.PEEK: unread until processed
        got[0].ack()
    assert imap.flags()[first] == {"\\Seen", "$DigestProcessed"}
    with ImapSource(url, password='pa ss"word', timeout=2) as source:
        assert [m.key for m in source] == [f"uid:{seen}"]


def test_imap_without_keywords_falls_back_to_unseen() -> None:
    with ImapServer(users={"u": "p"}, keywords=False) as server:
        uid = server.add("INBOX", b"Subject: one\r\n\r\n")
        server.add("INBOX", b"Subject: read\r\n\r\n", {"\\Seen"})
        with ImapSource(f"imap://u@127.0.0.1:{server.port}/", password="p",
                        timeout=2) as source:
            assert not source.keywords
            (only,) = list(source)
            only.ack()
        assert server.flags()[uid] == {"\\Seen"}


def test_imaps_verifies_the_server_certificate(tmp_path: Path) -> None:
    server_ctx, client_ctx = make_tls(tmp_path)
    with ImapServer(users={"u": "p"}, ssl_context=server_ctx) as server:
        uid = server.add("INBOX", b"Subject: one\r\n\r\n")
        url = f"imaps://u@127.0.0.1:{server.port}/INBOX"
        with ImapSource(url, password="p", timeout=2, ssl_context=client_ctx) as source:
            assert [m.key for m in source] == [f"uid:{uid}"]
        with pytest.raises(BounceSourceError, match="TLS handshake .* failed"):
            ImapSource(url, password="p", timeout=2).open()  # the system's CAs: untrusted
    assert ("LOGIN", None) in server.log


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def run(*args: str, password: str | None = None) -> Result:
        extra = {"DIGEST_IMAP_PASSWORD": password} if password is not None else {}
        return runner.invoke(bounces, ["process", *args, "--config",
                                       str(tmp_path / "digest.toml")], env=extra,
                             catch_exceptions=False)

    return run


def _one_sentence_error(result: Result) -> str:
    text = " ".join(result.output.split())
    assert text.startswith("error:"), result.output
    assert "Traceback" not in result.output
    return text


def test_cli_needs_exactly_one_source(cli, tmp_path: Path) -> None:
    assert cli().exit_code == 2
    both = cli("--maildir", str(tmp_path), "--imap", "imap://u@127.0.0.1/")
    assert both.exit_code == 2 and "exactly one" in both.output


def test_cli_unreadable_maildir_exits_1(cli, tmp_path: Path) -> None:
    result = cli("--maildir", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert "is not a Maildir" in _one_sentence_error(result)


def test_cli_processes_a_maildir_and_prints_the_summary(cli, app: Settings, world: World,
                                                        tmp_path: Path) -> None:
    box = _maildir(tmp_path / "Maildir", _reports(app, world))
    dry = cli("--maildir", str(box), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run: processed 9 messages" in dry.output
    assert _statuses(world.store)["hard"] == "active"
    result = cli("--maildir", str(box))
    assert result.exit_code == 0, result.output
    assert ("processed 9 messages: 3 hard, 1 soft, 1 complaint, 2 unsubscribes, "
            "1 auto-reply, 0 other feedback reports, 1 unknown; 0 failures about our mail, "
            "not the reader.") in result.output
    assert "2 suppressed" in result.output and "3 unattributed" in result.output
    assert "5.1.1 bad destination mailbox address" in result.output
    assert "example.org" not in result.output  # no addresses in the summary
    assert _statuses(world.store)["hard"] == "bounced"
    assert "processed 0 messages" in cli("--maildir", str(box)).output


def test_cli_imap_login_failure_is_one_sentence_without_the_password(cli,
                                                                     imap: ImapServer) -> None:
    url = f"imap://bounces@127.0.0.1:{imap.port}/INBOX"
    result = cli("--imap", url, password="wrong-secret-value")
    assert result.exit_code == 1
    text = _one_sentence_error(result)
    assert "refused the login for bounces" in text
    assert "wrong-secret-value" not in result.output
    assert cli("--imap", url).exit_code == 2  # no DIGEST_IMAP_PASSWORD
    assert cli("--imap", "imaps://bounces:pw@127.0.0.1/INBOX", password="x").exit_code == 2


def test_cli_imap_processes_and_flags_messages(cli, app: Settings, world: World,
                                               imap: ImapServer) -> None:
    reports = _reports(app, world)
    uids = {name: imap.add("INBOX", raw) for name, raw in sorted(reports.items())}
    url = f"imap://bounces@127.0.0.1:{imap.port}/INBOX"
    result = cli("--imap", url, password='pa ss"word')
    assert result.exit_code == 0, result.output
    assert "processed 9 messages" in result.output
    assert all(imap.flags()[uid] == {"\\Seen", "$DigestProcessed"} for uid in uids.values())
    assert _statuses(world.store)["complainer"] == "complained"
    assert _statuses(world.store)["victim"] == "active"
    again = cli("--imap", url, password='pa ss"word')
    assert "processed 0 messages" in again.output


def test_cli_imap_deadline_and_unreachable_server_exit_1(cli) -> None:
    with ImapServer(users={"u": "p"}, stall_on="SELECT", stall_seconds=3) as server:
        result = cli("--imap", f"imap://u@127.0.0.1:{server.port}/INBOX", "--timeout", "0.5",
                     password="p")
    assert result.exit_code == 1
    assert "did not answer within 0.5 seconds" in _one_sentence_error(result)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = cli("--imap", f"imap://u@127.0.0.1:{closed_port}/INBOX", password="p")
    assert refused.exit_code == 1
    assert "could not be reached" in _one_sentence_error(refused)


@pytest.mark.parametrize(("status", "kind", "about"), [
    ("5.1.1", "hard", "reader"), ("5.1.2", "hard", "reader"), ("5.1.3", "hard", "reader"),
    ("5.1.6", "hard", "reader"), ("5.1.10", "hard", "reader"), ("5.2.1", "hard", "reader"),
    ("5.0.0", "soft", "reader"), ("5.1.0", "soft", "reader"), ("5.1.4", "soft", "reader"),
    ("5.2.2", "soft", "reader"), ("5.4.4", "soft", "reader"), ("5.4.7", "soft", "reader"),
    ("5.3.0", "soft", "reader"), ("4.2.2", "soft", "reader"), ("4.4.1", "soft", "reader"),
    ("5.1.7", "soft", "us"), ("5.1.8", "soft", "us"), ("5.2.3", "soft", "us"),
    ("5.3.4", "soft", "us"), ("5.5.0", "soft", "us"), ("5.6.0", "soft", "us"),
    ("5.7.1", "soft", "us"), ("5.7.26", "soft", "us"), ("4.7.1", "soft", "us"),
])
def test_only_permanent_failures_about_the_address_are_hard(status: str, kind: str,
                                                            about: str) -> None:
    """A 5.7.x policy block (say, our server listed as spam) must not suppress a provider's
    every reader; a full mailbox or a too-big message says nothing about the address; a
    bad *sender* address (5.1.7, 5.1.8) is ours. RFC 3463 sections 3.2-3.8."""
    raw = fixture("postfix-dsn-5.1.1.eml").replace(b"5.1.1", status.encode()).replace(
        b"User unknown", b"Refused").replace(b"Recipient address", b"Message")
    event = classify(raw, domain=DOMAIN)
    assert (event.kind, event.about, event.status) == (kind, about, status)
    expected = {"hard": "suppress-bounced", "soft": "record-soft"}[kind]
    assert decide(event).kind == (expected if about == "reader" else "ignore")
