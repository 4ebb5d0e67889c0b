"""Subscriber pages: one-click unsubscribe, manage sections, subscribe and confirm.

CSRF: no page here uses cookies or sessions. Every state-changing POST except the sign-up
form goes to a URL holding a signed token scoped to one subscriber, one list and one purpose,
and a POST a browser sends from another site is refused with 403 before it gets here
(:class:`~digest.web.middleware.CrossSiteGuard`); RFC 8058 one-click POSTs come from mail
providers' servers without browser headers and the token is their only credential. The
sign-up form changes nothing about an existing member until its owner confirms by email,
is rate limited per client network and per mailbox (in the store), and never emails a
suppressed or complained address. What the store allows is its ownership rule
(:mod:`digest.store.subscribers`); these handlers only say who acted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from digest import tokens
from digest.config import ListSettings
from digest.errors import InvalidTokenError, SubscriberNotFoundError
from digest.store import InvalidSubscriberError, Membership
from digest.store.subscribers import clean_name, clean_sections, normalise_address

from .mailer import already_subscribed_message, confirmation_message, send_one
from .pages import mask_address
from .ratelimit import Limit, client_key, mailbox_key
from .state import WebState, state_of

__all__ = ["confirm", "manage", "subscribe", "unsubscribe"]

log = logging.getLogger("digest.web")

MAX_FORM_FIELDS = 100


async def _form(request: Request) -> FormData:
    """The posted form (urlencoded or multipart, no files; the body is already capped)."""
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=16_384)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _strings(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


async def _member(web: WebState, request: Request, salt: str) -> Membership:
    """The membership a path token names.

    :raises InvalidTokenError: forged, altered, misdirected, too old, or no such member.
    """
    token = request.path_params["token"]
    subscriber_id, list_name = tokens.read_token(web.settings.web.secret_keys, salt, token,
                                                 max_age=web.settings.web.token_max_age)
    try:
        return await run_in_threadpool(web.get_store().get_membership_by_id, subscriber_id,
                                       list_name)
    except SubscriberNotFoundError:
        raise InvalidTokenError("This link does not match any subscription; use the link "
                                "from the latest email.") from None


def _manage_link(web: WebState, member: Membership) -> str:
    token = tokens.make_manage_token(web.settings.web.secret_keys, member.subscriber_id,
                                     member.list_name)
    return web.url(f"/manage/{token}")


# --------------------------------------------------------------------------- unsubscribe


async def unsubscribe(request: Request) -> Response:
    """GET asks; POST (the page's button or an RFC 8058 one-click) unsubscribes at once.

    The POST body (``List-Unsubscribe=One-Click``) is not required: the signed token is the
    credential, and refusing a provider's slightly different body would keep sending mail to
    someone who asked to stop.
    """
    web = state_of(request)
    member = await _member(web, request, tokens.UNSUBSCRIBE)
    title = web.list_title(member.list_name)
    lang = web.language(member.list_name)
    _ = web.pages.gettext(lang)
    manage = _manage_link(web, member)
    if request.method != "POST":
        return web.pages.render("unsubscribe.html", list_title=title,
                                masked=mask_address(member.email), manage_url=manage,
                                subscribed=member.status in ("active", "pending"), lang=lang)
    # A browser (the page's button) sends Origin or Sec-Fetch-Site; a mail provider's
    # RFC 8058 one-click POST sends neither.
    from_page = "origin" in request.headers or "sec-fetch-site" in request.headers
    cause = "unsubscribe-page" if from_page else "one-click-unsubscribe"
    changed = await run_in_threadpool(
        lambda: web.get_store().unsubscribe(member.subscriber_id, member.list_name,
                                            cause=cause))
    log.info("unsubscribe list=%s via=%s changed=%s", member.list_name, cause, changed)
    return web.pages.message(
        _("You are unsubscribed from %(title)s") % {"title": title},
        _("%(address)s will get no more %(title)s emails. An edition already on its way may "
          "still arrive.") % {"address": mask_address(member.email), "title": title},
        _("Changed your mind? Your preferences page lets you subscribe again."),
        links=[(_("Your preferences"), manage)], lang=lang)


# --------------------------------------------------------------------------- manage


def _section_choices(lst: ListSettings | None,
                     chosen: frozenset[str] | set[str] | None) -> list[tuple[str, bool]]:
    if lst is None:
        return []
    wanted = None if chosen is None else {c.casefold() for c in chosen}
    return [(s, wanted is None or s.casefold() in wanted) for s in lst.sections]


def _chosen_sections(lst: ListSettings, picked: list[str],
                     _: Callable[[str], str] = str) -> list[str] | None:
    """None (every section, and any added later) when every section is ticked.

    :raises InvalidSubscriberError: in the reader's language (``_``).
    """
    chosen, unknown = clean_sections(picked, lst.sections)
    if unknown:
        raise InvalidSubscriberError(_("Unknown section %(section)s; choose from the list's "
                                       "sections.") % {"section": repr(unknown[0])})
    if not chosen:
        raise InvalidSubscriberError(_("Tick at least one section; to stop the emails, "
                                       "unsubscribe instead."))
    return None if len(chosen) == len(set(lst.sections)) else chosen


async def manage(request: Request) -> Response:
    """Section preferences (GET shows, POST ``action=save``), and subscribing again
    (``action=resubscribe``, which emails a confirmation link)."""
    web = state_of(request)
    member = await _member(web, request, tokens.MANAGE)
    lst = web.configured(member.list_name)
    lang = web.language(member.list_name)
    _ = web.pages.gettext(lang)
    # Relative, so the form posts to this server whatever origin it is reached on (the
    # Content-Security-Policy allows forms to post to the page's own origin only).
    unsubscribe_link = "../unsubscribe/" + tokens.make_unsubscribe_token(
        web.settings.web.secret_keys, member.subscriber_id, member.list_name)

    def page(current: Membership, *, status: int = 200, notice: str | None = None,
             error: str | None = None, picked: set[str] | None = None) -> Response:
        return web.pages.render(
            "manage.html", status=status, list_title=web.list_title(current.list_name),
            masked=mask_address(current.email), member_status=current.status,
            sections=_section_choices(lst, picked if picked is not None else current.sections),
            notice=notice, error=error, unsubscribe_url=unsubscribe_link, lang=lang)

    if request.method != "POST":
        return page(member)
    if lst is None:
        return web.pages.message(_("This list is closed"),
                                 _("The list this link belongs to no longer exists."),
                                 status=400, lang=lang)
    form = await _form(request)
    action = _text(form, "action")
    if action == "save":
        picked = _strings(form, "sections")
        try:
            chosen = _chosen_sections(lst, picked, _)
            updated = await run_in_threadpool(web.get_store().update_sections,
                                              member.subscriber_id, member.list_name, chosen,
                                              known=lst.sections)
        except InvalidSubscriberError as exc:
            return page(member, status=400, error=str(exc), picked=set(picked))
        log.info("sections updated list=%s", member.list_name)
        return page(updated, notice=_("Your preferences are saved."))
    if action == "resubscribe":
        limited = await _limited(web, request, lang)
        if limited is not None:
            return limited
        await _request_and_mail(web, lst, member.email, None, None,
                                cause="resubscribe-request")
        # The same words whether an email went or not (a suppressed address, the
        # per-mailbox limit): true either way, and nothing to learn about the address.
        return page(member, notice=_(
            "If %(address)s can receive our emails, a message with a link to finish is on "
            "its way. Nothing after a few minutes? Look in your spam folder.")
            % {"address": mask_address(member.email)})
    return page(member, status=400, error=_("That form could not be understood; use the "
                                            "buttons on this page."))


# --------------------------------------------------------------------------- subscribe


async def _take(web: WebState, key: str, limit: Limit) -> int:
    """0 when ``key`` may act now (and that is counted), else seconds to wait."""
    store = web.get_store()
    return int(await run_in_threadpool(lambda: store.take_signup_token(
        key, capacity=limit.capacity, per_second=limit.per_second)))


async def _limited(web: WebState, request: Request, lang: str | None = None) -> Response | None:
    """A 429 page (in ``lang``) when this client's network sent too many sign-ups; None
    when it may go on."""
    host = request.client.host if request.client else None
    wait = await _take(web, client_key(host, web.settings.web.secret_keys[0]), web.per_client)
    if wait:
        _, ngettext = web.pages.gettext(lang), web.pages.ngettext(lang)
        minutes = max(1, round(wait / 60))
        return web.pages.message(
            _("Too many requests"),
            ngettext("Too many sign-up requests came from your network; please try again in "
                     "%(num)d minute.",
                     "Too many sign-up requests came from your network; please try again in "
                     "%(num)d minutes.", minutes) % {"num": minutes}, status=429,
            headers={"Retry-After": str(wait)}, lang=lang)
    return None


async def _request_and_mail(web: WebState, lst: ListSettings, email: str, name: str | None,
                            sections: Any, *, cause: str = "web-signup") -> bool:
    """Record the request and email the confirmation link, or a note that the address is
    already subscribed; True when an email went out. Only a few emails go to one mailbox
    (``+tags`` and case aside), and none to a suppressed or complained address (under any
    spelling of its mailbox); the rest are dropped quietly, before anything is recorded,
    and the caller answers the same either way."""
    store = web.get_store()
    if await _take(web, mailbox_key(email, web.settings.web.secret_keys[0]), web.per_mailbox):
        log.info("subscription email dropped by the per-mailbox limit list=%s", lst.name)
        return False
    request = await run_in_threadpool(
        lambda: store.request_subscription(lst.name, email, name=name, sections=sections,
                                           cause=cause, source="web",
                                           allow_smtputf8=web.settings.allow_smtputf8))
    member = request.member
    if request.outcome == "suppressed" or member is None:
        log.info("no subscription email: the address is suppressed list=%s", lst.name)
        return False
    if request.outcome == "already-active":
        message = already_subscribed_message(web.settings, lst, email=member.email,
                                             manage_link=_manage_link(web, member))
    else:
        token = tokens.make_confirm_token(web.settings.web.secret_keys, member.subscriber_id,
                                          lst.name, request_id=request.request_id)
        message = confirmation_message(web.settings, lst, email=member.email,
                                       confirm_link=tokens.confirm_url(
                                           web.settings.web.base_url, token))
    if await send_one(web.settings, lst, message):
        log.info("subscription email sent list=%s kind=%s", lst.name, request.outcome)
        return True
    return False


async def subscribe(request: Request) -> Response:
    """The sign-up form; POST records a pending membership and emails the confirm link.

    Every accepted request gets the same "check your inbox" page, whether the address was
    new, pending, active or unsubscribed, so the form cannot tell anyone who is subscribed.
    """
    web = state_of(request)
    lst = web.configured(request.path_params["list"])
    if lst is None:
        _ = web.pages.gettext()
        return web.pages.message(_("Not found"), _("There is no such list here."), status=404)
    lang = lst.language
    _, ngettext = web.pages.gettext(lang), web.pages.ngettext(lang)

    def form_page(*, status: int = 200, error: str | None = None, email: str = "",
                  name: str = "", picked: list[str] | None = None) -> Response:
        return web.pages.render("subscribe.html", status=status, list_title=lst.title,
                                error=error, email=email, name=name,
                                sections=_section_choices(lst, set(picked) if picked
                                                          else None), lang=lang)

    if request.method != "POST":
        return form_page()
    form = await _form(request)
    email, name, picked = _text(form, "email")[:320], _text(form, "name")[:400], \
        _strings(form, "sections")
    limited = await _limited(web, request, lang)
    if limited is not None:
        return limited
    days = max(1, round(web.settings.web.confirm_max_age.total_seconds() / 86400))
    done = web.pages.message(
        _("Check your inbox"),
        ngettext("If the address can receive mail, a message is on its way with a link to "
                 "confirm your subscription to %(title)s. The link works for %(num)d day.",
                 "If the address can receive mail, a message is on its way with a link to "
                 "confirm your subscription to %(title)s. The link works for %(num)d days.",
                 days) % {"title": lst.title, "num": days},
        _("Nothing arrived after a few minutes? Look in your spam folder, or try again."),
        lang=lang)
    if _text(form, "website"):
        return done  # the field people cannot see: a bot filled it in
    try:
        try:
            address, _key = normalise_address(email,
                                              allow_smtputf8=web.settings.allow_smtputf8)
        except InvalidSubscriberError:
            raise InvalidSubscriberError(_("This email address is not valid; check it and "
                                           "try again.")) from None
        try:
            cleaned = clean_name(name)
        except InvalidSubscriberError:
            raise InvalidSubscriberError(_("This name cannot be used; write it on one line "
                                           "as plain text, or leave it empty.")) from None
        # No sections at all (a one-field form embedded on the newsroom's site): all.
        sections = _chosen_sections(lst, picked, _) if lst.sections and picked else None
    except InvalidSubscriberError as exc:
        return form_page(status=400, error=str(exc), email=email, name=name, picked=picked)
    await _request_and_mail(web, lst, address, cleaned, sections)
    return done


# --------------------------------------------------------------------------- confirm


async def confirm(request: Request) -> Response:
    """The double opt-in link: GET shows a button, POST makes the member active (mail
    scanners open every link, so a GET alone must not subscribe anyone). The link names the
    sign-up request it confirms; the store refuses it when the reader left after it."""
    web = state_of(request)
    keys = web.settings.web.secret_keys
    token = request.path_params["token"]
    try:
        subscriber_id, list_name, request_id = tokens.read_confirm_token(
            keys, token, max_age=web.settings.web.confirm_max_age)
    except InvalidTokenError as exc:
        if "expired" not in str(exc):
            raise
        # The signature is good, only old: it still names the list to subscribe to again.
        _id, list_name = tokens.read_token(keys, tokens.CONFIRM, token)
        lang = web.language(list_name)
        _ = web.pages.gettext(lang)
        links = ([(_("Subscribe to %(title)s again") % {"title": web.list_title(list_name)},
                   web.url(f"/subscribe/{list_name}"))] if web.configured(list_name) else [])
        return web.pages.message(_("This link has expired"),
                                 _("This confirmation link has expired; subscribe again to "
                                   "get a new one."), status=400, links=links, lang=lang)
    lang = web.language(list_name)
    _ = web.pages.gettext(lang)
    store = web.get_store()
    try:
        if request.method != "POST":
            member = await run_in_threadpool(store.get_membership_by_id, subscriber_id,
                                             list_name)
            if member.status != "active" and await run_in_threadpool(
                    store.can_confirm, subscriber_id, list_name, request_id):
                return web.pages.render("confirm.html", list_title=web.list_title(list_name),
                                        masked=mask_address(member.email), lang=lang)
        else:
            moment = datetime.now(UTC)
            member = await run_in_threadpool(
                lambda: store.confirm_subscription(subscriber_id, list_name,
                                                   request_id=request_id, now=moment))
            if member.status == "active" and member.confirmed_at == moment:
                log.info("subscription confirmed list=%s", list_name)  # this POST did it
    except SubscriberNotFoundError:
        raise InvalidTokenError("This confirmation link does not match any subscription; "
                                "subscribe again.") from None
    title = web.list_title(list_name)
    if member.status != "active":
        return web.pages.message(
            _("This link no longer applies"),
            _("%(address)s left %(title)s after this link was sent; subscribe again to get it "
              "back.") % {"address": mask_address(member.email), "title": title}, status=400,
            links=[(_("Subscribe to %(title)s") % {"title": title},
                    web.url(f"/subscribe/{list_name}"))]
            if web.configured(list_name) else [], lang=lang)
    return web.pages.message(
        _("You are subscribed to %(title)s") % {"title": title},
        _("%(address)s will get the next edition.") % {"address": mask_address(member.email)},
        links=[(_("Choose your sections"), _manage_link(web, member))], lang=lang)
