"""The desk's door: every request passes here before any desk page runs.

In order, for each request under ``/desk/``:

1. Security headers for the desk (its own Content-Security-Policy: scripts and styles from
   the desk's own path only, never inline scripts; frames only from itself).
2. A state-changing request (any method but GET, HEAD, OPTIONS) must come from a page of the
   desk's own origin, by the public pages' rule (``Sec-Fetch-Site: same-origin``, else an
   ``Origin`` equal to ``web.base_url``'s origin), and must carry one of those headers at
   all: another site, a sandboxed frame's ``null`` or no browser header is refused with 403
   (the desk has no RFC 8058 endpoint to keep open, and no other site may post to it).
3. Static files and the sign-in page are open; every other page needs a valid session
   (signed cookie whose ``session_key`` still matches the editor's in the store), else it
   answers 303 to the sign-in page with ``next`` set to the page asked for.
4. A state-changing request also needs the session's CSRF token in its ``csrf`` form field
   (urlencoded forms only); else 403.

Only then does the request reach the page, with ``scope["digest.desk"]`` set to the
:class:`~digest.web.desk.state.SignedIn` editor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..middleware import MAX_BODY, is_cross_site
from .sessions import SESSION_COOKIE, SessionCodec
from .state import DeskState, SignedIn

__all__ = ["DESK_HEADERS", "FRAME_HEADERS", "DeskGuard", "current_session", "same_origin"]

log = logging.getLogger("digest.web.desk")

#: The desk's pages: everything from the desk itself, no inline script, framed by nobody.
DESK_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy",
     (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
      b"connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
      b"base-uri 'none'")),
    (b"x-frame-options", b"DENY"),
    # Desk URLs carry no secrets; this lets the browser send the desk's own Origin with its
    # forms (with no-referrer it sends "null") and sends nothing to other sites.
    (b"referrer-policy", b"same-origin"),
)
#: An email shown in the desk's sandboxed frames: its own inline styles and https images,
#: no script, no form, framed only by the desk, and sandboxed even when opened alone.
FRAME_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy",
     (b"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
      b"form-action 'none'; frame-ancestors 'self'; base-uri 'none'; "
      b"sandbox allow-popups allow-popups-to-escape-sandbox")),
    (b"x-frame-options", b"SAMEORIGIN"),
)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_OPEN = ("/login", "/static/")


def same_origin(scope: Scope, origin: str) -> bool:
    """True when a browser says this request comes from a page of ``origin``: the public
    pages' cross-site rule (:func:`~digest.web.middleware.is_cross_site`), and moreover a
    request must carry ``Origin`` or ``Sec-Fetch-Site`` at all (no browser form, no desk)."""
    headers = scope.get("headers", ())
    if not any(k in (b"origin", b"sec-fetch-site") for k, _ in headers):
        return False
    return not is_cross_site(headers, frozenset({origin}))


async def current_session(desk: DeskState, request: Request) -> SignedIn | None:
    """The editor whose valid session cookie ``request`` carries, or None (no cookie, a
    forged or expired one, or one the editor's new password, sign-out or removal ended)."""
    session = desk.sessions.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    editor = await run_in_threadpool(desk.store.get_editor, session.editor)
    if editor is None or editor.session_key != session.key:
        return None
    return SignedIn(editor, session.csrf)


def _headers_for(path: str) -> tuple[tuple[bytes, bytes], ...]:
    return FRAME_HEADERS if path.endswith("/frame") else DESK_HEADERS


class DeskGuard:
    """ASGI middleware of the desk app doing the checks in the module docstring.

    :param refuse: makes the 403 page (``(request, sentence) -> response``).
    :param crashed: makes the 500 page for an exception no handler took.
    """

    def __init__(self, app: ASGIApp, desk: DeskState, origin: str,
                 refuse: Callable[[Request, str], Awaitable[Response]],
                 crashed: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = app
        self.desk = desk
        self.origin = origin
        self.refuse = refuse
        self.crashed = crashed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope) or "/"
        extra = _headers_for(path)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in extra}
                headers = [(k, v) for k, v in message.get("headers", ()) if k not in names]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        request = Request(scope, receive)
        unsafe = scope["method"] not in _SAFE
        if unsafe and not same_origin(scope, self.origin):
            log.info("refused a cross-site %s on the desk", scope["method"])
            response = await self.refuse(request, "This form can only be sent from the desk's "
                                                  "own pages; open the page again and retry.")
            await response(scope, receive, with_headers)
            return
        if path.startswith(_OPEN):
            await self.app(scope, receive, with_headers)
            return
        who = await self._signed_in(request)
        if who is None:
            await self._to_login(scope, receive, with_headers, path)
            return
        if unsafe:
            body = await _read_body(receive)
            if body is None or not self._csrf_ok(scope, body, who):
                log.info("refused a desk form without a valid CSRF token")
                response = await self.refuse(request, "This form has expired or did not come "
                                                      "from the desk; open the page again and "
                                                      "retry.")
                await response(scope, receive, with_headers)
                return
            receive = _replay(body, receive)
        scope["digest.desk"] = who
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await with_headers(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # no traceback reaches an editor; the log has the type
            log.error("desk %s %s failed: %s", scope["method"], path, type(exc).__name__)
            log.debug("traceback of the failed desk request", exc_info=True)
            if not started:
                response = await self.crashed(request)
                await response(scope, receive, with_headers)

    async def _signed_in(self, request: Request) -> SignedIn | None:
        return await current_session(self.desk, request)

    async def _to_login(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        wanted = self.desk.public_path + path + (f"?{query}" if query else "")
        target = self.desk.url("/login")
        if path not in ("/", "") or query:
            target += "?next=" + quote(wanted, safe="/")
        await RedirectResponse(target, status_code=303)(scope, receive, send)

    @staticmethod
    def _csrf_ok(scope: Scope, body: bytes, who: SignedIn) -> bool:
        kind = dict(scope.get("headers", ())).get(b"content-type", b"").split(b";")[0]
        if kind.strip().lower() != b"application/x-www-form-urlencoded":
            return False
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            return False
        values = fields.get("csrf", [])
        return len(values) == 1 and SessionCodec.csrf_ok(who.csrf, values[0])


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is over :data:`MAX_BODY` or the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
