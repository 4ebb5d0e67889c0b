"""Publishing an edition (ledger rows and the move to "sending" in one transaction), and
recording "sent" once every ledger row ended; reports over an edition's ledger rows."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import EditionStateError, StoreError

from .engine import guarded
from .lifecycle import PENDING, LifecycleMixin, _Logged, _utc
from .schema import (
    ACTIVE,
    NON_TERMINAL,
    deliveries,
    editions,
    lists,
    memberships,
    subscribers,
    suppressions,
)

__all__ = ["PublishingMixin"]


class PublishingMixin(LifecycleMixin):
    """Store methods that publish editions and follow their ledger to the end."""

    def _random_token(self) -> sa.ColumnElement[str]:
        if self.is_sqlite:
            return sa.func.lower(sa.func.hex(sa.func.randomblob(6)))
        return sa.func.substr(sa.func.md5(sa.cast(sa.func.random(), sa.String)), 1, 12)

    @guarded
    def publish_edition(self, edition_id: int, *, message_id_domain: str, now: datetime,
                        actor: str = "send command", cause: str | None = None,
                        force: bool = False) -> int:
        """Publish the edition: in one transaction, one "queued" ledger row per active,
        unsuppressed member, and the move to "sending" with its event.

        Returns how many rows it created: 0 when the edition was published already, and 0
        with nothing changed when the list has no eligible recipient (the edition stays
        unpublished, so the day is not used up). At most one edition per list and date is
        published unless ``force`` (the editor's override, recorded in the event).

        :raises EditionStateError: the edition is cancelled; or held or missed, or another
            edition of that list and date went out, and not ``force``.
        :raises StoreError: there is no such edition.
        """
        now = _utc(now)
        with self.write() as conn:
            query = sa.select(editions.c.list_id, editions.c.date, editions.c.status,
                              editions.c.published_at).where(editions.c.id == edition_id)
            if not self.is_sqlite:
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise StoreError(f"The store has no edition {edition_id} to publish; "
                                 "record it first.")
            if row.published_at is not None:
                return 0
            if row.status == "cancelled" or (row.status not in PENDING and not force):
                raise _publish_refusal(edition_id, row.status)
            if not self.is_sqlite:  # serialise publishers of one list (SQLite: BEGIN IMMEDIATE)
                conn.execute(sa.select(lists.c.id).where(lists.c.id == row.list_id)
                             .with_for_update())
            other = conn.execute(sa.select(editions.c.id).where(
                editions.c.list_id == row.list_id, editions.c.date == row.date,
                editions.c.id != edition_id, editions.c.published_at.is_not(None),
            ).limit(1)).scalar()
            if other is not None and not force:
                raise EditionStateError(
                    f"Edition {other} of the same list and date ({row.date}) already went out; "
                    "only one edition a day is published unless you use --force.")
            created = self._insert_ledger_rows(conn, edition_id, row.list_id,
                                               message_id_domain, now)
            if not created:
                return 0
            conn.execute(editions.update().where(editions.c.id == edition_id).values(
                published_at=now, message_id_domain=message_id_domain, status="sending"))
            detail: dict[str, Any] = {"recipients": created}
            cause = cause or f"published to {created} recipient(s)"
            if force:  # the editor's override, in the words the history shows
                detail["forced"] = True
                cause += f"; forced by {actor} with --force (it was {row.status}" + (
                    f", and edition {other} of that date had gone out)" if other is not None
                    else ")")
            logged = self._add_event(conn, edition_id, row.status, "sending", actor=actor,
                                     cause=cause, detail=detail, now=now)
        self._log_events([logged])
        return created

    def _insert_ledger_rows(self, conn: Connection, edition_id: int, list_id: int,
                            domain: str, now: datetime) -> int:
        message_id = ("<e" + sa.literal(str(edition_id)) + ".s"
                      + sa.cast(memberships.c.subscriber_id, sa.String) + "."
                      + self._random_token() + "@" + sa.literal(domain) + ">")
        eligible = (
            sa.select(
                sa.literal(edition_id), memberships.c.subscriber_id, sa.literal("queued"),
                message_id, sa.literal(0), sa.literal(now, deliveries.c.created_at.type),
                sa.literal(now, deliveries.c.next_attempt_at.type))
            .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
            .outerjoin(suppressions, suppressions.c.email_key == subscribers.c.email_key)
            .where(memberships.c.list_id == list_id, memberships.c.status == ACTIVE,
                   suppressions.c.id.is_(None))
            .order_by(memberships.c.subscriber_id))
        return int(conn.execute(deliveries.insert().from_select(
            ["edition_id", "subscriber_id", "status", "message_id", "attempts",
             "created_at", "next_attempt_at"], eligible),
            execution_options={"preserve_rowcount": True}).rowcount)

    @guarded
    def settle_editions(self, list_name: str | None = None, *, actor: str,
                        now: datetime | None = None) -> list[int]:
        """Move every "sending" edition (of ``list_name``, or of every list) whose ledger
        rows have all ended to "sent", with an event carrying the counts; returns their ids.
        Cheap when there is nothing to do: delivery paths call it after each run."""
        now = _utc(now)
        open_rows = (sa.select(sa.literal(1)).where(
            deliveries.c.edition_id == editions.c.id,
            deliveries.c.status.in_(sorted(NON_TERMINAL))).exists())
        query = sa.select(editions.c.id).where(editions.c.status == "sending", ~open_rows)
        if list_name is not None:
            query = query.join(lists, lists.c.id == editions.c.list_id).where(
                lists.c.name == list_name)
        logged: list[_Logged] = []
        with self.write() as conn:
            for edition_id in conn.execute(query).scalars().all():
                moved = conn.execute(editions.update().where(
                    editions.c.id == edition_id, editions.c.status == "sending",
                ).values(status="sent")).rowcount
                if not moved:
                    continue
                counts = {s: int(n) for s, n in conn.execute(
                    sa.select(deliveries.c.status, sa.func.count())
                    .where(deliveries.c.edition_id == edition_id)
                    .group_by(deliveries.c.status))}
                last = conn.execute(sa.select(sa.func.max(deliveries.c.finished_at)).where(
                    deliveries.c.edition_id == edition_id)).scalar()
                detail: dict[str, Any] = {k: counts.get(k, 0) for k in
                                          ("sent", "failed", "expired", "skipped")}
                if counts.get("sent_unconfirmed"):  # delivered, shown apart
                    detail["sent_unconfirmed"] = counts["sent_unconfirmed"]
                if last is not None:
                    detail["finished_at"] = _utc(last).isoformat()
                cause = ", ".join(f"{detail[k]} {k}" for k in
                                  ("sent", "sent_unconfirmed", "failed", "expired", "skipped")
                                  if k in detail)
                logged.append(self._add_event(
                    conn, edition_id, "sending", "sent", actor=actor,
                    cause=f"every ledger row ended: {cause}", detail=detail, now=now))
        self._log_events(logged)
        return [e.edition_id for e in logged]

    @guarded
    def delivery_counts(self, edition_ids: Collection[int]) -> dict[int, dict[str, int]]:
        """Ledger rows per status for each edition id (missing ids: no rows)."""
        if not edition_ids:
            return {}
        query = (sa.select(deliveries.c.edition_id, deliveries.c.status, sa.func.count())
                 .where(deliveries.c.edition_id.in_(sorted(edition_ids)))
                 .group_by(deliveries.c.edition_id, deliveries.c.status))
        out: dict[int, dict[str, int]] = {}
        with self.read() as conn:
            for edition_id, status, n in conn.execute(query):
                out.setdefault(int(edition_id), {})[status] = int(n)
        return out


    @guarded
    def eligible_audience(self, list_name: str) -> list[tuple[frozenset[str] | None, int]]:
        """The section preferences of the list's eligible members now (active, not
        suppressed: whom an edition published now would go to), with how many have each;
        None stands for "every section". The shape of ``edition_audience``, which answers
        the same for a published edition's recipients."""
        query = (sa.select(memberships.c.sections)
                 .join(lists, lists.c.id == memberships.c.list_id)
                 .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
                 .where(lists.c.name == list_name, memberships.c.status == ACTIVE,
                        ~sa.select(suppressions.c.id)
                        .where(suppressions.c.email_key == subscribers.c.email_key).exists()))
        counts: dict[frozenset[str] | None, int] = {}
        with self.read() as conn:
            for (sections,) in conn.execute(query):
                key = frozenset(sections) if sections is not None else None
                counts[key] = counts.get(key, 0) + 1
        return sorted(counts.items(), key=lambda item: (item[0] is not None,
                                                        sorted(item[0] or ())))


def _publish_refusal(edition_id: int, status: str) -> EditionStateError:
    if status == "held":
        return EditionStateError(f"Edition {edition_id} is held; approve it (`editions approve "
                                 f"{edition_id}`) or send it anyway with --force.")
    if status == "missed":
        return EditionStateError(f"Edition {edition_id} missed its send window; send it anyway "
                                 "with --force, or draft another.")
    return EditionStateError(f"Edition {edition_id} was cancelled and is never sent; make "
                             "another with `draft` (or `send --force` builds a new one).")
