"""Telling a list's editors about an edition (review, held, missed), and the signed link to a
draft's preview that those mails carry (served by ``serve`` under ``/drafts/``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from digest import tokens
from digest.config import ListSettings, Settings
from digest.errors import DeliveryError
from digest.mail.notice import EditorNotice, notice_message
from digest.pipeline.messages import dkim_sign_if_configured, new_message_id
from digest.pipeline.send import send_single_message
from digest.slots import Slot

if TYPE_CHECKING:
    from digest.store import EditionRecord, Store

__all__ = ["DRAFT_PREVIEW", "DRAFT_PREVIEW_MAX_AGE", "draft_preview_url", "notify_editors",
           "read_draft_token", "was_notified"]

log = logging.getLogger("digest.editions")

#: itsdangerous salt of draft preview links: they sign (edition id, list name).
DRAFT_PREVIEW = "digest.draft-preview"
DRAFT_PREVIEW_MAX_AGE = timedelta(days=7)


def draft_preview_url(settings: Settings, record: EditionRecord) -> str:
    """The signed ``/drafts/<token>`` URL showing the stored edition as a reader with every
    section gets it (valid for :data:`DRAFT_PREVIEW_MAX_AGE`)."""
    token = tokens.make_token(settings.web.secret_keys, DRAFT_PREVIEW, record.id,
                              record.list_name)
    return f"{settings.web.base_url}/drafts/{token}"


def read_draft_token(settings: Settings, token: str) -> tuple[int, str]:
    """``(edition id, list name)`` of a draft preview token.

    :raises InvalidTokenError: forged, altered or older than :data:`DRAFT_PREVIEW_MAX_AGE`.
    """
    return tokens.read_token(settings.web.secret_keys, DRAFT_PREVIEW, token,
                             max_age=DRAFT_PREVIEW_MAX_AGE)


def _local(moment: datetime, lst: ListSettings, day: object) -> str:
    local = moment.astimezone(lst.timezone)
    shown = f"{local:%H:%M}" if local.date() == day else f"{local:%Y-%m-%d %H:%M}"
    return f"{shown} {lst.timezone}"


def was_notified(store: Store, edition_id: int, kind: str) -> bool:
    """True when a ``kind`` notice about the edition went out (an event records it)."""
    return any((e.detail or {}).get("notice") == kind for e in store.edition_events(edition_id))


def _warnings(store: Store, record: EditionRecord) -> list[str]:
    found: list[str] = []
    for event in store.edition_events(record.id):
        found += [w for w in (event.detail or {}).get("warnings", ()) if w not in found]
    skipped = record.edition().skipped if record.has_stories else ()
    if skipped:
        found.append(f"{len(skipped)} item(s) skipped in the sources, e.g. {skipped[0].source}"
                     f"{f':{skipped[0].line}' if skipped[0].line else ''}: "
                     f"{skipped[0].reason}")
    return found


async def notify_editors(settings: Settings, lst: ListSettings, store: Store, *, kind: str,
                         slot: Slot, record: EditionRecord | None, reason: str | None = None,
                         extra_warnings: Sequence[str] = ()) -> int:
    """Mail a ``kind`` notice ("review", "held", "missed") to each of ``lst.review_to`` and
    record it as an event of the edition; returns how many the relay accepted (0 when the
    list has no ``review_to``).

    :raises DeliveryError: when the relay cannot be used (the caller tries again later).
    """
    if not lst.review_to:
        return 0
    counts: dict[str, int] = {}
    warnings = list(extra_warnings)
    if record is not None and record.has_stories:
        edition = record.edition()
        # Whom publishing now would create ledger rows for (active, not suppressed), as
        # ``send`` counts them (the scheduler imports the subscriber files first).
        recipients = sum(n for _, n in store.eligible_audience(lst.name))
        counts = {"stories": len(edition.stories), "sections": len(edition.sections),
                  "recipients": recipients}
        known = _warnings(store, record)
        warnings = known + [w for w in extra_warnings if w not in known]
    notice = EditorNotice(
        kind=kind, list_name=lst.name, list_title=lst.title,
        edition_id=record.id if record is not None else None, day=slot.day.isoformat(),
        subject=record.subject if record is not None else "",
        due=_local(slot.due, lst, slot.day), closes=_local(slot.closes, lst, slot.day),
        counts=counts, warnings=tuple(warnings), reason=reason,
        preview_url=(draft_preview_url(settings, record)
                     if record is not None and record.has_stories else None),
        desk_url=(f"{settings.web.base_url}/desk/editions/{record.id}"
                  if record is not None else None))
    accepted = 0
    for editor in lst.review_to:
        data = notice_message(notice, from_header=lst.from_header, to=editor,
                              message_id=new_message_id(settings, f"{kind}-notice"),
                              date=datetime.now(UTC))
        message = (lst.from_email, editor, dkim_sign_if_configured(settings, data))
        if await send_single_message(settings, lst, message):
            accepted += 1
        else:
            log.warning("the relay refused a %s notice for list %s (one editor address)",
                        kind, lst.name)
    if accepted == 0:
        raise DeliveryError(f"The relay refused every {kind} notice for list {lst.name}; "
                            "check review_to.")
    if record is not None:
        store.note_edition(record.id, actor="scheduler",
                           cause=f"{kind} notice mailed to {accepted} editor(s)",
                           detail={"notice": kind, "recipients": accepted})
    return accepted
