"""The ledger's SQL, built once: Core statements for every backend, and the SQLite fast path
that runs the same statements, compiled once, as single steps on the DBAPI cursor."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .schema import deliveries, delivery_events, editions, memberships, subscribers, suppressions

__all__ = ["LATE_EVENT", "SENT_ROW", "SENT_ROWS_PG", "SQLiteLedger", "claim_update", "clip", "due_query",
           "fence_where", "late_results"]

_MAX_TEXT = 1000


def clip(text: str | None) -> str | None:
    return None if text is None else text[:_MAX_TEXT]


_STAMP = deliveries.c.finished_at.type
#: The fence every mark carries: the row is still "sending" under this worker's claim (its
#: ``claim_token``, incremented by every claim). A worker whose lease ran out and whose row
#: was reclaimed, released or ended meanwhile matches nothing, so it records nothing.
_FENCED = sa.and_(deliveries.c.status == "sending",
                  deliveries.c.claimed_by == sa.bindparam("b_worker"),
                  deliveries.c.claim_token == sa.bindparam("b_token", type_=sa.Integer))
SENT_ROW = deliveries.update().where(
    deliveries.c.id == sa.bindparam("b_id"), _FENCED,
).values(status="sent", reason=None, response=sa.bindparam("b_response"),
         finished_at=sa.bindparam("b_now", type_=_STAMP),
         attempts=deliveries.c.attempts + 1, claimed_by=None, lease_until=None)


def _unnest_sent_rows() -> sa.Update:
    """``SENT_ROW`` for many rows in one statement on PostgreSQL: the rows come as four
    arrays (``b_ids``, ``b_tokens``, ``b_workers``, ``b_responses``) joined through
    ``unnest``, so a group commit is one statement, not one per row."""
    from sqlalchemy.dialects.postgresql import ARRAY

    d = deliveries
    v = sa.func.unnest(sa.bindparam("b_ids", type_=ARRAY(sa.Integer)),
                       sa.bindparam("b_tokens", type_=ARRAY(sa.Integer)),
                       sa.bindparam("b_workers", type_=ARRAY(sa.String)),
                       sa.bindparam("b_responses", type_=ARRAY(sa.String)),
                       ).table_valued("id", "token", "worker", "response").render_derived(name="v")
    return d.update().where(
        d.c.id == v.c.id, d.c.status == "sending", d.c.claimed_by == v.c.worker,
        d.c.claim_token == v.c.token,
    ).values(status="sent", reason=None, response=v.c.response,
             finished_at=sa.bindparam("b_now", type_=_STAMP),
             attempts=d.c.attempts + 1, claimed_by=None, lease_until=None)


SENT_ROWS_PG = _unnest_sent_rows()
#: A late reply kept as evidence (see ``delivery_events`` in schema.py).
LATE_EVENT = delivery_events.insert().values(
    delivery_id=sa.bindparam("b_id"), kind=sa.bindparam("b_kind"),
    worker=sa.bindparam("b_worker"), claim_token=sa.bindparam("b_token"),
    detail=sa.bindparam("b_detail"), created_at=sa.bindparam("b_now", type_=_STAMP))


def fence_where(delivery_id: int, worker_id: str, token: int) -> list[Any]:
    """The fence as literal conditions, for the marks built per call."""
    d = deliveries
    return [d.c.id == delivery_id, d.c.status == "sending", d.c.claimed_by == worker_id,
            d.c.claim_token == token]


_TAKEN: dict[str, Any] = {
    "status": "sending", "claimed_by": sa.bindparam("b_worker"),
    "claim_token": deliveries.c.claim_token + 1,
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
                  suppressions.c.reason.label("suppressed"), d.c.claim_token, d.c.ambiguous)
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
    """``SENT_ROW`` for n rows of one worker in one statement: ids ``i0..``, responses
    ``r0..``, tokens ``t0..`` (each row's own fence)."""
    ids = _in_ids(n)
    d = deliveries
    response = sa.case({ids[k]: sa.bindparam(f"r{k}") for k in range(n)}, value=d.c.id)
    token = sa.case({ids[k]: sa.bindparam(f"t{k}", type_=sa.Integer) for k in range(n)},
                    value=d.c.id)
    return d.update().where(
        d.c.id.in_(ids), d.c.status == "sending",
        d.c.claimed_by == sa.bindparam("b_worker"), d.c.claim_token == token,
    ).values(status="sent", reason=None, response=response,
             finished_at=sa.bindparam("b_now", type_=_STAMP),
             attempts=d.c.attempts + 1, claimed_by=None, lease_until=None)


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
    #: The "sent" update binds five parameters a row (id thrice, response, token).
    SENT_CHUNK = 190

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.due = {lost: _Prepared(_packed(due_query(lost, True)), dialect)
                    for lost in (True, False)}
        self.stamp: Any = _STAMP.dialect_impl(dialect).bind_processor(dialect)
        self.first: Any = _STAMP.dialect_impl(dialect).result_processor(dialect, None)
        self._cache: dict[tuple[str, int], _Prepared] = {}
        self.late = _Prepared(LATE_EVENT, dialect)

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

    def mark_sent(self, cur: Any, results: Sequence[tuple[Any, str]],
                  now: datetime) -> tuple[int, list[tuple[Any, str]]]:
        """End the rows of ``results`` (``(claim, response)``: anything with
        ``delivery_id``, ``worker_id`` and ``token``) as sent where the claim is still
        theirs; returns how many it ended and the results that came too late (see
        :func:`late_results`)."""
        ended = 0
        late: list[tuple[Any, str]] = []
        stamp = self.stamp(now)
        for start in range(0, len(results), self.SENT_CHUNK):
            chunk = results[start:start + self.SENT_CHUNK]
            workers = {claim.worker_id for claim, _ in chunk}
            if len(workers) > 1:  # one worker per statement (never the case in a run)
                for worker in sorted(workers):
                    mine = [r for r in chunk if r[0].worker_id == worker]
                    n, lost = self.mark_sent(cur, mine, now)
                    ended += n
                    late += lost
                continue
            stmt = self._get("sent", len(chunk))
            values: dict[str, Any] = {"b_now": stamp, "b_worker": chunk[0][0].worker_id}
            for k, (claim, response) in enumerate(chunk):
                values[f"i{k}"] = claim.delivery_id
                values[f"r{k}"] = clip(response)
                values[f"t{k}"] = claim.token
            done = cur.execute(stmt.sql, stmt.args(values)).rowcount
            ended += done
            if done < len(chunk):
                marks = ",".join("?" * len(chunk))
                rows = cur.execute(
                    f"SELECT id, status, claim_token FROM deliveries WHERE id IN ({marks})",
                    [c.delivery_id for c, _ in chunk]).fetchall()
                late += late_results(chunk, rows)
        if late:
            cur.executemany(self.late.sql, [self.late.args(
                {"b_id": c.delivery_id, "b_kind": "late-sent", "b_worker": c.worker_id,
                 "b_token": c.token, "b_detail": clip(r), "b_now": stamp}) for c, r in late])
        return ended, late


def late_results(chunk: Sequence[tuple[Any, str]],
                 rows: Sequence[Sequence[Any]]) -> list[tuple[Any, str]]:
    """Of the "sent" results in ``chunk``, those the ledger did not take because the claim
    was no longer theirs (``rows``: each row's id, status and claim_token as now stored).
    A row already delivered under the same claim (a mark repeated after a commit whose
    outcome was unknown) is not late."""
    now = {int(r[0]): (r[1], int(r[2])) for r in rows}
    late = []
    for claim, response in chunk:
        stored = now.get(claim.delivery_id)
        if stored is None:
            continue  # the row is gone (its edition was deleted)
        status, token = stored
        if token == claim.token and status in ("sent", "sent_unconfirmed"):
            continue
        late.append((claim, response))
    return late
