"""After an edition is published: which stories its readers received, and what the size budget
dropped from which variant (reported by ``send`` and kept in the edition's stored record)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from digest.edition import carried_stories
from digest.models import Edition
from digest.pipeline.messages import MessageFactory
from digest.render import RenderedVariant, variant_label

if TYPE_CHECKING:
    from digest.store import Store

__all__ = ["drop_warnings", "record_carried", "variants_for"]


def variants_for(factory: MessageFactory, audience: Iterable[tuple[frozenset[str] | None, int]]
                 ) -> list[tuple[RenderedVariant, int]]:
    """The distinct variants an audience gets (rendered once each, as for sending) with how
    many readers get each; preferences that show the same sections share a variant."""
    counts: Counter[frozenset[str]] = Counter()
    variants: dict[frozenset[str], RenderedVariant] = {}
    for sections, readers in audience:
        variant = factory.variant(sections)
        variants[variant.sections] = variant
        counts[variant.sections] += readers
    return [(variants[key], counts[key]) for key in variants]


def drop_warnings(edition: Edition, variants: list[tuple[RenderedVariant, int]], *,
                  budget_kb: int, readers: str = "reader(s)") -> list[str]:
    """One sentence per variant whose size budget dropped teasers: which ones, for how many
    readers, and that they stay eligible for the next edition."""
    lines = []
    for variant, count in variants:
        if not variant.dropped:
            continue
        dropped = "; ".join(f"{d.section}: {d.headline}" for d in variant.dropped)
        lines.append(f"The {budget_kb} KB size budget dropped {len(variant.dropped)} "
                     f"teaser(s) from the {variant_label(edition, variant.sections)} variant "
                     f"({count} {readers}): {dropped}. They were not sent to these readers "
                     "and stay eligible for the next edition.")
    return lines


def record_carried(store: Store, edition_id: int, edition: Edition,
                   factory: MessageFactory) -> list[str]:
    """Decide and store which stories of the published edition ``edition_id`` its readers
    receive (:func:`digest.edition.carried_stories`, from the variants its recipients get).

    The first decision stands (a resumed send does not change it).

    :returns: the drop warnings when this call decided, else an empty list.
    """
    variants = variants_for(factory, store.edition_audience(edition_id))
    decided = carried_stories(edition, {
        variant.sections: frozenset(d.story_id for d in variant.dropped)
        for variant, _ in variants})
    if not store.record_carried(edition_id, decided):
        return []
    return drop_warnings(edition, variants, budget_kb=factory.renderer.budget // 1024)
