"""Signed links: unsubscribe, manage-preferences and confirm tokens, and the URLs that carry them.

A token is an itsdangerous URL-safe, timestamped signature over ``[subscriber id, list
name]`` (a confirmation token adds the id of the sign-up request it confirms): it names no
address, is scoped to one subscriber on one list, and each kind has its own salt so one can
never stand in for another. The first key signs and every key verifies, so a rotated-out key
(``DIGEST_OLD_SECRET_KEYS``) keeps old links working for as long as it stays listed: that is
the grace period.

A token has one spelling: three dot-separated parts in unpadded URL-safe base64, each the
canonical encoding of its bytes; anything else (padding or characters appended, another
encoding of the same bytes) is refused before the signature is looked at. Ids must fit the
store's integer columns (1 to 2**31 - 1).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes
from itsdangerous.serializer import Serializer

from digest.errors import InvalidTokenError

__all__ = [
    "CONFIRM",
    "MANAGE",
    "MAX_ID",
    "UNSUBSCRIBE",
    "LinkTokens",
    "confirm_url",
    "make_confirm_token",
    "make_manage_token",
    "make_token",
    "make_unsubscribe_token",
    "manage_url",
    "read_confirm_token",
    "read_manage_token",
    "read_token",
    "read_unsubscribe_token",
    "unsubscribe_url",
]

#: The largest id a token may carry: the store's ids are 32-bit integers (PostgreSQL).
MAX_ID = 2**31 - 1
_SHAPE = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

UNSUBSCRIBE = "digest.unsubscribe"
MANAGE = "digest.manage"
CONFIRM = "digest.confirm"
_KINDS = {UNSUBSCRIBE: "unsubscribe", MANAGE: "manage-preferences", CONFIRM: "confirmation"}


class _Serializer(URLSafeTimedSerializer):
    """URL-safe timed tokens without the zlib attempt: a ``[id, list]`` payload with a short
    list name never shrinks (stock itsdangerous writes the same bytes then; for a long,
    repetitive name it would compress), and trying costs half of a token's time. Reading
    accepts both forms."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


def _signer_class(clock: Callable[[], float]) -> type[TimestampSigner]:
    class _ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return _ClockedSigner


def _serializer(keys: Sequence[str], salt: str, now: datetime | None) -> URLSafeTimedSerializer:
    if not keys or not all(keys):
        raise InvalidTokenError("No signing key is configured; set DIGEST_SECRET_KEY.")
    if now is None:
        return _current_serializer(tuple(keys), salt)
    clock = now.timestamp
    # itsdangerous signs with the last key and verifies with all of them, newest first.
    return _Serializer(list(reversed(keys)), salt=salt, signer=_signer_class(clock))


@functools.lru_cache(maxsize=32)
def _current_serializer(keys: tuple[str, ...], salt: str) -> URLSafeTimedSerializer:
    """One serializer per (keys, salt) on the real clock: a send makes two tokens per
    subscriber, and building a serializer costs more than signing with it."""
    return _Serializer(list(reversed(keys)), salt=salt, signer=TimestampSigner)


try:  # CPython's own SHA-1: copying its state is a struct copy, OpenSSL's an EVP context
    from _sha1 import sha1 as _sha1
except ImportError:  # a build without the built-in hashes
    _sha1 = hashlib.sha1


def _b64(data: bytes) -> bytes:
    """itsdangerous's ``base64_encode`` (URL-safe alphabet, no padding) in one C call chain."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE)


_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _FastWriter:
    """Writes exactly what ``_Serializer(...).dumps`` writes for the current time, without
    itsdangerous's per-call objects: a send signs two tokens per subscriber. itsdangerous
    still reads every token (tests compare both writers byte for byte)."""

    def __init__(self, key: str, salt: str) -> None:
        signer = TimestampSigner(key, salt=salt)
        # HMAC-SHA1 (RFC 2104) with the padded key hashed in once: a token then costs two
        # copies of these SHA-1 states instead of a new HMAC context (the hmac module's cost).
        mac_key = signer.derive_key()
        if len(mac_key) > 64:
            mac_key = hashlib.sha1(mac_key).digest()
        mac_key = mac_key.ljust(64, b"\0")
        self._inner = _sha1(bytes(b ^ 0x36 for b in mac_key))
        self._outer = _sha1(bytes(b ^ 0x5C for b in mac_key))
        self._sep = want_bytes(signer.sep)
        self._names: dict[str, str] = {}
        self._stamp: tuple[int, bytes] = (-1, b"")

    def signed_value(self, subscriber_id: int, list_name: str, timestamp: int) -> bytes:
        """``payload.timestamp``: the part a token signs (the same under every salt)."""
        # The compact JSON of [id, "list"], as itsdangerous writes it, built by hand.
        quoted = self._names.get(list_name)
        if quoted is None:
            quoted = self._names[list_name] = json.dumps(list_name, ensure_ascii=False)
        stamp = self._stamp  # one read: another thread may replace it meanwhile
        if timestamp != stamp[0]:
            stamp = self._stamp = (timestamp, self._sep + _b64(int_to_bytes(timestamp)))
        return _b64(f"[{subscriber_id},{quoted}]".encode()) + stamp[1]

    def sign(self, value: bytes) -> str:
        """``value.signature`` for a value from :meth:`signed_value`."""
        inner = self._inner.copy()
        inner.update(value)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return (value + self._sep + _b64(outer.digest())).decode("ascii")

    def dumps(self, subscriber_id: int, list_name: str, timestamp: int) -> str:
        return self.sign(self.signed_value(subscriber_id, list_name, timestamp))


@functools.lru_cache(maxsize=32)
def _writer(key: str, salt: str) -> _FastWriter:
    return _FastWriter(key, salt)


class LinkTokens:
    """The unsubscribe and manage tokens of one list's subscribers, made together: both sign
    the same payload and timestamp, so it is built once and only the two MACs differ. Equal
    to :func:`make_unsubscribe_token` and :func:`make_manage_token` in the same second
    (tests compare them)."""

    def __init__(self, keys: Sequence[str], list_name: str) -> None:
        if not keys or not all(keys):
            raise InvalidTokenError("No signing key is configured; set DIGEST_SECRET_KEY.")
        self._unsubscribe = _writer(keys[0], UNSUBSCRIBE)
        self._manage = _writer(keys[0], MANAGE)
        self._list = list_name

    def pair(self, subscriber_id: int) -> tuple[str, str]:
        """``(unsubscribe token, manage token)`` for a subscriber, signed now."""
        value = self._unsubscribe.signed_value(int(subscriber_id), self._list, int(time.time()))
        return self._unsubscribe.sign(value), self._manage.sign(value)


def make_token(keys: Sequence[str], salt: str, subscriber_id: int, list_name: str, *,
               now: datetime | None = None) -> str:
    """Sign ``(subscriber_id, list_name)`` with the first key under ``salt``."""
    if now is None and keys and all(keys):
        return _writer(keys[0], salt).dumps(int(subscriber_id), list_name, int(time.time()))
    return str(_serializer(keys, salt, now).dumps([int(subscriber_id), list_name]))


def _canonical(token: str) -> bool:
    """True when ``token`` is spelled the one way this module writes it."""
    if not _SHAPE.fullmatch(token):
        return False
    for part in token.lstrip(".").split("."):
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            return False
        if _b64(raw).decode("ascii") != part:
            return False
    return True


def _invalid(kind: str) -> InvalidTokenError:
    return InvalidTokenError(f"This {kind} link is not valid; use the link from the latest "
                             "email.")


def _load(keys: Sequence[str], salt: str, token: str, max_age: timedelta | None,
          now: datetime | None) -> list[Any]:
    kind = _KINDS.get(salt, "signed")
    if not isinstance(token, str) or not token or len(token) > 500 or not _canonical(token):
        raise _invalid(kind)
    seconds = int(max_age.total_seconds()) if max_age is not None else None
    try:
        data: Any = _serializer(keys, salt, now).loads(token, max_age=seconds)
    except SignatureExpired:
        raise InvalidTokenError(f"This {kind} link has expired; ask for a new one.") from None
    except (BadData, ValueError, TypeError, UnicodeError):
        raise _invalid(kind) from None
    sizes = (2, 3) if salt == CONFIRM else (2,)
    if (not isinstance(data, list) or len(data) not in sizes or not isinstance(data[1], str)
            or not all(type(n) is int and 1 <= n <= MAX_ID for n in data[:1] + data[2:])):
        raise _invalid(kind)
    return data


def read_token(keys: Sequence[str], salt: str, token: str, *, list_name: str | None = None,
               max_age: timedelta | None = None, now: datetime | None = None) -> tuple[int, str]:
    """The ``(subscriber_id, list_name)`` a token was signed for.

    :param list_name: when given, a token for another list is refused.
    :param max_age: when given, an older token is refused.
    :raises InvalidTokenError: for a forged, altered, respelled, expired or misdirected
        token, or one whose id is out of range.
    """
    data = _load(keys, salt, token, max_age, now)
    if list_name is not None and data[1] != list_name:
        raise InvalidTokenError(f"This {_KINDS.get(salt, 'signed')} link is for another "
                                "list; use the link from that list's email.")
    return data[0], data[1]


def make_unsubscribe_token(keys: Sequence[str], subscriber_id: int, list_name: str, *,
                           now: datetime | None = None) -> str:
    """A one-click unsubscribe token for a subscriber on a list."""
    return make_token(keys, UNSUBSCRIBE, subscriber_id, list_name, now=now)


def read_unsubscribe_token(keys: Sequence[str], token: str, *, list_name: str | None = None,
                           max_age: timedelta | None = None,
                           now: datetime | None = None) -> tuple[int, str]:
    """``(subscriber_id, list_name)`` of an unsubscribe token (``web.token_max_age``)."""
    return read_token(keys, UNSUBSCRIBE, token, list_name=list_name, max_age=max_age, now=now)


def make_manage_token(keys: Sequence[str], subscriber_id: int, list_name: str, *,
                      now: datetime | None = None) -> str:
    """A manage-preferences token for a subscriber on a list."""
    return make_token(keys, MANAGE, subscriber_id, list_name, now=now)


def read_manage_token(keys: Sequence[str], token: str, *, list_name: str | None = None,
                      max_age: timedelta | None = None,
                      now: datetime | None = None) -> tuple[int, str]:
    """``(subscriber_id, list_name)`` of a manage-preferences token."""
    return read_token(keys, MANAGE, token, list_name=list_name, max_age=max_age, now=now)


def make_confirm_token(keys: Sequence[str], subscriber_id: int, list_name: str, *,
                       request_id: int | None = None, now: datetime | None = None) -> str:
    """A double opt-in confirmation token for the sign-up request ``request_id`` (the
    consent event the store recorded for it)."""
    if request_id is None:
        return make_token(keys, CONFIRM, subscriber_id, list_name, now=now)
    return str(_serializer(keys, CONFIRM, now).dumps(
        [int(subscriber_id), list_name, int(request_id)]))


def read_confirm_token(keys: Sequence[str], token: str, *, max_age: timedelta,
                       list_name: str | None = None,
                       now: datetime | None = None) -> tuple[int, str, int | None]:
    """``(subscriber_id, list_name, request_id)`` of a confirmation token younger than
    ``max_age`` (``web.confirm_max_age``); ``request_id`` is None for a token made without
    one (before the consent record), which confirms a pending member only."""
    data = _load(keys, CONFIRM, token, max_age, now)
    if list_name is not None and data[1] != list_name:
        raise InvalidTokenError("This confirmation link is for another list; use the link "
                                "from that list's email.")
    return data[0], data[1], (data[2] if len(data) == 3 else None)


def unsubscribe_url(base_url: str, token: str) -> str:
    """The public unsubscribe link (GET asks, POST unsubscribes: RFC 8058 one-click)."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def manage_url(base_url: str, token: str) -> str:
    """The public manage-preferences link."""
    return f"{base_url.rstrip('/')}/preferences/{token}"


def confirm_url(base_url: str, token: str) -> str:
    """The public double opt-in confirmation link."""
    return f"{base_url.rstrip('/')}/confirm/{token}"
