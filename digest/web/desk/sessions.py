"""Desk sessions and form tokens: signed cookies (itsdangerous), nothing kept on the server.

A session cookie holds the editor's name, their ``session_key`` from the store (which changes
with the password, on sign-out and when the editor is removed, ending every session), a
random CSRF token for the desk's forms, and the time it was issued; it is signed with the
signing keys (rotation as for the email links) and expires after :data:`SESSION_LIFETIME`,
both in the browser (``Max-Age``) and when read back (the signature's timestamp).

The sign-in form has no session yet, so it carries a random nonce that must equal the one in
a short-lived signed cookie set with the form (double submit): a page on another site can
neither read the cookie nor send it (``SameSite=Strict``).

Both cookies are ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when ``web.base_url`` is
https (always, as the configuration requires) and scoped to the desk's path.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

__all__ = [
    "LOGIN_COOKIE",
    "LOGIN_LIFETIME",
    "SESSION_COOKIE",
    "SESSION_LIFETIME",
    "Session",
    "SessionCodec",
]

SESSION_COOKIE = "digest_desk"
LOGIN_COOKIE = "digest_desk_login"
SESSION_LIFETIME = timedelta(hours=12)
LOGIN_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in editor: ``editor`` (their name as stored), ``key`` (their session key
    when the session began), ``csrf`` (the token every desk form must carry), ``issued``
    (Unix time)."""

    editor: str
    key: str
    csrf: str
    issued: int


class SessionCodec:
    """Makes, reads and sets the desk's cookies.

    :param secret_keys: the signing keys, newest first (``web.secret_keys``).
    :param path: the desk's public path (``/digest/desk``): the cookies go nowhere else.
    :param secure: send the cookies over https only.
    """

    def __init__(self, secret_keys: tuple[str, ...], *, path: str, secure: bool,
                 lifetime: timedelta = SESSION_LIFETIME) -> None:
        keys = list(reversed(secret_keys))  # itsdangerous signs with the last key
        self._session = URLSafeTimedSerializer(keys, salt="digest.desk.session")
        self._login = URLSafeTimedSerializer(keys, salt="digest.desk.login")
        self.path = path
        self.secure = secure
        self.lifetime = lifetime

    # ------------------------------------------------------------------ sessions

    def new(self, editor: str, key: str) -> Session:
        """A fresh session for ``editor`` with a new CSRF token."""
        return Session(editor, key, secrets.token_urlsafe(24), int(time.time()))

    def read(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when missing, forged, altered or expired."""
        if not cookie or len(cookie) > 1000:
            return None
        try:
            data: Any = self._session.loads(cookie, max_age=int(self.lifetime.total_seconds()))
        except BadSignature:  # also SignatureExpired
            return None
        if not (isinstance(data, list) and len(data) == 4
                and all(isinstance(v, str) for v in data[:3]) and isinstance(data[3], int)):
            return None
        return Session(data[0], data[1], data[2], data[3])

    def set(self, response: Response, session: Session) -> None:
        """Put ``session`` in ``response``'s cookies."""
        value = self._session.dumps([session.editor, session.key, session.csrf,
                                     session.issued])
        self._cookie(response, SESSION_COOKIE, value, self.lifetime)

    def clear(self, response: Response) -> None:
        """Delete the session cookie."""
        response.delete_cookie(SESSION_COOKIE, path=self.path, secure=self.secure,
                               httponly=True, samesite="strict")

    @staticmethod
    def csrf_ok(expected: str, value: str | None) -> bool:
        """True when a form's ``csrf`` field is the session's token ``expected``."""
        return bool(value) and bool(expected) and hmac.compare_digest(
            expected.encode(), (value or "").encode())

    # ------------------------------------------------------------------ sign-in form

    def login_nonce(self) -> tuple[str, str]:
        """A nonce for the sign-in form and the signed value of its cookie."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._login.dumps(nonce)

    def set_login(self, response: Response, signed: str) -> None:
        """Set the sign-in form's cookie (``signed`` from :meth:`login_nonce`)."""
        self._cookie(response, LOGIN_COOKIE, signed, LOGIN_LIFETIME)

    def login_ok(self, cookie: str | None, value: str | None) -> bool:
        """True when the sign-in form's nonce matches its cookie, which is still fresh."""
        if not cookie or not value or len(cookie) > 500:
            return False
        try:
            nonce = self._login.loads(cookie, max_age=int(LOGIN_LIFETIME.total_seconds()))
        except BadSignature:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), value.encode())

    def clear_login(self, response: Response) -> None:
        """Delete the sign-in form's cookie (used once)."""
        response.delete_cookie(LOGIN_COOKIE, path=self.path, secure=self.secure,
                               httponly=True, samesite="strict")

    def _cookie(self, response: Response, name: str, value: str, lifetime: timedelta) -> None:
        response.set_cookie(name, value, max_age=int(lifetime.total_seconds()), path=self.path,
                            secure=self.secure, httponly=True, samesite="strict")
