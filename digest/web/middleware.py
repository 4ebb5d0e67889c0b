"""ASGI wrappers around the web app: path prefix, body cap, security headers, cross-site
refusal, last-resort errors.

They are plain ASGI callables (not Starlette ``BaseHTTPMiddleware``) so a one-click POST
streams through without an extra task, and so the error guard also covers exceptions that
would otherwise reach Starlette's bare "Internal Server Error" response.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.routing import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "MAX_BODY",
    "SECURITY_HEADERS",
    "BodyLimit",
    "CrossSiteGuard",
    "ErrorGuard",
    "PrefixRoot",
    "RedactTokens",
    "SecurityHeaders",
    "is_cross_site",
    "origin_of",
    "redact_path",
]

log = logging.getLogger("digest.web")

#: Bytes a request body may have: forms here are a few hundred bytes.
MAX_BODY = 64 * 1024

#: Sent with every response. Tokens travel in URLs, so no page may leak its URL through
#: a Referer header, be framed by another site, or load anything from elsewhere.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy",
     (b"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
      b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)

_TOKEN_PATH = re.compile(r"(/(?:unsubscribe|manage|preferences|confirm|drafts)/)[^/?#\s\"]+")
# A query string's values (its names stay: they say what was asked, not by whom).
_QUERY_VALUE = re.compile(r"([?&][^=&#\s\"]*=)[^&#\s\"]*")
_ADDRESS = re.compile(r"[^\s/?&=#\"@]+@[^\s/?&=#\"@]+")


def redact_path(path: str) -> str:
    """``path`` (with its query string, if any) for a log: every signed token replaced by
    ``[token]``, every query value by ``[redacted]``, anything shaped like an address by
    ``[address]``."""
    path = _TOKEN_PATH.sub(r"\1[token]", path)
    if "?" in path:
        path = _QUERY_VALUE.sub(r"\1[redacted]", path)
    if "@" in path or "%40" in path.lower():
        path = _ADDRESS.sub("[address]", path.replace("%40", "@"))
    return path


class RedactTokens(logging.Filter):
    """A logging filter that removes tokens, query values and addresses from uvicorn's
    access-log lines (:func:`redact_path`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        return True


class PrefixRoot:
    """Serve the app both under the base URL's path prefix (``/digest/unsubscribe/...``
    from a proxy that passes the path through) and without it (a proxy that strips it)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.prefix and not scope.get("root_path"):
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                scope = {**scope, "root_path": self.prefix}
        await self.app(scope, receive, send)


class BodyLimit:
    """Read at most ``limit`` body bytes; a larger body gets 413 before the app sees it.

    The body is buffered (it is small by then) and replayed to the app, so a client that
    lies in Content-Length or streams forever is cut off at the same point.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY,
                 too_large: Callable[[Scope], Awaitable[ASGIApp]] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        chunks: list[bytes] = []
        size = 0
        more = declared is None or declared <= self.limit
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        if size > self.limit or (declared is not None and declared > self.limit):
            await self._refuse(scope, receive, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.too_large is not None:
            response = await self.too_large(scope)
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b"The request is too large.\n"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` (and ``Cache-Control: no-store``) to every HTTP response,
    except those the app set itself: the editor's desk sends its own, stricter for scripts,
    policy (and frames its previews from its own origin)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                chosen = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in chosen)
                if b"cache-control" not in chosen:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class ErrorGuard:
    """Turn any exception that escapes the app into ``fallback``'s page (a 500 without a
    traceback), logging the exception with the token-free path."""

    def __init__(self, app: ASGIApp,
                 fallback: Callable[[Scope], Awaitable[ASGIApp]]) -> None:
        self.app = app
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # the last line of defence: no traceback reaches a client
            log.error("request %s %s failed: %s", scope.get("method"),
                      redact_path(scope.get("path", "")), type(exc).__name__)
            log.debug("traceback of the failed request", exc_info=True)
            if started:
                return
            response: Any = await self.fallback(scope)
            await response(scope, receive, send)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The RFC 6454 origin of ``url`` as browsers serialise it (``https://host[:port]``,
    lower case, default port left out), or None when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def is_cross_site(headers: Iterable[tuple[bytes, bytes]], allowed: frozenset[str]) -> bool:
    """True when a browser sent this request from a page of another origin.

    ``Sec-Fetch-Site: same-origin`` (or ``none``: the user's own navigation) is trusted as
    the browser sets it; otherwise an ``Origin`` must be one of ``allowed``. A request with
    neither header did not come from a browser form (an RFC 8058 one-click POST from a
    mail provider, a script) and is not cross-site.
    """
    site = origin = None
    for name, value in headers:
        if name == b"sec-fetch-site":
            site = value.decode("latin-1").strip().lower()
        elif name == b"origin":
            origin = value.decode("latin-1").strip()
    if site is None and origin is None:
        return False
    if site in ("same-origin", "none"):
        return False
    if origin is None or origin == "null":
        return True
    return (origin_of(origin) or "") not in allowed


class CrossSiteGuard:
    """Refuse with ``forbidden``'s page (403) every state-changing request (any method but
    GET, HEAD, OPTIONS) that :func:`is_cross_site` says a browser sent from another site.

    :param allowed: origins whose pages may post to the app (``web.base_url``'s and
        ``site.url``'s, for a sign-up form embedded on the newsroom's own site).
    :param exempt: route paths (after the base path) left to a stricter guard of their own
        (the editor's desk refuses with its own page, and also posts without ``Origin``).
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str],
                 forbidden: Callable[[Scope], Awaitable[ASGIApp]] | None = None,
                 exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(a for a in (origin_of(o) for o in allowed) if a)
        self.forbidden = forbidden
        self.exempt = tuple(p.rstrip("/") for p in exempt)

    def _exempt(self, scope: Scope) -> bool:
        path = get_route_path(scope)
        return any(path == p or path.startswith(p + "/") for p in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in _SAFE_METHODS
                or not is_cross_site(scope.get("headers", ()), self.allowed)
                or self._exempt(scope)):
            await self.app(scope, receive, send)
            return
        log.info("refused a cross-site %s %s", scope["method"],
                 redact_path(scope.get("path", "")))
        if self.forbidden is not None:
            response = await self.forbidden(scope)
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body",
                    "body": b"Forms on other sites cannot post here.\n"})
