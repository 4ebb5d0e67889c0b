"""The edition page: the email in desktop and phone frames (light and dark), its plaintext
part, the raw message, one reader's variant, its size against the clip budget, the CSS major
clients ignore, the sources' warnings, and test copies to any addresses."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from digest import pipeline
from digest.errors import DeliveryError, SubscriberNotFoundError
from digest.pipeline.proofs import GMAIL_CLIP, MAX_TEST_ADDRESSES, EditionProofs, send_proofs
from digest.slots import SendSchedule
from digest.store.subscribers import InvalidSubscriberError, normalise_address

from ..pages import mask_address
from ..rowids import parse_row_id
from .moves import actions_for
from .state import PROOF_CACHE_SIZE, DeskState, desk_of, signed_in

if TYPE_CHECKING:
    from digest.store import EditionRecord, Membership

__all__ = ["edition_eml", "edition_frame", "edition_page", "edition_text", "load_record",
           "proofs_for", "send_test", "variant_lookup"]

log = logging.getLogger("digest.web.desk")

_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_SPLIT = re.compile(r"[\s,;]+")
_NOTICES = {
    "test-sent": "The test copies went out; look for “[TEST]” in the subject.",
    "approve": "Approved: the scheduler sends it at its send time.",
    "hold": "Held: the scheduler will not send it until an editor approves it.",
    "cancel": "Cancelled: it will never be sent.",
    "drafted": "Today's draft is built and stored; nothing has been sent.",
    "already-stored": "Today's edition was already stored; here it is.",
}


async def load_record(desk: DeskState, request: Request) -> EditionRecord:
    """The edition the path's ``{id}`` names.

    :raises StoreError: there is none (the desk's handler answers 404).
    """
    return await run_in_threadpool(desk.store.get_edition, int(request.path_params["id"]))


def proofs_for(desk: DeskState, record: EditionRecord) -> EditionProofs | None:
    """The (cached) proofs of ``record``; None when its list is no longer configured or
    nothing was built for it."""
    lst = desk.web.configured(record.list_name)
    if lst is None or not record.has_stories:
        return None
    with desk.proofs_lock:
        found = desk.proofs.get(record.id)
        if found is not None:
            desk.proofs.move_to_end(record.id)
            return found  # type: ignore[no-any-return]
    made = EditionProofs(desk.web.settings, lst, record.edition())
    with desk.proofs_lock:
        desk.proofs[record.id] = made
        while len(desk.proofs) > PROOF_CACHE_SIZE:
            desk.proofs.popitem(last=False)
    return made


def _nothing_to_show(desk: DeskState, request: Request, record: EditionRecord) -> Response:
    why = ("nothing was built for it" if not record.has_stories else
           f"its list {record.list_name!r} is no longer configured")
    return desk.pages.message(request, "Nothing to show", f"Edition {record.id} cannot be "
                              f"shown: {why}.", status=404,
                              links=[("The edition", desk.url(f"/editions/{record.id}"))])


async def _member(desk: DeskState, request: Request, record: EditionRecord) -> Membership | None:
    """The reader named by ``?subscriber=ID`` (an id, never an address, in URLs)."""
    subscriber_id = parse_row_id(request.query_params.get("subscriber"))
    if subscriber_id is None:
        return None
    try:
        return await run_in_threadpool(desk.store.get_membership_by_id, subscriber_id,
                                       record.list_name)
    except SubscriberNotFoundError:
        return None


def _scheme(request: Request) -> str:
    return "dark" if request.query_params.get("scheme") == "dark" else "light"


def _links(desk: DeskState, record: EditionRecord, member: Membership | None,
           scheme: str) -> dict[str, str]:
    base = desk.url(f"/editions/{record.id}")
    who = f"&subscriber={member.subscriber_id}" if member else ""
    return {
        "page": base, "report": base + "/report",
        "desktop": f"{base}/frame?view=desktop&scheme={scheme}{who}",
        "phone": f"{base}/frame?view=phone&scheme={scheme}{who}",
        "light": f"{base}?scheme=light{who}", "dark": f"{base}?scheme=dark{who}",
        "eml": f"{base}/eml" + (f"?subscriber={member.subscriber_id}" if member else ""),
        "text": f"{base}/text" + (f"?subscriber={member.subscriber_id}" if member else ""),
        "generic": f"{base}?scheme={scheme}",
    }


async def edition_page(request: Request, *, status: int = 200, error: str | None = None,
                       addresses: str = "", lookup: str = "") -> Response:
    """``/desk/editions/{id}``: everything about one edition before (and after) it goes out."""
    desk = desk_of(request)
    record = await load_record(desk, request)
    if not record.has_stories:  # the placeholder of a day nothing was built for (missed)
        events = await run_in_threadpool(desk.store.edition_events, record.id)
        return desk.pages.render(request, "unbuilt.html", record=record, events=events,
                                 title=desk.web.list_title(record.list_name),
                                 zone=getattr(desk.web.configured(record.list_name),
                                              "timezone", None))
    proofs = proofs_for(desk, record)
    if proofs is None:
        return desk.pages.message(request, "This list is no longer configured",
                                  f"Edition {record.id} belongs to the list "
                                  f"{record.list_name!r}, which the configuration no longer "
                                  "has; add it back to preview the edition.", status=404)
    member = await _member(desk, request, record)
    scheme = _scheme(request)
    proof = await run_in_threadpool(proofs.proof, member)
    findings = await run_in_threadpool(proofs.findings, member)
    edition = proofs.edition
    notice = _NOTICES.get(request.query_params.get("notice", ""))
    store = desk.store

    def read() -> tuple[list[Any], list[tuple[tuple[str, ...], int]]]:
        events = store.edition_events(record.id)
        variants = pipeline.variant_audience(desk.web.settings, proofs.lst, store, record)
        return events, variants

    events, variants = await run_in_threadpool(read)
    slot = SendSchedule(proofs.lst).slot(record.date)
    # Warnings recorded when it was built (unreadable sources), then the render's own; the
    # size card lists what the budget left out, so those are not repeated.
    warnings = [w for e in events for w in (e.detail or {}).get("warnings", ())]
    warnings += [w for w in proof.warnings if not (proof.dropped and w.startswith("Dropped "))]
    context: dict[str, Any] = {
        "record": record, "edition": edition, "lst": proofs.lst, "proof": proof,
        "member": member, "masked": mask_address(member.email) if member else None,
        "scheme": scheme, "links": _links(desk, record, member, scheme),
        "findings": findings, "clip": GMAIL_CLIP, "skipped": edition.skipped,
        "notice": notice, "error": error, "addresses": addresses, "lookup": lookup,
        "max_tests": MAX_TEST_ADDRESSES, "nav": "editions",
        "published": record.published_at is not None,
        "warnings": list(dict.fromkeys(warnings)), "events": events, "variants": variants,
        "slot": slot, "zone": proofs.lst.timezone,
        "actions": [(a, desk.url(f"/editions/{record.id}/confirm/{a.name}"))
                    for a in actions_for(record, proofs.lst)],
    }
    return desk.pages.render(request, "edition.html", status=status, **context)


def _themed(html: str, scheme: str) -> str:
    """The email with its dark-mode rules forced on (dark) or off (light), whatever the
    editor's own setting, and links opening outside the frame."""
    html = _DARK_QUERY.sub("@media all" if scheme == "dark" else "@media not all", html)
    return _HEAD.sub(lambda m: m.group(0) + '<base target="_blank">', html, count=1)


async def edition_frame(request: Request) -> Response:
    """``/desk/editions/{id}/frame``: the email alone, for a sandboxed iframe."""
    desk = desk_of(request)
    record = await load_record(desk, request)
    proofs = proofs_for(desk, record)
    if proofs is None:
        return HTMLResponse("<p>There is nothing to show for this edition.</p>", status_code=404)
    member = await _member(desk, request, record)
    proof = await run_in_threadpool(proofs.proof, member)
    return HTMLResponse(_themed(proof.html, _scheme(request)))


async def edition_text(request: Request) -> Response:
    """``/desk/editions/{id}/text``: the plaintext part as text."""
    desk = desk_of(request)
    record = await load_record(desk, request)
    proofs = proofs_for(desk, record)
    if proofs is None:
        return _nothing_to_show(desk, request, record)
    member = await _member(desk, request, record)
    proof = await run_in_threadpool(proofs.proof, member)
    return Response(proof.text, media_type="text/plain; charset=utf-8")


async def edition_eml(request: Request) -> Response:
    """``/desk/editions/{id}/eml``: the whole message, as a download."""
    desk = desk_of(request)
    record = await load_record(desk, request)
    proofs = proofs_for(desk, record)
    if proofs is None:
        return _nothing_to_show(desk, request, record)
    member = await _member(desk, request, record)
    data = await run_in_threadpool(proofs.eml, member)
    name = f"{record.list_name}-{record.date.isoformat()}-edition-{record.id}"
    if member is not None:
        name += f"-subscriber-{member.subscriber_id}"
    return Response(data, media_type="message/rfc822",
                    headers={"Content-Disposition": f'attachment; filename="{name}.eml"'})


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=20, max_part_size=16_384)
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def variant_lookup(request: Request) -> Response:
    """POST ``address``: show the variant that reader gets (the URL then names their id)."""
    desk = desk_of(request)
    record = await load_record(desk, request)
    address = (await _form(request)).get("address", "").strip()[:320]
    member = await run_in_threadpool(desk.store.get_membership, record.list_name, address) \
        if address else None
    if member is None:
        return await edition_page(request, status=400, lookup=address,
                                  error=f"No reader of {record.list_name} has that address; "
                                        "check the spelling.")
    scheme = _scheme(request)
    return RedirectResponse(desk.url(f"/editions/{record.id}?scheme={scheme}"
                                     f"&subscriber={member.subscriber_id}"), status_code=303)


def _addresses(raw: str, allow_smtputf8: bool) -> list[str]:
    """The addresses in ``raw`` (commas, semicolons, spaces or lines between them).

    :raises InvalidSubscriberError: naming the first address that is not valid, or too many.
    """
    found: list[str] = []
    for part in _SPLIT.split(raw.strip()):
        if not part:
            continue
        address, _ = normalise_address(part, allow_smtputf8=allow_smtputf8)
        if address not in found:
            found.append(address)
    if not found:
        raise InvalidSubscriberError("Type at least one address to send the test to.")
    if len(found) > MAX_TEST_ADDRESSES:
        raise InvalidSubscriberError(f"A test goes to at most {MAX_TEST_ADDRESSES} addresses "
                                     f"at once; {len(found)} were given.")
    return found


async def send_test(request: Request) -> Response:
    """POST ``addresses``: send a "[TEST]" copy of this edition to each (not the ledger)."""
    desk = desk_of(request)
    who = signed_in(request)
    record = await load_record(desk, request)
    raw = (await _form(request)).get("addresses", "")[:4000]
    proofs = proofs_for(desk, record)
    if proofs is None:
        return _nothing_to_show(desk, request, record)
    try:
        addresses = _addresses(raw, desk.web.settings.allow_smtputf8)
    except InvalidSubscriberError as exc:
        return await edition_page(request, status=400, error=str(exc), addresses=raw)
    try:
        report = await send_proofs(desk.web.settings, proofs.lst, proofs.edition, addresses)
    except DeliveryError as exc:
        return await edition_page(request, status=503, addresses=raw,
                                  error=f"The test could not be sent: {exc}")
    sent, failed = report.sent, report.failed
    log.info("desk test of edition %d by editor:%s: %d sent, %d refused", record.id,
             who.editor.name, sent, failed)
    await run_in_threadpool(lambda: desk.store.note_edition(
        record.id, actor=f"editor:{who.editor.name}",
        cause=f"test sent to {sent} address(es) from the desk",
        detail={"test": {"sent": sent, "refused": failed}}))
    if failed:
        reasons = "; ".join(sorted(report.reasons.get("failed", {})))
        return await edition_page(request, status=502, addresses=raw,
                                  error=f"{sent} test(s) went out; the relay refused {failed} "
                                        f"({reasons}).")
    return RedirectResponse(desk.url(f"/editions/{record.id}?notice=test-sent"),
                            status_code=303)

