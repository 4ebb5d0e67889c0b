"""Writing subscribers and memberships: one membership change with its consent event, and
rows created race-free (``INSERT … ON CONFLICT DO NOTHING``, then a read), so two requests
for the same new address at once (a double click on the sign-up form, several ``serve``
processes) both succeed instead of one failing on the unique constraint."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .consent import record_event
from .editions import list_id
from .members import Membership
from .schema import memberships, subscribers

__all__ = ["change_membership", "ensure_membership", "ensure_subscriber", "sections_of",
           "utc"]


def utc(now: datetime | None) -> datetime:
    """``now`` (naive means UTC) as an aware UTC time; the current time for None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def sections_of(member: Membership) -> list[str] | None:
    """The member's sections as the consent record writes them (sorted; None for all)."""
    return sorted(member.sections) if member.sections is not None else None


def change_membership(conn: Connection, member: Membership, now: datetime, *, actor: str,
                      cause: str, detail: dict[str, Any] | None = None,
                      **values: Any) -> int:
    """Update one membership with ``values`` and record the event; returns the event id."""
    lid = list_id(conn, member.list_name)
    conn.execute(memberships.update().where(
        memberships.c.list_id == lid, memberships.c.subscriber_id == member.subscriber_id,
    ).values(changed_at=now, **values))
    return record_event(
        conn, list_id=lid, subscriber_id=member.subscriber_id, old_status=member.status,
        new_status=values.get("status", member.status), old_sections=sections_of(member),
        new_sections=values["sections"] if "sections" in values else sections_of(member),
        actor=actor, cause=cause, detail=detail, now=now)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


def ensure_subscriber(conn: Connection, address: str, key: str, now: datetime, *,
                      name: str | None = None,
                      attributes: dict[str, str] | None = None) -> tuple[int, bool]:
    """The id of the subscriber with ``key``, created (with ``name`` and ``attributes``)
    when there is none; and whether this call created it."""
    # RETURNING says whether a row was inserted (rowcount does not, on every driver).
    created = conn.execute(_insert(conn, subscribers).values(
        email=address, email_key=key, name=name, attributes=dict(attributes or {}),
        created_at=now, updated_at=now).on_conflict_do_nothing(
        index_elements=["email_key"]).returning(subscribers.c.id)).scalar()
    if created is not None:
        return int(created), True
    sid = conn.execute(sa.select(subscribers.c.id)
                       .where(subscribers.c.email_key == key)).scalar_one()
    return int(sid), False


def ensure_membership(conn: Connection, list_id_: int, subscriber_id: int, **values: Any
                      ) -> bool:
    """Create the membership with ``values`` unless it exists; True when this call did."""
    return conn.execute(_insert(conn, memberships).values(
        list_id=list_id_, subscriber_id=subscriber_id, **values).on_conflict_do_nothing(
        index_elements=["list_id", "subscriber_id"]).returning(memberships.c.id)
    ).first() is not None
