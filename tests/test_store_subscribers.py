"""Subscribers one at a time: validation, statuses, double opt-in, preferences, streaming."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.errors import StoreError, SubscriberNotFoundError
from digest.store import InvalidSubscriberError, Store
from digest.store.subscribers import clean_name, clean_sections, normalise_address

pytest_plugins = ["store_backends"]

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "address"), [
    ("Ann@EXAMPLE.org", "Ann@example.org"),
    ("  bob@example.com ", "bob@example.com"),
    ("hana@bücher.example", "hana@xn--bcher-kva.example"),
])
def test_addresses_are_normalised(raw: str, address: str) -> None:
    assert normalise_address(raw) == (address, address.casefold())


@pytest.mark.parametrize("raw", [
    "", "no-at-sign", "a@b", "ann@example.org\r\nRCPT TO:<evil@example.org>",
    "Ann <ann@example.org>", "alice@example.org)<bob@example.org>", "a@x.test",
    "\"quoted\"@example.org", "a@[127.0.0.1]",
])
def test_bad_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidSubscriberError):
        normalise_address(raw)


def test_smtputf8_local_part_only_when_allowed() -> None:
    with pytest.raises(InvalidSubscriberError, match="Internationalized"):
        normalise_address("rené@example.org")
    assert normalise_address("rené@example.org", allow_smtputf8=True)[0] == "rené@example.org"


@pytest.mark.parametrize("name", ["Eve\r\nBcc: x@example.org", "Eve\nX", "Eve\x00", "A" * 201,
                                  "Bell\x07", "Sep\u2028arator", "=?utf-8?q?Hi=0D=0ABcc=3A_x?=",
                                  "Ann =?UTF-8?B?SGkNCkJjYzogeA==?= Lee"])
def test_names_that_would_break_a_header_are_refused(name: str) -> None:
    with pytest.raises(InvalidSubscriberError):
        clean_name(name)


def test_names_are_tidied() -> None:
    assert clean_name("  Zoë   Martin ") == "Zoë Martin"
    assert clean_name("   ") is None
    assert clean_name('Haddad, "Nadia"') == 'Haddad, "Nadia"'


def test_sections_are_matched_to_known_names() -> None:
    known = ("Politics", "World", "Top Stories")
    assert clean_sections(["world", " top  stories", "World"], known) == (
        ["Top Stories", "World"], [])
    assert clean_sections(["Cooking"], known) == (None, ["Cooking"])
    assert clean_sections([], known) == (None, [])
    assert clean_sections(None, known) == (None, [])


def test_add_and_look_up(store: Store) -> None:
    sid = store.add_subscriber("daily", "Ann@Example.org", name="Ann", sections=["World"],
                               attributes={"city": "Lyon"}, now=NOW)
    member = store.get_membership("daily", "ANN@example.org")
    assert member is not None
    assert (member.subscriber_id, member.email, member.name, member.status) == (
        sid, "Ann@example.org", "Ann", "active")
    assert member.sections == frozenset({"World"})
    assert member.attributes == {"city": "Lyon"}
    assert member.confirmed_at == member.changed_at == NOW
    assert store.get_membership("weekly", "ann@example.org") is None
    assert store.get_membership("daily", "not an address") is None
    assert store.get_membership_by_id(sid, "daily") == member
    with pytest.raises(SubscriberNotFoundError):
        store.get_membership_by_id(sid, "weekly")
    assert store.add_subscriber("weekly", "ann@example.org") == sid


def test_add_never_reactivates(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    store.set_status("daily", "ann@example.org", "unsubscribed", now=NOW)
    store.add_subscriber("daily", "ann@example.org", name="Ann")
    member = store.get_membership("daily", "ann@example.org")
    assert member is not None and member.status == "unsubscribed" and member.name == "Ann"


def test_suppressed_address_joins_new_lists_inactive(store: Store) -> None:
    store.suppress("ann@example.org", "complained", now=NOW)
    store.add_subscriber("daily", "ann@example.org")
    member = store.get_membership("daily", "ann@example.org")
    assert member is not None and member.status == "complained"


def test_set_status_bounce_and_complaint_suppress_everywhere(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    store.add_subscriber("weekly", "ann@example.org")
    store.add_subscriber("daily", "bob@example.org")
    member = store.set_status("daily", "ann@example.org", "complained", now=NOW)
    assert member.status == "complained"
    assert store.is_suppressed("ANN@example.org")
    weekly = store.get_membership("weekly", "ann@example.org")
    assert weekly is not None and weekly.status == "complained"
    store.set_status("daily", "bob@example.org", "unsubscribed", now=NOW)
    assert not store.is_suppressed("bob@example.org")
    with pytest.raises(SubscriberNotFoundError):
        store.set_status("daily", "nobody@example.org", "unsubscribed")
    with pytest.raises(InvalidSubscriberError):
        store.set_status("daily", "bob@example.org", "sleeping")


def test_double_opt_in(store: Store) -> None:
    request = store.request_subscription("daily", "ann@example.org", name="Ann",
                                         sections=["World"], now=NOW)
    pending = request.member
    assert request.outcome == "requested" and request.request_id is not None
    assert pending.status == "pending" and pending.confirmed_at is None
    assert list(store.iter_eligible("daily")) == []
    active = store.confirm_subscription(pending.subscriber_id, "daily",
                                        request_id=request.request_id, now=NOW)
    assert active.status == "active" and active.confirmed_at == NOW
    assert active.sections == {"World"} and active.sections_chosen_at == NOW
    assert store.confirm_subscription(pending.subscriber_id, "daily",
                                      request_id=request.request_id).confirmed_at == NOW

    assert store.unsubscribe(pending.subscriber_id, "daily", now=NOW) is True
    assert store.unsubscribe(pending.subscriber_id, "daily", now=NOW) is False
    # The old link no longer applies; only a new, confirmed request brings the reader back.
    assert store.confirm_subscription(pending.subscriber_id, "daily",
                                      request_id=request.request_id).status == "unsubscribed"
    again = store.request_subscription("daily", "ann@example.org", now=NOW)
    assert again.outcome == "requested" and again.member.status == "unsubscribed"
    assert store.confirm_subscription(again.member.subscriber_id, "daily",
                                      request_id=again.request_id).status == "active"


def test_confirmed_opt_in_lifts_a_bounce_suppression(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    store.set_status("daily", "ann@example.org", "unsubscribed", now=NOW)
    store.suppress("ann@example.org", "bounced", now=NOW)
    # A suppressed address gets no request (and so no confirmation email) at all.
    assert store.request_subscription("daily", "ann@example.org").outcome == "suppressed"
    store.add_subscriber("daily", "ann@example.org", confirmed=True, now=NOW)
    assert not store.is_suppressed("ann@example.org")
    assert [m.email for m in store.iter_eligible("daily")] == ["ann@example.org"]
    last = store.membership_history("ann@example.org")[-1]
    assert (last.old_status, last.new_status, last.actor, last.cause) == (
        "bounced", "active", "editor", "editor-confirmed")
    assert last.detail == {"lifted_suppression": "bounced"}


def test_update_sections(store: Store) -> None:
    sid = store.add_subscriber("daily", "ann@example.org")
    known = ("Politics", "World")
    member = store.update_sections(sid, "daily", ["world"], known=known, now=NOW)
    assert member.sections == frozenset({"World"})
    assert store.update_sections(sid, "daily", [], known=known).sections is None
    with pytest.raises(InvalidSubscriberError, match="Cooking"):
        store.update_sections(sid, "daily", ["Cooking"], known=known)


def test_iterators_stream_in_batches(store: Store) -> None:
    for i in range(25):
        store.add_subscriber("daily", f"r{i:02d}@example.org",
                             status="unsubscribed" if i % 5 == 0 else "active")
    store.suppress("r01@example.org", "bounced")
    eligible = [m.email for m in store.iter_eligible("daily", batch=4)]
    assert eligible == [f"r{i:02d}@example.org" for i in range(25) if i % 5 and i != 1]
    assert len(list(store.iter_members("daily", batch=7))) == 25
    assert len(list(store.iter_members("daily", status="unsubscribed", batch=2))) == 5
    assert store.count_members("daily") == {"active": 19, "unsubscribed": 5, "bounced": 1}
    assert list(store.iter_members("no-such-list")) == []


def test_invalid_input_is_a_store_error_and_a_value_error(store: Store) -> None:
    with pytest.raises(InvalidSubscriberError) as caught:
        store.add_subscriber("daily", "ann@example.org", name="Ann\r\nBcc: x@example.org")
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, ValueError)
    assert store.get_membership("daily", "ann@example.org") is None


@pytest.mark.parametrize("name", ['Haddad, "Nadia"', "O'Brien (Desk)", "田中 博", "a<b>@c;d",
                                  "Price =? 5", "Zoë ?= Martin"])
def test_accepted_names_make_a_single_safe_to_header(name: str) -> None:
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import SMTP

    cleaned = clean_name(name)
    assert cleaned == name
    msg = EmailMessage(policy=SMTP)
    msg["To"] = Address(display_name=cleaned, addr_spec="ann@example.org")
    msg.set_content("x")
    head = msg.as_bytes().split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line[:1] not in b" \t"]
    assert names.count(b"To") == 1
    assert b"Bcc" not in names
