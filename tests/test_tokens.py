"""Signed links: opaque, scoped to subscriber, list and purpose, expiring, rotation-friendly."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from digest import tokens
from digest.errors import InvalidTokenError
from digest.tokens import (
    confirm_url,
    make_confirm_token,
    make_manage_token,
    make_unsubscribe_token,
    manage_url,
    read_confirm_token,
    read_manage_token,
    read_unsubscribe_token,
    unsubscribe_url,
)

KEYS = ("current-key-0123456789",)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_round_trip_names_subscriber_and_list() -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    assert read_unsubscribe_token(KEYS, token) == (42, "daily")
    assert read_unsubscribe_token(KEYS, token, list_name="daily") == (42, "daily")
    assert read_manage_token(KEYS, make_manage_token(KEYS, 7, "weekly")) == (7, "weekly")


def test_token_is_url_safe_and_carries_no_address() -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    assert all(c.isalnum() or c in "-_." for c in token)
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"@" not in decoded


def test_another_list_is_refused() -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    with pytest.raises(InvalidTokenError, match="another list"):
        read_unsubscribe_token(KEYS, token, list_name="weekly")


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1],
    lambda t: t + "x",
    lambda t: t.replace(".", "..", 1),
    lambda t: "",
    lambda t: "." * 3,
    lambda t: "x" * 600,
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],
])
def test_tampered_tokens_are_refused(mangle) -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    with pytest.raises(InvalidTokenError, match="not valid"):
        read_unsubscribe_token(KEYS, mangle(token))


def test_payload_for_another_subscriber_cannot_be_forged() -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    other = make_unsubscribe_token(KEYS, 43, "daily")
    forged = other.split(".")[0] + "." + ".".join(token.split(".")[1:])
    with pytest.raises(InvalidTokenError):
        read_unsubscribe_token(KEYS, forged)


def test_kinds_cannot_stand_in_for_each_other() -> None:
    unsubscribe = make_unsubscribe_token(KEYS, 42, "daily")
    manage = make_manage_token(KEYS, 42, "daily")
    confirm = make_confirm_token(KEYS, 42, "daily")
    with pytest.raises(InvalidTokenError):
        read_manage_token(KEYS, unsubscribe)
    with pytest.raises(InvalidTokenError):
        read_unsubscribe_token(KEYS, manage)
    with pytest.raises(InvalidTokenError):
        read_unsubscribe_token(KEYS, confirm)
    with pytest.raises(InvalidTokenError):
        read_confirm_token(KEYS, unsubscribe, max_age=timedelta(days=7))


def test_rotated_key_still_verifies_and_new_key_signs() -> None:
    old_token = make_unsubscribe_token(("old-key-abcdefghij",), 42, "daily")
    rotated = ("new-key-klmnopqrst", "old-key-abcdefghij")
    assert read_unsubscribe_token(rotated, old_token) == (42, "daily")
    new_token = make_unsubscribe_token(rotated, 42, "daily")
    assert read_unsubscribe_token(("new-key-klmnopqrst",), new_token) == (42, "daily")
    with pytest.raises(InvalidTokenError):
        read_unsubscribe_token(("old-key-abcdefghij",), new_token)
    with pytest.raises(InvalidTokenError):
        read_unsubscribe_token(("new-key-klmnopqrst",), old_token)


def test_confirm_tokens_name_their_request_and_expire() -> None:
    token = make_confirm_token(KEYS, 42, "daily", request_id=9, now=NOW)
    week = timedelta(days=7)
    assert read_confirm_token(KEYS, token, max_age=week, now=NOW + timedelta(days=6)) == (
        42, "daily", 9)
    with pytest.raises(InvalidTokenError, match="expired"):
        read_confirm_token(KEYS, token, max_age=week, now=NOW + timedelta(days=7, seconds=2))
    # A link made before the consent record (no request) still reads.
    legacy = make_confirm_token(KEYS, 42, "daily", now=NOW)
    assert read_confirm_token(KEYS, legacy, max_age=week, now=NOW) == (42, "daily", None)


def _signed(salt: str, payload: object) -> str:
    """A token with a good signature over any payload (what a key holder could make)."""
    return str(tokens._serializer(KEYS, salt, None).dumps(payload))


@pytest.mark.parametrize("suffix", ["=", "==", "===", "x", "A", "!", "%3D", ".", "\n", " "])
def test_a_token_has_one_spelling(suffix: str) -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    assert read_unsubscribe_token(KEYS, token) == (42, "daily")
    with pytest.raises(InvalidTokenError, match="not valid"):
        read_unsubscribe_token(KEYS, token + suffix)
    with pytest.raises(InvalidTokenError, match="not valid"):
        read_unsubscribe_token(KEYS, suffix + token)


def test_another_base64_spelling_of_the_same_bytes_is_refused() -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily")
    signature = token.rsplit(".", 1)[1]
    # 20 signature bytes are 27 base64 characters: the last one has two unused bits, so
    # four characters decode to the same bytes and only one is the canonical spelling.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    for other in range(last & ~3, (last & ~3) + 4):
        if other != last:
            respelled = token[:-1] + alphabet[other]
            assert base64.urlsafe_b64decode(respelled.rsplit(".", 1)[1] + "=") == \
                base64.urlsafe_b64decode(signature + "=")
            with pytest.raises(InvalidTokenError, match="not valid"):
                read_unsubscribe_token(KEYS, respelled)


@pytest.mark.parametrize("payload", [
    [0, "daily"], [-1, "daily"], [2**31, "daily"], [10**20, "daily"], [True, "daily"],
    [1.0, "daily"], ["1", "daily"], [1, 2], [1], [1, "daily", 3], {"id": 1},
])
def test_well_signed_payloads_out_of_range_are_refused(payload: object) -> None:
    with pytest.raises(InvalidTokenError, match="not valid"):
        read_unsubscribe_token(KEYS, _signed(tokens.UNSUBSCRIBE, payload))


@pytest.mark.parametrize("payload", [[1, "daily", 0], [1, "daily", 2**31], [1, "daily", "7"],
                                     [2**31, "daily", 7], [1, "daily", 7, 8]])
def test_confirm_payloads_out_of_range_are_refused(payload: object) -> None:
    with pytest.raises(InvalidTokenError, match="not valid"):
        read_confirm_token(KEYS, _signed(tokens.CONFIRM, payload), max_age=timedelta(days=1))
    assert read_confirm_token(KEYS, _signed(tokens.CONFIRM, [2**31 - 1, "d", 2**31 - 1]),
                              max_age=timedelta(days=1)) == (2**31 - 1, "d", 2**31 - 1)


def test_unsubscribe_tokens_honour_a_max_age_when_given() -> None:
    token = make_unsubscribe_token(KEYS, 42, "daily", now=NOW)
    later = NOW + timedelta(days=400)
    assert read_unsubscribe_token(KEYS, token, now=later) == (42, "daily")
    with pytest.raises(InvalidTokenError, match="expired"):
        read_unsubscribe_token(KEYS, token, max_age=timedelta(days=365), now=later)


def test_no_key_is_an_error() -> None:
    with pytest.raises(InvalidTokenError, match="DIGEST_SECRET_KEY"):
        make_unsubscribe_token((), 1, "daily")


def test_urls() -> None:
    assert unsubscribe_url("https://n.test/", "abc") == "https://n.test/unsubscribe/abc"
    assert manage_url("https://n.test", "abc") == "https://n.test/preferences/abc"
    assert confirm_url("https://n.test", "abc") == "https://n.test/confirm/abc"


@pytest.mark.parametrize("keys", [("current-key", "old-key"), ("ключ",)])
@pytest.mark.parametrize("list_name", ["daily", "weekend-reads", "dailyé"])
@pytest.mark.parametrize("make", [tokens.make_unsubscribe_token, tokens.make_manage_token,
                                  tokens.make_confirm_token])
def test_fast_writer_matches_itsdangerous_byte_for_byte(keys, list_name, make) -> None:
    import time as _time

    for subscriber_id in (1, 42, 10**9):
        before = int(_time.time())
        fast = make(keys, subscriber_id, list_name)
        reference = make(keys, subscriber_id, list_name,
                         now=datetime.fromtimestamp(before, UTC))
        if int(_time.time()) == before:  # the same second: the same token
            assert fast == reference
        assert fast.split(".")[0] == reference.split(".")[0]


@pytest.mark.parametrize("list_name", ["daily", "dailyé", 'we"ird'])
def test_link_tokens_equal_the_single_tokens_and_read_back(list_name: str) -> None:
    import time as _time

    keys = ("current-key", "old-key")
    links = tokens.LinkTokens(keys, list_name)
    for subscriber_id in (1, 42, 10**9):
        while True:
            before = int(_time.time())
            unsubscribe, manage = links.pair(subscriber_id)
            single = (make_unsubscribe_token(keys, subscriber_id, list_name),
                      make_manage_token(keys, subscriber_id, list_name))
            if int(_time.time()) == before:  # all four signed in the same second
                break
        assert (unsubscribe, manage) == single
        assert read_unsubscribe_token(keys, unsubscribe) == (subscriber_id, list_name)
        assert read_manage_token(keys, manage) == (subscriber_id, list_name)
        with pytest.raises(InvalidTokenError):
            read_manage_token(keys, unsubscribe)
    with pytest.raises(InvalidTokenError, match="DIGEST_SECRET_KEY"):
        tokens.LinkTokens((), "daily")
