"""Rate limits (sign-ups, desk sign-ins) in the database, so they hold across restarts and
`serve` processes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .engine import Database, guarded
from .schema import signup_limits

__all__ = ["SignupLimitsMixin"]


class SignupLimitsMixin(Database):
    """Token buckets keyed by an opaque string ``kind:value`` (the web app hashes client
    networks, mailboxes and, for the desk's sign-in, account names into values; no address
    or name is stored). Every rate limit of the web app lives here: sign-ups and desk
    sign-ins. All buckets of one kind share one limit; each kind has its own."""

    @guarded
    def take_signup_token(self, key: str, *, capacity: float, per_second: float,
                          now: datetime | None = None, take: bool = True) -> int:
        """Take one token from ``key``'s bucket (``capacity`` tokens, refilled at
        ``per_second``) in one transaction; concurrent callers are serialised. With
        ``take=False`` only look (the desk checks before a sign-in and takes on failure).

        :returns: 0 when a token was (or could be) taken, else the whole seconds until one
            is free (nothing is taken then).
        :raises ValueError: for a capacity below 1 or a rate that is not positive.
        """
        if capacity < 1 or per_second <= 0 or len(key) > 100:
            raise ValueError("capacity must be at least 1, per_second positive and the key "
                             "at most 100 characters")
        now = (now or datetime.now(UTC)).astimezone(UTC)
        insert = (sqlite.insert if self.is_sqlite else postgresql.insert)(signup_limits)
        with self.write() as conn:
            # Full buckets carry no information: forget them (keeps the table small). Only
            # this kind's: another kind's bucket is full after its own refill time, not ours.
            kind = key.partition(":")[0]
            conn.execute(signup_limits.delete().where(
                signup_limits.c.key.startswith(f"{kind}:", autoescape=True),
                signup_limits.c.updated_at < now - timedelta(seconds=capacity / per_second)))
            query = sa.select(signup_limits.c.tokens, signup_limits.c.updated_at).where(
                signup_limits.c.key == key)
            if take:
                conn.execute(insert.values(key=key, tokens=float(capacity), updated_at=now)
                             .on_conflict_do_nothing(index_elements=["key"]))
                query = query if self.is_sqlite else query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                return 0  # looking only, and no bucket yet: a full one
            elapsed = max(0.0, (now - row.updated_at).total_seconds())
            tokens = min(float(capacity), row.tokens + elapsed * per_second)
            if tokens < 1.0:
                return max(1, math.ceil((1.0 - tokens) / per_second - 1e-6))
            if take:
                conn.execute(signup_limits.update().where(signup_limits.c.key == key)
                             .values(tokens=tokens - 1.0, updated_at=now))
            return 0
