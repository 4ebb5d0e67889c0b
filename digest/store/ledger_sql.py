"""The ledger's SQL, built once: Core statements for every backend, and the SQLite fast path
that runs the same statements, compiled once, as single steps on the DBAPI cursor."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .schema import deliveries, editions, memberships, subscribers, suppressions

__all__ = ["SENT_ROW", "SQLiteLedger", "claim_update", "clip", "due_query"]

_MAX_TEXT = 1000


def clip(text: str | None) -> str | None:
    return None if text is None else text[:_MAX_TEXT]


_STAMP = deliveries.c.finished_at.type
#: A 250 is final: "sent" also ends a row that went back to "queued" meanwhile (its lease ran
#: out while the mark waited, and another worker deferred it), so it is not sent again.
_SENDABLE = sa.or_(deliveries.c.status == "sending", deliveries.c.status == "queued")
SENT_ROW = deliveries.update().where(
    deliveries.c.id == sa.bindparam("b_id"), _SENDABLE,
).values(status="sent", reason=None, response=sa.bindparam("b_response"),
         finished_at=sa.bindparam("b_now", type_=_STAMP),
         attempts=deliveries.c.attempts + 1, claimed_by=None, lease_until=None)
_TAKEN: dict[str, Any] = {
    "status": "sending", "claimed_by": sa.bindparam("b_worker"),
    "lease_until": sa.bindparam("b_lease", type_=_STAMP),
    "last_attempt_at": sa.bindparam("b_now", type_=_STAMP),
    "first_attempt_at": sa.func.coalesce(deliveries.c.first_attempt_at,
                                         sa.bindparam("b_now", type_=_STAMP)),
}
_VALUES: dict[str, dict[str, Any]] = {
    "skip": {"status": "skipped", "reason": sa.bindparam("b_reason"),
             "finished_at": sa.bindparam("b_now", type_=_STAMP), "claimed_by": None,
             "lease_until": None},
    "fresh": _TAKEN,
    "lost": {**_TAKEN, "attempts": deliveries.c.attempts + 1,
             "last_error": "the lease ran out before a result was recorded"},
}


def _in_ids(n: int) -> list[sa.BindParameter[int]]:
    return [sa.bindparam(f"i{k}") for k in range(n)]


@functools.cache
def claim_update(kind: str, n: int | None = None) -> sa.Update:
    """The update ``_take`` runs for ``kind`` ("skip", "fresh", "lost"): for the id list
    ``b_ids``, or with ``n`` for the ids ``i0`` … ``i{n-1}`` (no expanding parameter)."""
    ids = _in_ids(n) if n is not None else sa.bindparam("b_ids", expanding=True)
    return deliveries.update().where(deliveries.c.id.in_(ids)).values(_VALUES[kind])


@functools.cache
def due_query(lost: bool, sqlite: bool) -> sa.Select[Any]:
    """Up to ``b_limit`` claimable rows of edition ``b_edition`` at ``b_now``, with what a
    claim needs (columns in the order ``_take`` reads them); ``lost``: "sending" rows whose
    lease ran out, else due "queued" rows."""
    d = deliveries
    now = sa.bindparam("b_now", type_=_STAMP)
    if lost:
        due = sa.and_(d.c.status == "sending", d.c.lease_until <= now)
        order: tuple[Any, ...] = (d.c.id,)
    else:
        # Walks ix_deliveries_edition_id_status_next_attempt_at_id in order: no sort,
        # and rows already sent are never scanned again.
        due = sa.and_(d.c.status == "queued", d.c.next_attempt_at <= now)
        order = (d.c.next_attempt_at, d.c.id)
    query = (
        sa.select(d.c.id, d.c.subscriber_id, d.c.status, d.c.attempts,
                  d.c.first_attempt_at, d.c.message_id, subscribers.c.email,
                  subscribers.c.name, subscribers.c.attributes,
                  memberships.c.status.label("member_status"), memberships.c.sections,
                  suppressions.c.reason.label("suppressed"))
        .select_from(d)
        .join(editions, editions.c.id == d.c.edition_id)
        .join(subscribers, subscribers.c.id == d.c.subscriber_id)
        .outerjoin(memberships, sa.and_(memberships.c.list_id == editions.c.list_id,
                                        memberships.c.subscriber_id == d.c.subscriber_id))
        .outerjoin(suppressions, suppressions.c.email_key == subscribers.c.email_key)
        .where(d.c.edition_id == sa.bindparam("b_edition"), due)
        .order_by(*order).limit(sa.bindparam("b_limit", type_=sa.Integer)))
    if not sqlite:
        query = query.with_for_update(of=d, skip_locked=True)
    return query


class _Prepared:
    """A Core statement compiled once for SQLite and run on the DBAPI cursor.

    SQLAlchemy's per-execution work (checkout, events, parameter and result processing)
    costs several times what SQLite spends on these short statements, and it holds the GIL
    the delivery event loop needs. Values passed in must already be in their SQLite form.
    """

    __slots__ = ("fixed", "names", "sql")

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
        self.fixed = dict(compiled.params)

    def args(self, values: dict[str, Any]) -> tuple[Any, ...]:
        merged = self.fixed | values
        return tuple(merged[name] for name in self.names)


def _sent_rows(n: int) -> sa.Update:
    """``SENT_ROW`` for n rows in one statement: ids ``i0..``, responses ``r0..``."""
    ids = _in_ids(n)
    response = sa.case({ids[k]: sa.bindparam(f"r{k}") for k in range(n)},
                       value=deliveries.c.id)
    return deliveries.update().where(
        deliveries.c.id.in_(ids), _SENDABLE,
    ).values(status="sent", reason=None, response=response,
             finished_at=sa.bindparam("b_now", type_=_STAMP),
             attempts=deliveries.c.attempts + 1, claimed_by=None, lease_until=None)


def _packed(query: sa.Select[Any]) -> sa.Select[Any]:
    """``query``'s rows as one JSON array of arrays (JSON columns nested, not quoted)."""
    sub = query.subquery()
    cols = [sa.func.json(c) if isinstance(c.type, sa.JSON) else c for c in sub.c]
    return sa.select(sa.func.json_group_array(sa.func.json_array(*cols)))


class SQLiteLedger:
    """The claim and mark statements of one SQLite engine, compiled once each.

    Every statement is a single step where it can be (the claim query comes back as one
    JSON value, updates take id lists) because pysqlite releases and retakes the GIL around
    each step, and every retake can wait for the busy delivery event loop.
    """

    #: Most rows one statement handles: the "sent" update binds three parameters a row,
    #: and SQLite before 3.32 allows 999 in a statement.
    CHUNK = 300

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.due = {lost: _Prepared(_packed(due_query(lost, True)), dialect)
                    for lost in (True, False)}
        self.stamp: Any = _STAMP.dialect_impl(dialect).bind_processor(dialect)
        self.first: Any = _STAMP.dialect_impl(dialect).result_processor(dialect, None)
        self._cache: dict[tuple[str, int], _Prepared] = {}

    def _get(self, kind: str, n: int) -> _Prepared:
        stmt = self._cache.get((kind, n))
        if stmt is None:
            core = _sent_rows(n) if kind == "sent" else claim_update(kind, n)
            stmt = self._cache[(kind, n)] = _Prepared(core, self.dialect)
        return stmt

    def claim_rows(self, cur: Any, lost: bool, edition_id: int, now: str,
                   limit: int) -> list[tuple[Any, ...]]:
        """Due rows as ``due_query`` selects them, timestamps decoded."""
        query = self.due[lost]
        (packed,) = cur.execute(query.sql, query.args(
            {"b_edition": edition_id, "b_now": now, "b_limit": limit})).fetchone()
        return [(*r[:4], self.first(r[4]), *r[5:]) for r in json.loads(packed)]

    def update(self, cur: Any, kind: str, ids: list[int], values: dict[str, Any]) -> None:
        """Run ``claim_update(kind)`` for ``ids`` (``values`` as Python objects)."""
        values = {k: self.stamp(v) if isinstance(v, datetime) else v
                  for k, v in values.items()}
        for start in range(0, len(ids), self.CHUNK):
            chunk = ids[start:start + self.CHUNK]
            stmt = self._get(kind, len(chunk))
            cur.execute(stmt.sql, stmt.args(
                {**values, **{f"i{k}": i for k, i in enumerate(chunk)}}))

    def mark_sent(self, cur: Any, results: Sequence[tuple[int, str]], now: datetime) -> int:
        """End the "sending" rows of ``results`` as sent; how many it ended."""
        ended = 0
        stamp = self.stamp(now)
        for start in range(0, len(results), self.CHUNK):
            chunk = results[start:start + self.CHUNK]
            stmt = self._get("sent", len(chunk))
            values: dict[str, Any] = {"b_now": stamp}
            for k, (delivery_id, response) in enumerate(chunk):
                values[f"i{k}"] = delivery_id
                values[f"r{k}"] = clip(response)
            ended += cur.execute(stmt.sql, stmt.args(values)).rowcount
        return ended
