"""What an editor does to an edition on the desk: approve, hold, cancel, send now, force, and
build today's draft. Each behind a confirmation page, each recorded in the edition's events
as ``editor:<name>`` with the reason given, each through the same store and pipeline
functions the command line uses (the desk adds no power the command line lacks):

=============  ===========================================================================
desk           command line
=============  ===========================================================================
approve        ``editions approve ID --editor NAME --reason TEXT``
hold           ``editions hold ID ...``
cancel         ``editions cancel ID ...``
send now       ``send --list L [--as-of DATE]`` (publishes a draft or approved edition)
force          ``send --force --list L [--as-of DATE]`` (a held or missed edition, or a
               draft that review would hold back)
build draft    ``draft --list L`` (``--force`` when the desk's "Build it anyway" is used
               after the sources gave nothing new or nothing fit to lead)
=============  ===========================================================================

Sending publishes the edition (its ledger rows) before the page answers, then delivers in
the background of ``serve`` like ``send`` does in the foreground; rows a stopped server
leaves behind are finished by the scheduler's pass or ``worker`` (the ledger contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest import pipeline
from digest.config import ListSettings
from digest.errors import DigestError, EditionStateError, EmptyEditionError, SourceError
from digest.store import EditionRecord

from .editions import load_record
from .moves import Action, actions_for
from .state import DeskState, desk_of, signed_in

__all__ = ["build_draft", "confirm_page", "perform"]

log = logging.getLogger("digest.web.desk")

_MAX_REASON = 500
#: What the sources skipped, listed on the page that says why no draft was built.
_SHOWN_WARNINGS = 10


def _action(record: EditionRecord, lst: ListSettings | None, name: str) -> Action | None:
    return next((a for a in actions_for(record, lst) if a.name == name), None)


async def confirm_page(request: Request) -> Response:
    """``/desk/editions/{id}/confirm/{action}``: the question, a reason field, the button."""
    desk = desk_of(request)
    record = await load_record(desk, request)
    lst = desk.web.configured(record.list_name)
    action = _action(record, lst, request.path_params["action"])
    back = desk.url(f"/editions/{record.id}")
    if action is None:
        return desk.pages.message(request, "Not possible now",
                                  f"Edition {record.id} is {record.status}; that cannot be done "
                                  "to it now.", status=409, links=[("The edition", back)])
    return desk.pages.render(
        request, "confirm.html", nav="editions", record=record, heading=action.question,
        lines=[action.explanation], button=action.label, button_class=action.button,
        action_url=desk.url(f"/editions/{record.id}/{action.name}"), back_url=back)


def _reason(form: dict[str, str], action: Action, editor: str) -> str:
    given = " ".join(form.get("reason", "").split())[:_MAX_REASON]
    return given or f"{action.label.lower()} on the desk by {editor}"


async def perform(request: Request) -> Response:
    """POST ``/desk/editions/{id}/{action}`` with ``confirmed=yes`` (and a ``reason``)."""
    desk = desk_of(request)
    who = signed_in(request)
    record = await load_record(desk, request)
    lst = desk.web.configured(record.list_name)
    form = {k: v for k, v in (await request.form(max_files=0, max_fields=10,
                                                 max_part_size=2048)).items()
            if isinstance(v, str)}
    action = _action(record, lst, request.path_params["action"])
    back = desk.url(f"/editions/{record.id}")
    if action is None or lst is None:
        return desk.pages.message(request, "Not possible now",
                                  f"Edition {record.id} is {record.status}; that cannot be done "
                                  "to it now.", status=409, links=[("The edition", back)])
    if form.get("confirmed") != "yes":
        return RedirectResponse(desk.url(f"/editions/{record.id}/confirm/{action.name}"),
                                status_code=303)
    actor, cause = f"editor:{who.editor.name}", _reason(form, action, who.editor.name)
    try:
        if action.moves_to == "approved":  # after the send window: missed, and said so
            await run_in_threadpool(lambda: pipeline.approve_edition(
                desk.web.settings, desk.store, record.id, actor=actor, cause=cause))
            return RedirectResponse(desk.url(f"/editions/{record.id}?notice={action.name}"),
                                    status_code=303)
        if action.moves_to is not None:
            await run_in_threadpool(lambda: desk.store.set_edition_status(
                record.id, action.moves_to, actor=actor, cause=cause))  # type: ignore[arg-type]
            return RedirectResponse(desk.url(f"/editions/{record.id}?notice={action.name}"),
                                    status_code=303)
        return await _send(desk, request, lst, record, action, actor, cause)
    except EditionStateError as exc:
        return desk.pages.message(request, "Not possible now", str(exc), status=409,
                                  links=[("The edition", back)])


async def _send(desk: DeskState, request: Request, lst: ListSettings, record: EditionRecord,
                action: Action, actor: str, cause: str) -> Response:
    """Publish now (the answer says whether it could), then deliver in the background."""
    settings, store = desk.web.settings, desk.store
    lock = contextlib.ExitStack()
    try:
        lock.enter_context(pipeline.send_lock(settings, lst))
    except DigestError as exc:
        return desk.pages.message(request, "A send is running", str(exc), status=409,
                                  links=[("The edition", desk.url(f"/editions/{record.id}"))])
    try:
        await run_in_threadpool(pipeline.sync_subscriber_files, settings, lst, store)
        created = await run_in_threadpool(lambda: store.publish_edition(
            record.id, message_id_domain=settings.site.domain, now=datetime.now(UTC),
            actor=actor, cause=cause, force=action.force))
    except BaseException:
        lock.close()
        raise
    if not created:
        lock.close()
        return desk.pages.message(
            request, "Nobody to send to",
            f"List {lst.name} has no active subscribers, so nothing was sent and edition "
            f"{record.id} stays {record.status}.", status=409,
            links=[("The edition", desk.url(f"/editions/{record.id}"))])
    log.info("desk %s of edition %d by %s: %d ledger rows", action.name, record.id, actor,
             created)
    published = await run_in_threadpool(store.get_edition, record.id)
    task = asyncio.create_task(_deliver(desk, lst, published, actor, action.force, lock))
    desk.sends.add(task)
    task.add_done_callback(desk.sends.discard)
    return RedirectResponse(desk.url(f"/editions/{record.id}/report"), status_code=303)


async def _deliver(desk: DeskState, lst: ListSettings, record: EditionRecord, actor: str,
                   force: bool, lock: contextlib.ExitStack) -> None:
    """``send``'s delivery of a published edition, in the server's background."""
    try:
        outcome = await pipeline.deliver_record(desk.web.settings, lst, desk.store, record,
                                                actor=actor, force=force)
        log.info("desk send of edition %d: %s", record.id, outcome.status)
    except Exception as exc:  # logged; the ledger keeps what is left for the next pass
        log.error("desk send of edition %d stopped: %s: %s", record.id, type(exc).__name__,
                  exc)
    finally:
        lock.close()


async def build_draft(request: Request) -> Response:
    """POST ``/desk/lists/{list}/draft``: today's draft of the list (``draft --list L``);
    with ``force=yes`` (the "Build it anyway" button of a page that said why nothing was
    built) ``draft --list L --force``, which never replaces an edition already stored."""
    desk = desk_of(request)
    who = signed_in(request)
    lst = desk.web.configured(request.path_params["list"])
    if lst is None:
        return desk.pages.message(request, "No such list", "The configuration has no such "
                                  "list.", status=404, links=[("Overview", desk.url("/"))])
    form = await request.form(max_files=0, max_fields=5, max_part_size=256)
    force = form.get("force") == "yes"
    if force:  # only ever builds where nothing live is stored: never supersedes from here
        today = datetime.now(UTC).astimezone(lst.timezone).date()
        stored = await run_in_threadpool(desk.store.find_edition, lst.name, today)
        if stored is not None and stored.status not in ("cancelled", "missed"):
            return RedirectResponse(desk.url(f"/editions/{stored.id}?notice=already-stored"),
                                    status_code=303)
    try:
        drafted = await pipeline.draft_edition(desk.web.settings, lst, desk.store, as_of=None,
                                               source_override=None, force=force,
                                               editor=who.editor.name,
                                               cause="built on the desk"
                                               + (" anyway (forced)" if force else ""))
    except EmptyEditionError as exc:
        # As the edition page lists them: the source's last path segment, never a folder.
        skipped = [f"{source.rsplit('/', 1)[-1]}{f':{line}' if line else ''}: {reason}"
                   for source, line, reason in exc.skipped[:_SHOWN_WARNINGS]]
        if len(exc.skipped) > _SHOWN_WARNINGS:
            skipped.append(f"… and {len(exc.skipped) - _SHOWN_WARNINGS} more.")
        return desk.pages.message(
            request, "No draft was built", exc.why, *skipped, status=409,
            links=[("Overview", desk.url("/"))],
            button=(("Build it anyway", desk.url(f"/lists/{lst.name}/draft"),
                     {"force": "yes"}) if exc.forceable and not force else None))
    except SourceError as exc:
        return desk.pages.message(request, "No draft was built", str(exc), status=409,
                                  links=[("Overview", desk.url("/"))])
    notice = "drafted" if drafted.created else "already-stored"
    return RedirectResponse(desk.url(f"/editions/{drafted.record.id}?notice={notice}"),
                            status_code=303)
