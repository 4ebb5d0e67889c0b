"""Signing in and out of the desk.

Failed sign-ins are limited per account name and per client network, in the store's rate-limit
buckets (shared with the sign-up limits, :mod:`digest.web.ratelimit`; so they hold across
restarts and ``serve`` processes): while either bucket is empty no
password is checked at all, and the page says when to try again (429 with ``Retry-After``).
A name with no editor costs the same time and the same answer as a wrong password. A
successful sign-in sends the editor to ``next`` only when it is a desk path; anything else
(another site, ``//host``, a backslash trick) goes to the overview.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest.passwords import needs_rehash, verify_password, waste_time

from ..ratelimit import Limit, sign_in_keys
from .guard import current_session
from .sessions import LOGIN_COOKIE
from .state import DeskState, desk_of, signed_in

__all__ = ["login", "logout", "safe_next"]

log = logging.getLogger("digest.web.desk")

_MAX_FIELD = 1100
_UNSAFE_NEXT = re.compile(r"[\\\x00-\x20\x7f]")


def safe_next(desk: DeskState, value: str | None) -> str:
    """The desk URL to go to after signing in: ``value`` when it is a path inside the desk
    (``/digest/desk/editions/3?scheme=dark``), else the overview."""
    home = desk.url("/")
    if not value or len(value) > 1000 or _UNSAFE_NEXT.search(value):
        return home
    parts = urlsplit(value)
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith(desk.public_path + "/"):
        return home
    if "//" in path or ".." in unquote(path).split("/"):
        return home
    base = desk.web.settings.web.base_url
    origin = base[: len(base) - len(urlsplit(base).path)] if urlsplit(base).path else base
    return origin + path + (f"?{parts.query}" if parts.query else "")


async def _wait(desk: DeskState, keys: list[tuple[str, Limit]], *, take: bool) -> int:
    """Seconds until every bucket in ``keys`` has a token (0: now); with ``take``, one is
    taken from each (the store's rate-limit buckets, shared with the sign-up limits)."""
    store = desk.store

    def look() -> int:
        return max(store.take_signup_token(key, capacity=limit.capacity,
                                           per_second=limit.per_second, take=take)
                   for key, limit in keys)

    return await run_in_threadpool(look)


def _form_page(desk: DeskState, request: Request, *, status: int = 200, error: str | None = None,
               username: str = "", next_url: str = "",
               headers: dict[str, str] | None = None) -> Response:
    nonce, signed = desk.sessions.login_nonce()
    response = desk.pages.render(request, "login.html", status=status, error=error,
                                 username=username, next_url=next_url, login_nonce=nonce,
                                 headers=headers)
    desk.sessions.set_login(response, signed)
    return response


async def login(request: Request) -> Response:
    """GET: the sign-in form. POST (``username``, ``password``, ``csrf``, ``next``): sign in."""
    desk = desk_of(request)
    next_url = request.query_params.get("next", "")
    if request.method != "POST":
        if await current_session(desk, request) is not None:
            return RedirectResponse(safe_next(desk, next_url), status_code=303)
        return _form_page(desk, request, next_url=next_url[:1000])
    form = await request.form(max_files=0, max_fields=10, max_part_size=8192)
    username = str(form.get("username") or "")[:200].strip()
    password = str(form.get("password") or "")[:_MAX_FIELD]
    next_url = str(form.get("next") or "")[:1000]
    if not desk.sessions.login_ok(request.cookies.get(LOGIN_COOKIE), str(form.get("csrf") or "")):
        return _form_page(desk, request, status=403, username=username, next_url=next_url,
                          error="This sign-in form expired; please sign in again.")
    host = request.client.host if request.client else None
    account, client = sign_in_keys(username, host, desk.web.settings.web.secret_keys[0])
    keys = [(account, desk.per_account), (client, desk.per_client)]
    wait = await _wait(desk, keys, take=False)
    if wait:
        log.warning("desk sign-in refused: too many failed attempts")
        return _form_page(desk, request, status=429, username=username, next_url=next_url,
                          headers={"Retry-After": str(wait)},
                          error="Too many failed sign-ins; try again in "
                                f"{max(1, round(wait / 60))} minute(s).")
    editor = await run_in_threadpool(desk.store.get_editor, username) if username else None
    if editor is None:
        await run_in_threadpool(waste_time, password, desk.hasher)
        ok = False
    else:
        ok = await run_in_threadpool(verify_password, editor.password_hash, password,
                                     desk.hasher)
    if not ok or editor is None:
        await _wait(desk, keys, take=True)
        log.info("desk sign-in failed")
        return _form_page(desk, request, status=400, username=username, next_url=next_url,
                          error="That name and password do not match an editor.")
    if needs_rehash(editor.password_hash, desk.hasher):
        new_hash = await run_in_threadpool(desk.hasher.hash, password)
        await run_in_threadpool(desk.store.update_password_hash, editor.name,
                                editor.password_hash, new_hash)
    await run_in_threadpool(desk.store.record_sign_in, editor.name)
    log.info("desk sign-in by editor:%s", editor.name)
    response = RedirectResponse(safe_next(desk, next_url), status_code=303)
    desk.sessions.set(response, desk.sessions.new(editor.name, editor.session_key))
    desk.sessions.clear_login(response)
    return response


async def logout(request: Request) -> Response:
    """POST: end the editor's sessions (on every device) and go to the sign-in page."""
    desk = desk_of(request)
    who = signed_in(request)
    await run_in_threadpool(desk.store.end_sessions, who.editor.name)
    log.info("desk sign-out by editor:%s", who.editor.name)
    response = RedirectResponse(desk.url("/login"), status_code=303)
    desk.sessions.clear(response)
    return response

