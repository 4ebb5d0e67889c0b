"""Gathering sources and assembling an edition, and opening the store for a command."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest import sources
from digest.config import ListSettings, Settings
from digest.edition import assemble_edition, keys_to_check
from digest.errors import ConfigError, SourceError
from digest.models import Edition, RepeatKeys, SourceResult

if TYPE_CHECKING:
    from digest.store import Store


@dataclass(slots=True)
class BuildOutcome:
    """An assembled edition and the whole-source errors met on the way."""

    edition: Edition
    errors: list[str] = field(default_factory=list)


def parse_as_of(value: str | None, lst: ListSettings) -> datetime | None:
    """``--as-of``: an ISO date or datetime; without an offset it is read in the list's zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of {value!r} is not an ISO 8601 date or time; "
                          "write e.g. 2026-11-28T07:00 or 2026-11-28T07:00+01:00.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=lst.timezone)
    return moment


def section_map_for(lst: ListSettings) -> dict[str, str]:
    """Case-insensitive section names: the configured ones, then the list's explicit map."""
    mapping = {name.casefold(): name for name in lst.sections}
    mapping.update(lst.section_map)
    return mapping


async def gather(settings: Settings, lst: ListSettings, *, source_override: list[str] | None,
                 as_of: datetime | None) -> SourceResult:
    """Read the list's sources (or ``--source`` ones); unreadable ones become errors."""
    wanted = [_resolve_source(s) for s in source_override] if source_override else lst.sources
    if not wanted:
        raise ConfigError(f"List {lst.name} in {settings.path} has no sources; add "
                          "sources = [...] there or pass --source.")
    return await sources.gather_stories(
        wanted, as_of=as_of, section_map=section_map_for(lst), fetch=settings.fetch,
        site_url=settings.site.url,
    )


def _resolve_source(src: str) -> str:
    if "://" in src:  # a URL: the sources stage accepts http(s) and names anything else
        return src
    return str(Path(src).expanduser().resolve())


async def build_edition(settings: Settings, lst: ListSettings, *, store: Store | None,
                        source_override: list[str] | None = None, as_of: datetime | None = None,
                        force: bool = False, also_carried: Collection[int] = ()) -> BuildOutcome:
    """Gather the sources and assemble the edition, leaving out what earlier editions carried
    (published ones, and the stored editions ``also_carried`` names: ``--next``).

    The store is asked only about the gathered stories' keys: identities ever received,
    headlines of linkless stories received within the list's ``repeat_window``, counted
    back from ``as_of`` in the list's timezone (see :mod:`digest.edition`).

    :raises EmptyEditionError: nothing new (unless ``force``), or no stories at all.
    :raises SourceError: every source was unreadable (the message lists them).
    """
    result = await gather(settings, lst, source_override=source_override, as_of=as_of)
    if not result.stories and result.errors:
        if len(result.errors) == 1:
            raise SourceError(result.errors[0])
        raise SourceError(f"None of the {len(result.errors)} sources could be read: "
                          + " ".join(result.errors))
    now = as_of or datetime.now(UTC)
    carried = RepeatKeys()
    if store is not None and not force:
        carried = store.carried_keys(
            lst.name, keys_to_check(result.stories),
            headlines_since=(now - lst.repeat_window).astimezone(lst.timezone).date(),
            including=also_carried)
    edition = assemble_edition(
        result.stories,
        list_settings=lst,
        as_of=now,
        carried=carried,
        skipped=result.skipped,
        site_name=settings.site.name,
        force=force,
    )
    return BuildOutcome(edition=edition, errors=list(result.errors))


def worker_id() -> str:
    """This process's name in the ledger: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def open_store_for(settings: Settings) -> Iterator[Store]:
    """Open (and migrate) the configured store for the length of one command."""
    from digest.store import open_store

    settings.work_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url)
    try:
        yield store
    finally:
        store.close()
