"""The trailing-slash redirect, built from ``web.base_url``: Starlette's own redirect builds
its URL from the request's ``Host`` header, which a client chooses (a forged ``Host`` would
send readers and editors to another site). Every Starlette app of the web app (the public
one and the desk mounted in it) installs this one instead.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Match, get_route_path
from starlette.types import Receive, Scope, Send

__all__ = ["install_slash_redirect"]


def install_slash_redirect(app: Starlette, url: Callable[[str], str]) -> None:
    """Replace ``app``'s trailing-slash redirect: a path with no route, whose twin with the
    trailing slash added or removed has one, gets a 307 to ``url(twin)`` (an absolute URL
    under ``web.base_url``) with the query kept; anything else gets the app's 404."""
    router = app.router
    router.redirect_slashes = False
    routes, not_found = router.routes, router.not_found

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path = get_route_path(scope) if scope["type"] == "http" else "/"
        if path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            probe = {**scope, "path": scope.get("root_path", "") + other}
            if any(route.matches(probe)[0] is not Match.NONE for route in routes):
                query = scope.get("query_string", b"").decode("latin-1")
                target = url(other or "/") + (f"?{query}" if query else "")
                await RedirectResponse(target, status_code=307)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = fallback
