"""The store's tables, one SQLAlchemy Core schema for SQLite and PostgreSQL.

The migrations under ``migrations/versions`` create exactly these tables; a test compares
the two so they cannot drift apart. Times are stored as naive UTC and read back aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from digest.mailboxes import mailbox

__all__ = [
    "ACTIVE",
    "DELIVERED",
    "DELIVERY_STATUSES",
    "EDITION_STATUSES",
    "EVENT_ACTORS",
    "INACTIVE",
    "MEMBERSHIP_STATUSES",
    "NON_TERMINAL",
    "STATUS_RANK",
    "TERMINAL",
    "UTCDateTime",
    "bounce_events",
    "deliveries",
    "delivery_events",
    "edition_events",
    "edition_stories",
    "editions",
    "editors",
    "leases",
    "lists",
    "membership_events",
    "memberships",
    "metadata",
    "signup_limits",
    "subscriber_files",
    "subscribers",
    "suppressions",
]

ACTIVE = "active"
EVENT_ACTORS = ("reader", "editor", "system", "import")
MEMBERSHIP_STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
INACTIVE = frozenset({"unsubscribed", "bounced", "complained"})
#: How far a status keeps mail away: a move towards not mailing only goes up (active or
#: pending to any inactive status; unsubscribed < bounced < complained, since a bounce or
#: complaint also suppresses the address and a complaint also refuses every later sign-up).
STATUS_RANK = {"pending": 0, "active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}
#: "sent_unconfirmed": the relay may hold the message (the connection dropped or the reply
#: timed out after the final dot, again after ``[delivery] max_ambiguous`` retries);
#: terminal, and it counts as delivered (shown apart). See the README's delivery contract.
DELIVERY_STATUSES = ("queued", "sending", "sent", "sent_unconfirmed", "failed", "expired",
                     "skipped")
TERMINAL = frozenset({"sent", "sent_unconfirmed", "failed", "expired", "skipped"})
#: Rows whose reader (probably) has the message: what reports and carried stories count.
DELIVERED = frozenset({"sent", "sent_unconfirmed"})
NON_TERMINAL = frozenset({"queued", "sending"})
#: An edition's lifecycle (see digest/store/lifecycle.py): draft -> approved -> sending -> sent,
#: or held / cancelled / missed.
EDITION_STATUSES = ("draft", "approved", "sending", "sent", "held", "cancelled", "missed")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC on every backend and returned timezone-aware (UTC)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

lists = sa.Table(
    "lists", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # email is the validated, normalised address we send to; email_key (case-folded) is
    # what makes two spellings of one mailbox the same subscriber.
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

memberships = sa.Table(
    "memberships", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # JSON list of section names; NULL means every section.
    sa.Column("sections", sa.JSON, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime, nullable=True),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    # When the reader last chose their sections themselves (preferences page, or a sign-up
    # they confirmed); NULL while the sections are the editor's. An import never overwrites
    # sections a reader chose.
    sa.Column("sections_chosen_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("list_id", "subscriber_id"),
    sa.CheckConstraint(
        "status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')",
        name="status"),
    sa.Index(None, "list_id", "status", "subscriber_id"),
    sa.Index(None, "subscriber_id"),
)

def _mailbox_of_row(context: Any) -> str | None:
    """The ``mailbox`` of a suppression being inserted, from its ``email_key``, so every
    insert (whoever writes it) fills it in."""
    key = context.get_current_parameters().get("email_key")
    return mailbox(key) if key else None


# One row per suppressed address (email_key); ``mailbox`` is the mailbox it delivers to
# (digest.mailboxes: no +tag, case, Gmail dots), so a complaint also refuses sign-ups of
# the mailbox's other spellings.
suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("mailbox", sa.String(320), nullable=True, default=_mailbox_of_row,
              index=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("detail", sa.String(500), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

editions = sa.Table(
    "editions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("subject", sa.String(998), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("message_id_domain", sa.String(253), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
    sa.UniqueConstraint("list_id", "date", "seq"),
    sa.CheckConstraint(
        "status IN ('draft', 'approved', 'sending', 'sent', 'held', 'cancelled', 'missed')",
        name="status"),
)

# Append-only: one row per move of an edition's status (and per notice about it, where
# old_status == new_status), with who or what made it and why.
edition_events = sa.Table(
    "edition_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("old_status", sa.String(16), nullable=True),
    sa.Column("new_status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("cause", sa.String(1000), nullable=True),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Index(None, "edition_id", "id"),
)

# One row per story of an edition. The keys are digest.identity's: link_key and guid_key
# (normalised, NULL when the story has none) are the story's identity, headline_key its
# normalised headline (without the "h:" prefix). ``carried`` is NULL until the edition is
# sent, then whether its readers received the story (digest.edition.carried_stories);
# shown_in and dropped_from list the variants (each a sorted list of section names) that
# showed it and those whose size budget dropped it.
edition_stories = sa.Table(
    "edition_stories", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("story_id", sa.String(2000), nullable=False),
    sa.Column("url", sa.String(2000), nullable=True),
    sa.Column("headline_key", sa.String(1000), nullable=False),
    sa.Column("section", sa.String(200), nullable=False),
    sa.Column("headline", sa.String(1000), nullable=False),
    sa.Column("link_key", sa.String(600), nullable=True),
    sa.Column("guid_key", sa.String(600), nullable=True),
    sa.Column("carried", sa.Boolean, nullable=True),
    sa.Column("shown_in", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("dropped_from", sa.JSON(none_as_null=True), nullable=True),
    sa.UniqueConstraint("edition_id", "position"),
    sa.Index(None, "link_key"),
    sa.Index(None, "guid_key"),
    sa.Index(None, "headline_key"),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("message_id", sa.String(400), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("first_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("last_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(1000), nullable=True),
    sa.Column("response", sa.String(1000), nullable=True),
    # The fencing token: incremented by every claim, so (id, claimed_by, claim_token) names
    # one claim; every mark is conditional on it (a worker whose lease ran out records nothing).
    sa.Column("claim_token", sa.Integer, nullable=False, server_default="0"),
    # Ambiguous outcomes so far (disconnect or timeout after the message was sent).
    sa.Column("ambiguous", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("edition_id", "subscriber_id"),
    sa.CheckConstraint(
        "status IN ('queued', 'sending', 'sent', 'sent_unconfirmed', 'failed', 'expired', "
        "'skipped')", name="status"),
    sa.Index(None, "edition_id", "status", "next_attempt_at", "id"),
    sa.Index(None, "claimed_by"),
    sa.Index(None, "subscriber_id"),
)

# Append-only: what a worker learned about a row after its claim was no longer its own (a
# late 250, refusal or deferral that arrived once the lease had run out and the row had been
# reclaimed or ended): kept as evidence, never as a second outcome. ``kind`` is "late-sent",
# "late-failed", "late-deferred", "late-expired" or "late-unconfirmed".
delivery_events = sa.Table(
    "delivery_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("claim_token", sa.Integer, nullable=False),
    sa.Column("detail", sa.String(1000), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "delivery_id"),
)

# One row per bounce or complaint attributed to a subscriber: the audit trail, the
# soft-bounce count, and (event_key, a hash of the report's bytes) what makes a re-run a no-op.
bounce_events = sa.Table(
    "bounce_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_key", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id", ondelete="SET NULL"),
              nullable=True),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("kind IN ('hard', 'soft', 'complaint')", name="kind"),
    sa.Index(None, "subscriber_id", "kind", "created_at"),
)

# The consent record (GDPR Art. 7(1)): one append-only row per change of a membership's
# status or sections, and per sign-up request, with what caused it. See consent.py.
membership_events = sa.Table(
    "membership_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("old_status", sa.String(16), nullable=True),  # NULL: the membership is new
    sa.Column("new_status", sa.String(16), nullable=False),
    sa.Column("old_sections", sa.JSON, nullable=True),  # JSON list; null: every section
    sa.Column("new_sections", sa.JSON, nullable=True),
    sa.Column("actor", sa.String(16), nullable=False),
    sa.Column("cause", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.CheckConstraint("actor IN ('reader', 'editor', 'system', 'import')", name="actor"),
    sa.Index(None, "subscriber_id", "list_id", "id"),
)

# The people who may sign in to the editor's desk (``editors add``): an Argon2 hash of each
# password, never the password. ``session_key`` is part of every session cookie and changes
# with the password, so a new password (or removing the editor) ends every open session.
editors = sa.Table(
    "editors", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("name_key", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("session_key", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("password_changed_at", UTCDateTime, nullable=False),
    sa.Column("last_sign_in_at", UTCDateTime, nullable=True),
)

# Rate limits shared by every `serve` process (sign-ups per client network and mailbox, desk
# sign-ins per account and client network): one token bucket per key (a keyed hash, never an
# address or name), refilled as time passes; rows of full buckets are pruned.
signup_limits = sa.Table(
    "signup_limits", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "updated_at"),
)

# Named leases held where the database is, so they hold across hosts and working folders:
# "scheduler" (one scheduler per database; its renewals are the heartbeat `status` shows)
# and "send:<list>" (one send of a list at a time). A holder renews before ``expires_at``;
# once that passes, or ``released_at`` is set, anyone may take the lease.
leases = sa.Table(
    "leases", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("released_at", UTCDateTime, nullable=True),
)

# The subscribers files a list imported (``send`` imports them first, every time): the
# SHA-256 of the bytes imported and of the import's parameters, so an unchanged file is not
# read again (digest/store/filesync.py); ``report`` keeps the rows that import rejected or
# warned about, which a skipped import reports again.
subscriber_files = sa.Table(
    "subscriber_files", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("path", sa.String(1000), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("params", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("imported_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("list_id", "path"),
)
