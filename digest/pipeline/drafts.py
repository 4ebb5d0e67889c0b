"""Editions for editors: drafting one, showing today's stored edition or the next one, and
what each variant of an edition goes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.config import ListSettings, Settings
from digest.errors import EditionStateError
from digest.models import Edition
from digest.pipeline.build import build_edition
from digest.pipeline.send import stored_edition
from digest.slots import SendSchedule

if TYPE_CHECKING:
    from digest.store import EditionRecord, Store

__all__ = ["Drafted", "Shown", "approve_edition", "draft_edition", "edition_to_show",
           "variant_audience"]

_LIVE_UNPUBLISHED = ("draft", "approved", "held")


@dataclass(slots=True)
class Shown:
    """The edition ``build`` or ``preview`` shows, and where it came from: ``record`` is the
    stored edition shown (None for a fresh build); ``note`` says which one it is."""

    edition: Edition
    record: EditionRecord | None = None
    note: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Drafted:
    """What ``draft`` did: ``created`` is False when today's edition was already stored."""

    record: EditionRecord
    created: bool
    errors: list[str] = field(default_factory=list)


def _today(lst: ListSettings, as_of: datetime | None) -> datetime:
    return (as_of or datetime.now(UTC)).astimezone(lst.timezone)


async def edition_to_show(settings: Settings, lst: ListSettings, store: Store, *,
                          as_of: datetime | None, source_override: list[str] | None,
                          force: bool, next_edition: bool) -> Shown:
    """Today's stored edition (the one that went out, or the draft that will), else a fresh
    build; with ``next_edition`` the one after it: built now as if today's had gone out,
    dated the list's next scheduled day. ``--source`` and ``--force`` always build fresh.

    :raises EmptyEditionError: a fresh build has nothing new (unless ``force``).
    :raises SourceError: every source was unreadable.
    """
    now = _today(lst, as_of)
    if source_override or force:
        built = await build_edition(settings, lst, store=store, source_override=source_override,
                                    as_of=as_of, force=force)
        return Shown(built.edition, errors=built.errors)
    stored = stored_edition(store, lst, now.date())
    if not next_edition:
        if stored is not None:
            return Shown(stored.edition(), stored,
                         f"Showing the {lst.name} edition of {stored.date} stored as edition "
                         f"{stored.id} ({stored.status}); --next shows the next one.")
        built = await build_edition(settings, lst, store=store, as_of=as_of)
        return Shown(built.edition, errors=built.errors)
    # The next edition: the first scheduled day from today on without a stored edition.
    carried: list[int] = []
    target = None
    for slot in SendSchedule(lst).slots_around(now):
        if slot.day < now.date():
            continue
        found = store.find_edition(lst.name, slot.day)
        if found is not None and (found.published or found.status in _LIVE_UNPUBLISHED):
            carried.append(found.id)
            continue
        target = slot
        break
    if target is None:  # pragma: no cover - a list always has a free day within nine
        raise AssertionError("no free day for the next edition")
    when = as_of if target.day == now.date() else target.due  # the edition's date
    built = await build_edition(settings, lst, store=store, as_of=when, also_carried=carried)
    due = target.due.astimezone(lst.timezone)
    return Shown(built.edition, None,
                 f"Showing the next {lst.name} edition, for {target.day} (due {due:%H:%M} "
                 f"{lst.timezone}), as it would be built now; nothing is stored.", built.errors)


async def draft_edition(settings: Settings, lst: ListSettings, store: Store, *,
                        as_of: datetime | None, source_override: list[str] | None,
                        force: bool, editor: str, cause: str | None = None) -> Drafted:
    """Build and store today's draft without publishing it (``draft``), recorded as made by
    ``editor:<editor>`` with ``cause`` (default: the command). Today's live stored edition is
    returned as it is, unless ``force``, which stores a new draft (superseding an unpublished
    one; a published one stays).

    :raises EmptyEditionError: nothing new (unless ``force``).
    :raises SourceError: every source was unreadable.
    """
    now = _today(lst, as_of)
    existing = store.find_edition(lst.name, now.date())
    if existing is not None and existing.status not in ("cancelled", "missed") and not force:
        return Drafted(existing, created=False)
    built = await build_edition(settings, lst, store=store, source_override=source_override,
                                as_of=as_of, force=force)
    record = store.record_edition(
        built.edition, forced=force, actor=f"editor:{editor}",
        cause=cause or ("drafted with `draft`" + (" --force" if force else "")),
        detail={"warnings": built.errors} if built.errors else None)
    return Drafted(record, created=True, errors=built.errors)


def variant_audience(settings: Settings, lst: ListSettings, store: Store,
                     record: EditionRecord) -> list[tuple[tuple[str, ...], int]]:
    """Each variant of the edition (the sections it shows, in edition order) and how many
    readers get it: the ledger's recipients once published, the eligible members before."""
    from digest.pipeline.messages import MessageFactory

    edition = record.edition()
    renderer = MessageFactory(settings, lst, edition).renderer
    order = {name: i for i, name in enumerate(edition.section_names)}
    audience = (store.edition_audience(record.id) if record.published
                else store.eligible_audience(lst.name))
    counts: dict[tuple[str, ...], int] = {}
    for chosen, n in audience:
        sections = renderer.effective_sections(edition, chosen)
        key = tuple(sorted(sections, key=order.__getitem__))
        counts[key] = counts.get(key, 0) + n
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def approve_edition(settings: Settings, store: Store, edition_id: int, *, actor: str,
                    cause: str, now: datetime | None = None) -> bool:
    """Approve a draft or release a held edition (``editions approve``, the desk's approve),
    so the scheduler publishes it within its send window; False when it was approved already.

    The scheduler publishes an approved edition only until its send window ends (issue 10:
    an edition not approved by then is missed). An approval that comes later therefore does
    not approve: the edition is recorded ``missed`` (by ``actor``, saying so) and the editor
    is told to use ``send --force``, the explicit override, to send it anyway.

    :raises EditionStateError: the send window has ended (the edition is now missed), or
        the edition cannot be approved from its status (the message says why).
    :raises StoreError: there is no such edition.
    """
    record = store.get_edition(edition_id)
    lst = settings.lists.get(record.list_name)
    now = now or datetime.now(UTC)
    if lst is not None and record.status in _LIVE_UNPUBLISHED:
        closes = SendSchedule(lst).slot(record.date).closes
        if now >= closes:
            ended = closes.astimezone(lst.timezone)
            store.set_edition_status(
                edition_id, "missed", actor=actor,
                cause=f"approval came after its send window ended at {ended:%Y-%m-%d %H:%M} "
                      f"{lst.timezone}, so it was not approved or published",
                now=now)
            today = now.astimezone(lst.timezone).date() == record.date
            how = f"send --list {lst.name}" + ("" if today else f" --as-of {record.date}")
            raise EditionStateError(
                f"Edition {edition_id} of {lst.name} for {record.date} is missed, not approved: "
                f"its send window ended at {ended:%Y-%m-%d %H:%M} {lst.timezone}, so the "
                f"scheduler will not publish it; send it anyway with `{how} --force`.")
    return store.set_edition_status(edition_id, "approved", actor=actor, cause=cause, now=now)
