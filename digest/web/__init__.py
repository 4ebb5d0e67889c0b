"""The web app behind every link in the emails: unsubscribe, preferences, sign-up, archive.

``create_app(settings)`` builds the Starlette app; ``serve(settings)`` runs it with uvicorn
(``digest serve``). Routes are relative to ``web.base_url``'s path, and answer both with
and without that prefix, so a proxy may pass the path through or strip it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import Scope

from digest.config import Settings
from digest.errors import (
    DeliveryError,
    DigestError,
    InvalidTokenError,
    RenderError,
    StoreError,
)

from .archive import archive_edition, archive_index, personal_links
from .desk import DESK_PATH, create_desk, desk_root
from .drafts import draft_preview
from .health import healthz, notifying_server
from .middleware import (
    MAX_BODY,
    BodyLimit,
    CrossSiteGuard,
    ErrorGuard,
    PrefixRoot,
    RedactTokens,
    SecurityHeaders,
    redact_path,
)
from .pages import Pages
from .slashes import install_slash_redirect
from .state import WebState, state_of
from .subscriptions import confirm, manage, subscribe, unsubscribe

if TYPE_CHECKING:
    from digest.store import Store
    from digest.systemd import Notifier

__all__ = ["create_app", "serve"]

log = logging.getLogger("digest.web")

def N_(message: str) -> str:
    """Marks a message for the catalogs (``pybabel extract``); translated where it is used."""
    return message


_HTTP_SENTENCES = {
    400: (N_("Bad request"), N_("The request could not be read; go back and try again.")),
    403: (N_("Not allowed from there"), N_("This form can only be sent from our own pages; "
                                           "open the page from the email or our website, "
                                           "then try again.")),
    404: (N_("Not found"), N_("There is no page at this address.")),
    405: (N_("Not allowed"), N_("This address does not accept that kind of request.")),
    413: (N_("Too large"), N_("The request is too large.")),
}


async def home(request: Request) -> Response:
    """The root: each list with its sign-up form and archive."""
    web = state_of(request)
    _ = web.pages.gettext()
    links = []
    for lst in web.settings.lists.values():
        gettext = web.pages.gettext(lst.language)  # each list's links in its language
        links.append((gettext("Subscribe to %(title)s") % {"title": lst.title},
                      web.url(f"/subscribe/{lst.name}")))
        links.append((gettext("%(title)s: past editions") % {"title": lst.title},
                      web.url(f"/archive/{lst.name}")))
    return web.pages.message(web.settings.site.name, _("Our email newsletters:"), links=links)


def _routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/", home, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=both),
        Route("/manage/{token}", manage, methods=both),
        # tokens.manage_url spells the same page /preferences/.
        Route("/preferences/{token}", manage, methods=both),
        Route("/subscribe/{list}", subscribe, methods=both),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
        Route("/archive/{list}", archive_index, methods=["GET"]),
        Route("/archive/{list}/{day}", archive_edition, methods=["GET"]),
        Route("/links/{list}", personal_links, methods=["GET"]),
        Route("/drafts/{token}", draft_preview, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]


def _handlers(web: WebState) -> dict[object, object]:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        _ = web.pages.gettext()
        heading, sentence = _HTTP_SENTENCES.get(
            exc.status_code, (N_("Something went wrong"),
                              N_("The request could not be handled.")))
        return web.pages.message(_(heading), _(sentence), status=exc.status_code,
                                 headers=exc.headers)

    async def bad_token(request: Request, exc: Exception) -> Response:
        _ = web.pages.gettext()
        return web.pages.message(_("This link does not work"), _token_sentence(_, exc),
                                 status=400)

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: %s", request.method, redact_path(request.url.path), exc)
        _ = web.pages.gettext()
        sentence = (_("We could not send the email just now; please try again in a few "
                      "minutes.")
                    if isinstance(exc, DeliveryError) else
                    _("The service is unavailable for a moment; please try again in a few "
                      "minutes."))
        return web.pages.message(_("Please try again soon"), sentence, status=503,
                                 headers={"Retry-After": "60"})

    async def render_failed(request: Request, exc: Exception) -> Response:
        log.error("%s %s: %s", request.method, redact_path(request.url.path), exc)
        _ = web.pages.gettext()
        return web.pages.message(_("This page cannot be shown"),
                                 _("This edition cannot be shown right now; the newsroom has "
                                   "been told."), status=500)

    return {HTTPException: http_error, InvalidTokenError: bad_token, StoreError: unavailable,
            DeliveryError: unavailable, RenderError: render_failed}


def _token_sentence(_: Callable[[str], str], exc: Exception) -> str:
    """What a reader is told about a link that does not work, in their language: the
    token module's reasons come in English, so the kind of fault is mapped here."""
    reason = str(exc)
    if "expired" in reason:
        return _("This link has expired; ask for a new one.")
    if "another list" in reason:
        return _("This link is for another list; use the link from that list's email.")
    if "confirmation link" in reason:
        return _("This confirmation link does not match any subscription; subscribe again.")
    return _("This link is not valid; use the link from the latest email.")


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The web app for ``settings``.

    :param store: an open store to use (the caller closes it); None opens the configured
        one at startup and closes it at shutdown (the app's lifespan).
    :raises ConfigError: when the web templates are missing or broken.
    """
    web = WebState(settings=settings, pages=Pages(settings), store=store)
    _redact_access_log()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened: Store | None = None
        if web.store is None:
            opened = web.store = await run_in_threadpool(_open_store, settings)
        try:
            yield
        finally:
            if opened is not None:
                web.store = None
                opened.close()

    async def too_large(scope: Scope) -> Response:
        _ = web.pages.gettext()
        return web.pages.message(*(_(m) for m in _HTTP_SENTENCES[413]), status=413,
                                 headers={"Connection": "close"})

    async def forbidden(scope: Scope) -> Response:
        _ = web.pages.gettext()
        return web.pages.message(*(_(m) for m in _HTTP_SENTENCES[403]), status=403)

    async def crashed(scope: Scope) -> Response:
        _ = web.pages.gettext()
        return web.pages.message(_("Something went wrong"),
                                 _("The page could not be produced; please try again later."),
                                 status=500)

    desk = create_desk(web)
    app = Starlette(
        routes=[*_routes(), desk_root(web), Mount(DESK_PATH, app=desk)],
        middleware=[
            Middleware(PrefixRoot, prefix=urlsplit(settings.web.base_url).path),
            Middleware(SecurityHeaders),
            Middleware(CrossSiteGuard, allowed=(settings.web.base_url, settings.site.url),
                       forbidden=forbidden, exempt=(DESK_PATH,)),  # the desk guards its own
            Middleware(BodyLimit, limit=MAX_BODY, too_large=too_large),
            Middleware(ErrorGuard, fallback=crashed),
        ],
        exception_handlers=_handlers(web),  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.web = web
    app.state.desk = desk.state.desk
    install_slash_redirect(app, web.url)
    return app


def _open_store(settings: Settings) -> Store:
    from digest.store import open_store

    settings.work_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.database_url)


def _redact_access_log() -> None:
    """uvicorn's access log prints request paths, which carry tokens: redact them."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          notifier: Notifier | None = None) -> None:
    """Run the web app with uvicorn until SIGTERM or SIGINT (``digest serve``), logging
    through digest's own format and telling ``notifier`` (sd_notify) when it is ready.

    Forwarded client addresses (``X-Forwarded-For``, for the sign-up rate limit) are
    trusted only from the addresses in uvicorn's ``FORWARDED_ALLOW_IPS`` environment
    variable (default 127.0.0.1): behind a proxy on another host, set it to the proxy's
    address (README, "Running behind a proxy").
    """
    import socket

    import uvicorn

    from digest.logs import uvicorn_log_config

    host, port = host or settings.web.host, port or settings.web.port
    # uvicorn reports a port in use as log lines and exit status 3; check first so the
    # user gets one sentence (a race with another process remains, and ends the same way).
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise DigestError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}); pick "
                          "another --port or --host, or stop what is using it.") from None
    config = uvicorn.Config(create_app(settings), host=host, port=port, server_header=False,
                            proxy_headers=True, log_config=uvicorn_log_config())
    if notifier is None:
        uvicorn.Server(config).run()
    else:
        notifying_server(config, notifier).run()
