"""The editor's desk: a signed-in web app under ``/desk/`` of ``web.base_url`` where editors
preview, test, approve and follow every edition (issue 13).

``create_desk(web)`` builds it as a Starlette app that the public web app mounts at
``/desk``. Everything an editor can do here, the command line can do too (``preview``,
``send --test-to``, ``editions ...``, ``subscribers ...``); the desk adds no power.

- :mod:`.guard` — the door: desk security headers, Origin check, session, CSRF.
- :mod:`.sessions` — signed session cookies and the sign-in form's nonce.
- :mod:`.auth` — sign-in (rate limited per account and per client network) and sign-out.
- :mod:`.overview`, :mod:`.editions`, :mod:`.report`, :mod:`.subscribers` — the pages.
- :mod:`.moves`, :mod:`.actions` — approve, hold, cancel, send now, force, build a draft.
- :mod:`.charts` — server-side SVG charts.
- :mod:`.pages` — the Jinja2 environment over ``templates/web/desk/`` and static files.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.errors import DeliveryError, RenderError, StoreError

from ..middleware import origin_of
from ..rowids import RowIdConvertor  # noqa: F401  (registers {id:rowid})
from ..slashes import install_slash_redirect
from .actions import build_draft, confirm_page, perform
from .auth import login, logout
from .editions import (
    edition_eml,
    edition_frame,
    edition_page,
    edition_text,
    send_test,
    variant_lookup,
)
from .guard import DeskGuard
from .overview import overview_page
from .report import report_page
from .state import DESK_PATH, DeskState, desk_of
from .subscribers import lookup, subscriber_page, subscribers_page

if TYPE_CHECKING:
    from ..state import WebState

__all__ = ["DESK_PATH", "DeskState", "create_desk", "desk_root"]

log = logging.getLogger("digest.web.desk")

_SENTENCES = {
    400: ("Bad request", "The request could not be read; go back and try again."),
    403: ("Not allowed", "This request cannot be accepted here."),
    404: ("Not found", "There is no desk page at this address."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "The request is too large."),
}


async def _static(request: Request) -> Response:
    found = desk_of(request).pages.static.response(request.path_params["name"])
    if found is None:
        raise HTTPException(404)
    return found


async def _subscribers(request: Request) -> Response:
    return await (lookup(request) if request.method == "POST" else subscribers_page(request))


async def _edition(request: Request) -> Response:
    return await edition_page(request)


def _routes() -> list[Route]:
    return [
        Route("/", overview_page, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/{name}", _static, methods=["GET"]),
        Route("/editions/{id:rowid}", _edition, methods=["GET"]),
        Route("/editions/{id:rowid}/frame", edition_frame, methods=["GET"]),
        Route("/editions/{id:rowid}/text", edition_text, methods=["GET"]),
        Route("/editions/{id:rowid}/eml", edition_eml, methods=["GET"]),
        Route("/editions/{id:rowid}/variant", variant_lookup, methods=["POST"]),
        Route("/editions/{id:rowid}/test", send_test, methods=["POST"]),
        Route("/editions/{id:rowid}/report", report_page, methods=["GET"]),
        Route("/editions/{id:rowid}/confirm/{action}", confirm_page, methods=["GET"]),
        Route("/editions/{id:rowid}/{action}", perform, methods=["POST"]),
        Route("/lists/{list}/draft", build_draft, methods=["POST"]),
        Route("/subscribers", _subscribers, methods=["GET", "POST"]),
        Route("/subscribers/{id:rowid}", subscriber_page, methods=["GET"]),
    ]


def _handlers(desk: DeskState) -> dict[object, object]:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        heading, sentence = _SENTENCES.get(exc.status_code,
                                           ("Something went wrong", "The request failed."))
        return desk.pages.message(request, heading, sentence, status=exc.status_code,
                                  headers=exc.headers)

    async def store_error(request: Request, exc: Exception) -> Response:
        text = str(exc)
        if "has no edition" in text:
            return desk.pages.message(request, "No such edition", text, status=404,
                                      links=[("Overview", desk.url("/"))])
        log.warning("desk %s: %s", request.method, type(exc).__name__)
        return desk.pages.message(request, "The database is unavailable", text, status=503,
                                  headers={"Retry-After": "30"})

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("desk %s failed: %s", request.method, exc)
        return desk.pages.message(request, "This could not be done", str(exc), status=500)

    return {HTTPException: http_error, StoreError: store_error, RenderError: failed,
            DeliveryError: failed}


def create_desk(web: WebState) -> Starlette:
    """The desk app for the public web app's ``web`` state (mounted at ``/desk``).

    :raises ConfigError: the desk templates are missing or broken.
    """
    desk = DeskState.create(web)
    origin = origin_of(web.settings.web.base_url) or ""

    async def refuse(request: Request, sentence: str) -> Response:
        return desk.pages.message(request, "Not allowed from there", sentence, status=403,
                                  links=[("The desk", desk.url("/"))])

    async def crashed(request: Request) -> Response:
        return desk.pages.message(request, "Something went wrong",
                                  "The page could not be produced; the error is in the log.",
                                  status=500)

    app = Starlette(routes=_routes(),
                    middleware=[Middleware(DeskGuard, desk=desk, origin=origin, refuse=refuse,
                                           crashed=crashed)],
                    exception_handlers=_handlers(desk))  # type: ignore[arg-type]
    app.state.desk = desk
    install_slash_redirect(app, desk.url)  # from web.base_url, never the Host header
    return app


def desk_root(web: WebState) -> Route:
    """``/desk`` without its slash: a 308 to the desk's overview."""

    async def to_desk(request: Request) -> Response:
        return RedirectResponse(web.url(DESK_PATH + "/"), status_code=308)

    return Route(DESK_PATH, to_desk, methods=["GET", "HEAD"])

