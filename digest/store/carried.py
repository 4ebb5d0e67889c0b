"""Carried stories: which stories of a sent edition its readers received, and the keys that keep
them from being sent again.

An edition's stories are stored with it (``edition_stories``) with their identity keys
(:mod:`digest.identity`); ``carried`` stays NULL until the edition is sent, then holds
whether its readers received the story (:func:`digest.edition.carried_stories` decides,
from the variants sent and what their size budget dropped). Only an edition that was
published and has at least one delivery that did not fail, expire or get skipped counts: a
draft, a held edition or one whose every message failed carried nothing. A published
edition whose stories were never decided (the process stopped between publishing and
recording) counts as having carried all of them, as the store did before it knew better.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.identity import guid_key, headline_key, link_key
from digest.models import CarriedStory, Edition, RepeatKeys

from .engine import Database, guarded
from .schema import deliveries, edition_stories, editions, lists, memberships

__all__ = ["CarriedMixin", "StoryRecord", "story_rows"]

#: Delivery states in which a reader did not get the edition.
_NOT_RECEIVED = ("failed", "expired", "skipped")
_CHUNK = 400  # keys per IN (...): far below every backend's limit on bound parameters
_K = TypeVar("_K", str, int)


@dataclass(frozen=True, slots=True)
class StoryRecord:
    """One story of a stored edition and what became of it.

    ``carried`` is None until the edition is sent; ``shown_in`` and ``dropped_from`` list
    variants as tuples of section names (see :class:`digest.models.CarriedStory`).
    """

    position: int
    story_id: str
    section: str
    headline: str
    carried: bool | None
    shown_in: tuple[tuple[str, ...], ...]
    dropped_from: tuple[tuple[str, ...], ...]


def story_rows(edition_id: int, edition: Edition) -> list[dict[str, Any]]:
    """The ``edition_stories`` rows of a newly recorded edition, lead first."""
    return [{
        "edition_id": edition_id, "position": i, "story_id": story.id, "url": story.url,
        "headline_key": headline_key(story.headline)[2:], "link_key": link_key(story.url),
        "guid_key": guid_key(story.id), "section": story.section,
        "headline": story.headline, "carried": None, "shown_in": None, "dropped_from": None,
    } for i, story in enumerate(edition.stories)]


def _chunks(keys: Collection[_K]) -> Iterator[list[_K]]:
    ordered = sorted(keys)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start:start + _CHUNK]


def _variants(value: Any) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(v) for v in value or ())


class CarriedMixin(Database):
    """Store methods for what editions carried."""

    @staticmethod
    def _received_editions(conn: Connection, list_name: str, ids: Collection[int],
                           since: date | None) -> set[int]:
        """Which of editions ``ids`` readers of ``list_name`` received (module docstring)."""
        delivered = (sa.select(sa.literal(1)).where(
            deliveries.c.edition_id == editions.c.id,
            deliveries.c.status.not_in(_NOT_RECEIVED)).exists())
        query = (sa.select(editions.c.id).join(lists, lists.c.id == editions.c.list_id)
                 .where(editions.c.id.in_(sorted(ids)), lists.c.name == list_name,
                        editions.c.published_at.is_not(None), delivered))
        if since is not None:
            query = query.where(editions.c.date >= since)
        return set(conn.execute(query).scalars())

    @guarded
    def carried_keys(self, list_name: str, keys: RepeatKeys, *, headlines_since: date,
                     including: Collection[int] = ()) -> RepeatKeys:
        """Which of ``keys`` stories that readers of ``list_name`` received had.

        Identity keys count whenever the edition went out; headline keys only for editions
        dated ``headlines_since`` or later (the list's ``repeat_window``). Rows are looked up
        by their (indexed) keys first and their editions checked after, so the cost follows
        the number of keys asked about rather than the length of the list's history.
        The editions ``including`` names count as received whatever their status (``build
        --next``: today's stored edition, as if it had gone out).
        """
        not_undone = sa.or_(edition_stories.c.carried.is_(True),
                            edition_stories.c.carried.is_(None))
        found_ids: set[str] = set()
        found_heads: set[str] = set()
        stripped = {k[2:]: k for k in keys.headlines}
        with self.read() as conn:
            hits: list[tuple[int, tuple[str, ...], date | None]] = []
            for chunk in _chunks(keys.identities):
                query = (sa.select(edition_stories.c.edition_id, edition_stories.c.link_key,
                                   edition_stories.c.guid_key)
                         .where(not_undone, sa.or_(edition_stories.c.link_key.in_(chunk),
                                                   edition_stories.c.guid_key.in_(chunk))))
                hits.extend((eid, tuple(k for k in (link, guid) if k in keys.identities), None)
                            for eid, link, guid in conn.execute(query))
            for chunk in _chunks(stripped):
                query = (sa.select(edition_stories.c.edition_id, edition_stories.c.headline_key)
                         .where(not_undone, edition_stories.c.headline_key.in_(chunk)))
                hits.extend((row.edition_id, (stripped[row.headline_key],), headlines_since)
                            for row in conn.execute(query))
            for since in {since for _, _, since in hits}:
                ids = {eid for eid, _, when in hits if when == since}
                received: set[int] = set()
                for some in _chunks(ids):
                    received |= self._received_editions(conn, list_name, some, since)
                received |= ids & set(including)
                for eid, found, when in hits:
                    if when == since and eid in received:
                        (found_ids if since is None else found_heads).update(found)
        return RepeatKeys(frozenset(found_ids), frozenset(found_heads))

    @guarded
    def edition_audience(self, edition_id: int) -> list[tuple[frozenset[str] | None, int]]:
        """The section preferences of the edition's recipients (its ledger rows), with how
        many recipients have each; None stands for "every section"."""
        sections = sa.cast(memberships.c.sections, sa.Text)
        query = (sa.select(sections, sa.func.count())
                 .select_from(deliveries)
                 .join(editions, editions.c.id == deliveries.c.edition_id)
                 .join(memberships, sa.and_(
                     memberships.c.list_id == editions.c.list_id,
                     memberships.c.subscriber_id == deliveries.c.subscriber_id))
                 .where(deliveries.c.edition_id == edition_id)
                 .group_by(sections))
        counts: Counter[frozenset[str] | None] = Counter()
        with self.read() as conn:
            for text, n in conn.execute(query):
                value = json.loads(text) if text is not None else None
                counts[frozenset(value) if isinstance(value, list) else None] += int(n)
        return sorted(counts.items(), key=lambda item: (item[0] is not None,
                                                        sorted(item[0] or ())))

    @guarded
    def record_carried(self, edition_id: int, stories: Sequence[CarriedStory]) -> bool:
        """Store which stories of a sent edition its readers received.

        Only stories not decided yet are written: the first decision, made when the
        edition was published, stands.

        :returns: True when this call decided anything.
        """
        if not stories:
            return False
        update = (edition_stories.update()
                  .where(edition_stories.c.edition_id == edition_id,
                         edition_stories.c.story_id == sa.bindparam("sid"),
                         edition_stories.c.carried.is_(None))
                  .values(carried=sa.bindparam("c", type_=sa.Boolean()),
                          shown_in=sa.bindparam("shown", type_=edition_stories.c.shown_in.type),
                          dropped_from=sa.bindparam("dropped",
                                                    type_=edition_stories.c.dropped_from.type)))
        params = [{"sid": s.story_id, "c": s.carried,
                   "shown": [list(v) for v in s.shown_in],
                   "dropped": [list(v) for v in s.dropped_from]} for s in stories]
        with self.write() as conn:
            undecided = conn.execute(sa.select(sa.func.count()).where(
                edition_stories.c.edition_id == edition_id,
                edition_stories.c.carried.is_(None))).scalar()
            if not undecided:
                return False
            conn.execute(update, params)
        return True

    @guarded
    def edition_story_records(self, edition_id: int) -> list[StoryRecord]:
        """The stories of edition ``edition_id`` in edition order, with what became of them."""
        query = (sa.select(edition_stories).where(edition_stories.c.edition_id == edition_id)
                 .order_by(edition_stories.c.position))
        with self.read() as conn:
            return [StoryRecord(position=row.position, story_id=row.story_id,
                                section=row.section, headline=row.headline,
                                carried=row.carried, shown_in=_variants(row.shown_in),
                                dropped_from=_variants(row.dropped_from))
                    for row in conn.execute(query)]
