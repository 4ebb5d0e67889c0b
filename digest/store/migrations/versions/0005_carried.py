"""Carried stories: story identity keys, and whether readers received each story, per variant.

Existing rows get their normalised link, guid and headline keys (digest.identity), and
``carried`` true when their edition was published (what the store assumed until now: every
story of a sent edition was carried), NULL otherwise.

Revision ID: 0005_carried
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_carried"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEXES = {"ix_edition_stories_link_key": "link_key",
            "ix_edition_stories_guid_key": "guid_key",
            "ix_edition_stories_headline_key": "headline_key"}


def upgrade() -> None:
    with op.batch_alter_table("edition_stories") as batch:
        batch.add_column(sa.Column("link_key", sa.String(600), nullable=True))
        batch.add_column(sa.Column("guid_key", sa.String(600), nullable=True))
        batch.add_column(sa.Column("carried", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("shown_in", sa.JSON, nullable=True))
        batch.add_column(sa.Column("dropped_from", sa.JSON, nullable=True))
    _backfill()
    for name, column in _INDEXES.items():
        op.create_index(name, "edition_stories", [column])


def _backfill() -> None:
    from digest.identity import guid_key, headline_key, link_key

    conn = op.get_bind()
    stories = sa.table("edition_stories", sa.column("id"), sa.column("edition_id"),
                       sa.column("story_id"), sa.column("url"), sa.column("headline"),
                       sa.column("headline_key"), sa.column("link_key"),
                       sa.column("guid_key"), sa.column("carried", sa.Boolean))
    editions = sa.table("editions", sa.column("id"), sa.column("published_at"))
    rows = conn.execute(
        sa.select(stories.c.id, stories.c.story_id, stories.c.url, stories.c.headline,
                  editions.c.published_at.is_not(None).label("published"))
        .join(editions, editions.c.id == stories.c.edition_id)).all()
    update = (stories.update().where(stories.c.id == sa.bindparam("row_id"))
              .values(link_key=sa.bindparam("lk"), guid_key=sa.bindparam("gk"),
                      headline_key=sa.bindparam("hk"), carried=sa.bindparam("c")))
    values = [{"row_id": row.id, "lk": link_key(row.url), "gk": guid_key(row.story_id),
               "hk": headline_key(row.headline)[2:], "c": True if row.published else None}
              for row in rows]
    for start in range(0, len(values), 1000):
        conn.execute(update, values[start:start + 1000])


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="edition_stories")
    with op.batch_alter_table("edition_stories") as batch:
        for column in ("dropped_from", "shown_in", "carried", "guid_key", "link_key"):
            batch.drop_column(column)
