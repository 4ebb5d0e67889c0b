"""Rate limits in the database, so they hold across restarts and across `serve` processes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .engine import Database, guarded
from .schema import rate_limits

__all__ = ["RateLimitsMixin"]


class RateLimitsMixin(Database):
    """Token buckets keyed by an opaque string of at most 100 characters (callers hash
    client networks and account names into keys; no name or address is stored)."""

    @guarded
    def take_rate_token(self, key: str, *, capacity: float, per_second: float,
                        take: bool = True, now: datetime | None = None) -> int:
        """Take one token from ``key``'s bucket (``capacity`` tokens, refilled at
        ``per_second``) in one transaction; concurrent callers are serialised. With
        ``take=False`` only look.

        :returns: 0 when a token was (or could be) taken, else the whole seconds until one
            is free (nothing is taken then).
        :raises ValueError: for a capacity below 1, a rate that is not positive or a key
            over 100 characters.
        """
        if capacity < 1 or per_second <= 0 or len(key) > 100:
            raise ValueError("capacity must be at least 1, per_second positive and the key "
                             "at most 100 characters")
        now = (now or datetime.now(UTC)).astimezone(UTC)
        with self.write() as conn:
            # A full bucket carries no information: forget those (keeps the table small).
            conn.execute(rate_limits.delete().where(
                rate_limits.c.updated_at < now - timedelta(seconds=capacity / per_second)))
            query = sa.select(rate_limits.c.tokens, rate_limits.c.updated_at).where(
                rate_limits.c.key == key)
            if not take:
                row = conn.execute(query).first()
            else:
                insert = (sqlite.insert if self.is_sqlite else postgresql.insert)(rate_limits)
                conn.execute(insert.values(key=key, tokens=float(capacity), updated_at=now)
                             .on_conflict_do_nothing(index_elements=["key"]))
                row = conn.execute(query if self.is_sqlite else query.with_for_update()).one()
            if row is None:
                return 0
            elapsed = max(0.0, (now - row.updated_at).total_seconds())
            tokens = min(float(capacity), row.tokens + elapsed * per_second)
            if tokens < 1.0:
                return max(1, math.ceil((1.0 - tokens) / per_second - 1e-6))
            if take:
                conn.execute(rate_limits.update().where(rate_limits.c.key == key)
                             .values(tokens=tokens - 1.0, updated_at=now))
            return 0
