"""``/drafts/<token>``: an edition as a reader with every section gets it, for the editors a
review mail goes to. The signed token names the edition (see ``pipeline.draft_preview_url``);
the page is never cached and never indexed, and shows drafts, held and sent editions alike."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.errors import InvalidTokenError, StoreError

from .state import WebState, state_of

__all__ = ["draft_preview"]

_PRIVATE = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex, nofollow"}


def _render(web: WebState, token: str) -> str | None:
    from digest.pipeline import Links, MessageFactory, read_draft_token

    edition_id, list_name = read_draft_token(web.settings, token)
    lst = web.configured(list_name)
    try:
        record = web.get_store().get_edition(edition_id)
    except StoreError as exc:
        if "no edition" in str(exc):
            return None
        raise
    if lst is None or record.list_name != list_name or not record.has_stories:
        return None
    edition = record.edition()
    factory = MessageFactory(web.settings, lst, edition)
    generic = web.url(f"/links/{lst.name}")
    links = Links(unsubscribe_url=generic, unsubscribe_mailto="", manage_url=generic,
                  browser_url=web.url(f"/archive/{lst.name}/{edition.date.isoformat()}"))
    html, _text = factory.variant(None).fill(factory.personalisation("", None, links))
    return html


async def draft_preview(request: Request) -> Response:
    """The edition a draft preview token names, or 404 when it no longer exists."""
    web = state_of(request)
    try:
        html = await run_in_threadpool(_render, web, request.path_params["token"])
    except InvalidTokenError:
        raise InvalidTokenError("This preview link is not valid or has expired; use the "
                                "link in the latest review mail, or `editions show ID`.") \
            from None
    if html is None:
        return web.pages.message("Not found", "This edition is no longer stored.",
                                 status=404, headers=_PRIVATE)
    return HTMLResponse(html, headers=_PRIVATE)
