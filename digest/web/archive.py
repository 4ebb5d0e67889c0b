"""Public pages: the archive ("view in browser"), the archive index, and the health check."""

from __future__ import annotations

import logging
import re
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from digest import i18n
from digest.config import ListSettings
from digest.errors import StoreError

from .state import ARCHIVE_CACHE_SIZE, WebState, state_of

__all__ = ["archive_edition", "archive_index", "healthz", "personal_links"]

log = logging.getLogger("digest.web")

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Archive pages are the same for everyone and change only when a new edition is stored.
PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


def _published(web: WebState, list_name: str, day: date):  # type: ignore[no-untyped-def]
    """The newest edition of that day that went out (a held or unsent one stays private)."""
    store = web.get_store()
    record = store.find_edition(list_name, day)
    if record is None or record.published_at is not None:
        return record
    for older in store.list_editions(list_name, limit=200):
        if older.date == day and older.published_at is not None:
            return older
    return None


def _render(web: WebState, lst: ListSettings, record) -> str:  # type: ignore[no-untyped-def]
    """The edition's HTML as a subscriber with every section saw it, minus personal data:
    the greeting is generic and the manage/unsubscribe links lead to an explanation."""
    from digest.pipeline import Links, MessageFactory

    with web.archive_lock:
        cached = web.archive_cache.get(record.id)
        if cached is not None:
            web.archive_cache.move_to_end(record.id)
            return cached
    edition = record.edition()
    factory = MessageFactory(web.settings, lst, edition)
    generic = web.url(f"/links/{lst.name}")
    links = Links(unsubscribe_url=generic, unsubscribe_mailto="", manage_url=generic,
                  browser_url=web.url(f"/archive/{lst.name}/{edition.date.isoformat()}"))
    html, _text = factory.variant(None).fill(factory.personalisation("", None, links))
    with web.archive_lock:
        web.archive_cache[record.id] = html
        while len(web.archive_cache) > ARCHIVE_CACHE_SIZE:
            web.archive_cache.popitem(last=False)
    return html


def _not_found(web: WebState, sentence: str, lang: str | None = None) -> Response:
    return web.pages.message(web.pages.gettext(lang)("Not found"), sentence, status=404,
                             lang=lang)


async def archive_edition(request: Request) -> Response:
    """``/archive/<list>/<YYYY-MM-DD>``: the edition of that day as the email showed it."""
    web = state_of(request)
    lst = web.configured(request.path_params["list"])
    raw_day = request.path_params["day"]
    lang = web.language(request.path_params["list"])
    _ = web.pages.gettext(lang)
    if lst is None or not _DAY.match(raw_day):
        return _not_found(web, _("There is no such edition here."), lang)
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        return _not_found(web, _("There is no such edition here."), lang)
    record = await run_in_threadpool(_published, web, lst.name, day)
    if record is None:
        return web.pages.message(
            _("Not found"), _("No %(title)s edition went out on %(date)s.")
            % {"title": lst.title, "date": i18n.format_long(day, lang)}, status=404,
            links=[(_("All %(title)s editions") % {"title": lst.title},
                    web.url(f"/archive/{lst.name}"))], lang=lang)
    html = await run_in_threadpool(_render, web, lst, record)
    return HTMLResponse(html, headers=PUBLIC_CACHE)


async def archive_index(request: Request) -> Response:
    """``/archive/<list>``: the list's recent editions, newest first, one per day."""
    web = state_of(request)
    lst = web.configured(request.path_params["list"])
    if lst is None:
        return _not_found(web, web.pages.gettext()("There is no such list here."))
    records = await run_in_threadpool(web.get_store().list_editions, lst.name, limit=100)
    editions, seen = [], set()
    for record in records:
        if record.published_at is None or record.date in seen:
            continue
        seen.add(record.date)
        editions.append((record.date, record.subject,
                         web.url(f"/archive/{lst.name}/{record.date.isoformat()}")))
    return web.pages.render("archive_index.html", headers=PUBLIC_CACHE, list_title=lst.title,
                            editions=editions[:60], lang=lst.language,
                            subscribe_url=web.url(f"/subscribe/{lst.name}"))


async def personal_links(request: Request) -> Response:
    """Where an archive page's manage and unsubscribe links lead: those are personal."""
    web = state_of(request)
    lst = web.configured(request.path_params["list"])
    if lst is None:
        return _not_found(web, web.pages.gettext()("There is no such list here."))
    _ = web.pages.gettext(lst.language)
    return web.pages.message(
        _("Use the links in your email"),
        _("The links at the bottom of each %(title)s email are yours alone: use them to "
          "choose your sections or to unsubscribe in one click. This page is the public "
          "copy of an edition, so it cannot know who you are.") % {"title": lst.title},
        links=[(_("Subscribe to %(title)s") % {"title": lst.title},
                web.url(f"/subscribe/{lst.name}")),
               (_("All %(title)s editions") % {"title": lst.title},
                web.url(f"/archive/{lst.name}"))],
        headers=PUBLIC_CACHE, lang=lst.language)


async def healthz(request: Request) -> Response:
    """``ok`` when the app can read its database, else 503."""
    web = state_of(request)
    try:
        await run_in_threadpool(lambda: web.get_store().list_names())
    except StoreError as exc:
        log.warning("health check: %s", exc)
        return PlainTextResponse("database unavailable\n", status_code=503)
    return PlainTextResponse("ok\n")
