"""Carried-stories benchmark: the repeat lookup a build makes against a long history, and the
audience query `send` makes after publishing, each beside the work it sits next to.

Usage::

    PYTHONPATH=. python bench/bench_carried.py [--days 1095] [--per-day 40] [--stories 300]
        [--recipients 100000] [--pg URL] [--skip-pg]

* **lookup**: a list with ``--days`` sent editions of ``--per-day`` stories each; a build
  of ``--stories`` stories (half of them sent before, under other spellings of their links)
  asks ``Store.carried_keys`` about its keys. Beside it, in the same run, the query the
  store made before (every key of every edition of the list, loaded into a set).
* **audience**: an edition published to ``--recipients`` members with eight section
  preferences; ``Store.edition_audience`` (what ``send`` runs once per edition to decide
  what was carried) beside ``Store.publish_edition`` of the same edition.

Goals: the lookup is faster than loading the history it replaces, and the audience query
costs under 35 % of publishing the same edition (it runs once per edition). PostgreSQL's
planner reads a table this small sequentially, so its lookup gains less than SQLite's. PostgreSQL comes from ``--pg``,
else ``DIGEST_BENCH_DATABASE_URL`` or ``DIGEST_TEST_DATABASE_URL``, in a fresh schema dropped
afterwards.

Measured 2026-11-30 (2 CPUs shared with other work, load ~8; Python 3.11.7, PostgreSQL 15 on
loopback), defaults::

    SQLite      lookup of 300 stories in 43,800 rows   2.6 ms (loading the history  88.9 ms)
                audience of 100,000 recipients         246 ms = 27.6 % of publishing (891 ms)
    PostgreSQL  lookup                                57.0 ms (loading the history 163.6 ms)
                audience                               549 ms =  9.4 % of publishing (5.8 s)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from digest.edition import keys_to_check
from digest.identity import guid_key, headline_key, link_key
from digest.models import Edition, Story
from digest.store import Store, open_store
from digest.store.schema import (
    deliveries,
    edition_stories,
    editions,
    lists,
    memberships,
    subscribers,
)

NOW = datetime(2026, 3, 2, 7, tzinfo=UTC)
PROFILES = (None, ["World"], ["Sports"], ["Business", "World"], ["Politics"],
            ["Health", "Lifestyle"], ["Technology"], ["World", "Sports", "Business"])


def _history(store: Store, days: int, per_day: int) -> None:
    """``days`` published editions with one delivered row each and every story carried."""
    start = date(2026, 3, 1) - timedelta(days=days)
    with store.engine.begin() as conn:
        list_id = conn.execute(lists.insert().values(name="daily", title="Daily",
                                                     created_at=NOW)).inserted_primary_key[0]
        sub = conn.execute(subscribers.insert().values(
            email="a@example.org", email_key="a@example.org", attributes={}, created_at=NOW,
            updated_at=NOW)).inserted_primary_key[0]
        rows = []
        for d in range(days):
            eid = conn.execute(editions.insert().values(
                list_id=list_id, date=start + timedelta(days=d), seq=1, subject="s",
                payload={}, created_at=NOW, published_at=NOW)).inserted_primary_key[0]
            conn.execute(deliveries.insert().values(
                edition_id=eid, subscriber_id=sub, status="sent", message_id=f"<{eid}@x>",
                attempts=1, created_at=NOW, next_attempt_at=NOW))
            for p in range(per_day):
                url = f"http://news.example.org/{d}/{p}/"
                head = f"Story {p} of day {d}"
                rows.append({"edition_id": eid, "position": p, "story_id": url, "url": url,
                             "headline_key": headline_key(head)[2:], "section": "World",
                             "headline": head, "link_key": link_key(url),
                             "guid_key": guid_key(url), "carried": True,
                             "shown_in": [["World"]], "dropped_from": []})
            if len(rows) > 5000:
                conn.execute(edition_stories.insert(), rows)
                rows = []
        if rows:
            conn.execute(edition_stories.insert(), rows)


def _old_query(store: Store) -> set[str]:
    """What the store did before: every id, url and headline of every edition of the list."""
    query = (sa.select(edition_stories.c.story_id, edition_stories.c.url,
                       edition_stories.c.headline_key)
             .join(editions, editions.c.id == edition_stories.c.edition_id)
             .join(lists, lists.c.id == editions.c.list_id).where(lists.c.name == "daily"))
    keys: set[str] = set()
    with store.read() as conn:
        for story_id, url, head in conn.execute(query):
            keys.add(story_id)
            if url:
                keys.add(url)
            keys.add("h:" + head)
    return keys


def _best(func, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def lookup(url: str, days: int, per_day: int, n: int) -> tuple[float, float, int]:
    with open_store(url) as store:
        _history(store, days, per_day)
        build = [Story(id=f"https://news.example.org/{d}/{p}?utm_source=rss", section="World",
                       headline=f"Story {p} of day {d}",
                       url=f"https://NEWS.example.org/{d}/{p}?fbclid=x")
                 for d, p in ((days - 1 - i // per_day, i % per_day) for i in range(n // 2))]
        build += [Story(id=f"new-{i}", section="World", headline=f"New {i}",
                        url=f"https://news.example.org/new/{i}") for i in range(n - n // 2)]
        keys = keys_to_check(build)
        since = date(2026, 2, 22)
        found = store.carried_keys("daily", keys, headlines_since=since)
        new = _best(lambda: store.carried_keys("daily", keys, headlines_since=since))
        old = _best(lambda: _old_query(store), repeat=3)
    return new, old, len(found.identities)


def audience(url: str, recipients: int) -> tuple[float, float]:
    with open_store(url) as store:
        with store.engine.begin() as conn:
            list_id = conn.execute(lists.insert().values(
                name="daily", title="Daily", created_at=NOW)).inserted_primary_key[0]
            for start in range(0, recipients, 10000):
                batch = range(start, min(recipients, start + 10000))
                conn.execute(subscribers.insert(), [{
                    "email": f"r{i}@example.org", "email_key": f"r{i}@example.org",
                    "attributes": {}, "created_at": NOW, "updated_at": NOW} for i in batch])
            ids = list(conn.execute(sa.select(subscribers.c.id)).scalars())
            for start in range(0, len(ids), 10000):
                conn.execute(memberships.insert(), [{
                    "list_id": list_id, "subscriber_id": sid, "status": "active",
                    "sections": PROFILES[sid % len(PROFILES)], "source": "import",
                    "created_at": NOW, "changed_at": NOW} for sid in ids[start:start + 10000]])
        lead = Story(id="lead", section="Politics", headline="Lead")
        record = store.record_edition(Edition("daily", NOW.date(), "s", "", lead, ()))
        start = time.perf_counter()
        store.publish_edition(record.id, message_id_domain="x", now=NOW)
        publish = time.perf_counter() - start
        start = time.perf_counter()
        groups = store.edition_audience(record.id)
        query = time.perf_counter() - start
        assert len(groups) == len(PROFILES), groups
    return query, publish


def _pg_schema(admin: str) -> tuple[str, sa.Engine, str]:
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(admin).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), engine, schema


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--per-day", type=int, default=40)
    parser.add_argument("--stories", type=int, default=300)
    parser.add_argument("--recipients", type=int, default=100000)
    parser.add_argument("--pg")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    backends = [("SQLite", f"sqlite:///{tmp / 'lookup.db'}", f"sqlite:///{tmp / 'aud.db'}")]
    pg = args.pg or os.environ.get("DIGEST_BENCH_DATABASE_URL") or os.environ.get(
        "DIGEST_TEST_DATABASE_URL")
    cleanup: list[tuple[sa.Engine, str]] = []
    if pg and not args.skip_pg:
        urls = []
        for _ in range(2):
            url, engine, schema = _pg_schema(pg)
            cleanup.append((engine, schema))
            urls.append(url)
        backends.append(("PostgreSQL", urls[0], urls[1]))
    ok = True
    try:
        for name, lookup_url, audience_url in backends:
            new, old, found = lookup(lookup_url, args.days, args.per_day, args.stories)
            print(f"{name:10} lookup of {args.stories} stories in "
                  f"{args.days * args.per_day:,} carried rows: {new * 1000:6.1f} ms "
                  f"(loading the history: {old * 1000:7.1f} ms, {old / new:5.1f}x); "
                  f"{found} keys found")
            query, publish = audience(audience_url, args.recipients)
            print(f"{name:10} audience of {args.recipients:,} recipients: "
                  f"{query * 1000:6.0f} ms = {query / publish:5.1%} of publishing "
                  f"({publish * 1000:.0f} ms)")
            ok = ok and new < old and query < 0.35 * publish
    finally:
        for engine, schema in cleanup:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            engine.dispose()
    print("goals met" if ok else "GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
