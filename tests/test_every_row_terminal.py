"""Every ledger row ends, whatever its edition's age: the worker pass (``worker --once``,
the scheduler's periodic job) finishes rows waiting in any published edition, not only the
newest ten, and expires rows whose retry window ended even when nobody claims them. Real
store on SQLite and PostgreSQL, a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from service_env import ListSpec, recording_server, write_project

from digest import pipeline
from digest.cli import main
from digest.config import load_settings
from digest.store import Store

pytest_plugins = ["store_backends"]


def test_eleven_editions_every_row_ends(tmp_path: Path, store: Store, store_url: str) -> None:
    with recording_server() as srv:
        config = write_project(tmp_path, lists={"daily": ListSpec(readers=3)}, relay=srv)
        settings = load_settings(config, env={"DIGEST_DATABASE_URL": store_url,
                                              "DIGEST_SECRET_KEY": "k" * 32})
        lst = settings.get_list("daily")
        pipeline.sync_subscriber_files(settings, lst, store)
        built = asyncio.run(pipeline.build_edition(settings, lst, store=store)).edition
        now = datetime.now(UTC)
        window = settings.delivery.retry_window
        ids = []
        for age in range(10, -1, -1):  # eleven editions, oldest first
            edition = dataclasses.replace(built, date=built.date - timedelta(days=age))
            record = store.record_edition(edition)
            assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                         now=now - timedelta(days=age)) == 3
            ids.append(record.id)
        oldest, newer = ids[0], ids[1:]
        # The oldest: one sent, two deferred with their retry due now.
        a, b, c = store.claim_deliveries(oldest, worker_id="w", limit=3,
                                         now=now - timedelta(minutes=30), lease=timedelta(1))
        store.mark_sent(a, response="250 ok", now=now - timedelta(minutes=30))
        for claim in (b, c):
            store.mark_deferred(claim, error="451 4.7.1 try later",
                                retry_at=now - timedelta(seconds=1),
                                now=now - timedelta(minutes=30))
        # The ten newer ones: two sent, one deferred for an hour, so each stays unfinished.
        for edition_id in newer:
            x, y, z = store.claim_deliveries(edition_id, worker_id="w", limit=3, now=now,
                                             lease=timedelta(1))
            store.mark_sent_many([(x, "250 ok"), (y, "250 ok")], now=now)
            store.mark_deferred(z, error="450 4.2.0 greylisted",
                                retry_at=now + timedelta(hours=1), now=now)
        # In the newest, the deferred row's window ended already (first tried 25 h ago):
        # nobody will claim it for an hour, yet the pass expires it.
        [stale] = [r for r in store.unfinished_editions("daily") if r.edition_id == ids[-1]]
        late_row = _deferred_row(store, ids[-1])
        _first_attempt(store, late_row, now - window - timedelta(hours=1))
        assert len(store.unfinished_editions("daily")) == 11 and stale.counts == {
            "sent": 2, "queued": 1}

        result = CliRunner().invoke(main, ["worker", "--once", "--config", str(config)],
                                    env={"DIGEST_DATABASE_URL": store_url,
                                         "DIGEST_SECRET_KEY": "k" * 32})
        assert result.exit_code == 0, result.output
        got = srv.handler.by_rcpt()

    assert sorted(got) == [b.email, c.email] and set(got.values()) == {1}
    assert store.delivery_summary(oldest) == {"sent": 3}
    assert store.get_edition(oldest).status == "sent"
    row = store.get_delivery(late_row)
    assert (row["status"], row["reason"]) == ("expired", "retries exhausted")
    assert store.get_edition(ids[-1]).status == "sent"
    for edition_id in newer[:-1]:
        assert store.delivery_summary(edition_id) == {"sent": 2, "queued": 1}
    assert [r.edition_id for r in store.unfinished_editions("daily")] == newer[:-1]
    lines = result.stdout.splitlines()
    first = next(ln for ln in lines if ln.startswith(f"edition {oldest} daily "))
    assert "2 sent" in first and "every row ended" in first
    last = next(ln for ln in lines if ln.startswith(f"edition {ids[-1]} daily "))
    assert "1 expired" in last and "every row ended" in last
    waits = next(ln for ln in lines if ln.startswith(f"edition {newer[0]} daily "))
    assert "nothing due; 1 waiting, next retry due " in waits


def _deferred_row(store: Store, edition_id: int) -> int:
    import sqlalchemy as sa

    from digest.store.schema import deliveries

    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(deliveries.c.id).where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.status == "queued")).scalar_one())


def _first_attempt(store: Store, delivery_id: int, when: datetime) -> None:
    import sqlalchemy as sa

    from digest.store.schema import deliveries

    with store.engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.id == delivery_id)
                     .values(first_attempt_at=when))


def test_a_row_whose_window_ends_after_an_ambiguous_outcome_is_unconfirmed(
        tmp_path: Path, store: Store, store_url: str) -> None:
    """The pass ends an overdue row that once had an ambiguous outcome (the connection
    dropped after the final dot: the relay may hold a copy) as "sent_unconfirmed", as the
    worker does when the window runs out under it; a row only ever refused (4xx) expires."""
    config = write_project(tmp_path, lists={"daily": ListSpec(readers=2)}, relay=None)
    settings = load_settings(config, env={"DIGEST_DATABASE_URL": store_url,
                                          "DIGEST_SECRET_KEY": "k" * 32})
    lst = settings.get_list("daily")
    pipeline.sync_subscriber_files(settings, lst, store)
    record = store.record_edition(asyncio.run(
        pipeline.build_edition(settings, lst, store=store)).edition)
    now = datetime.now(UTC)
    window = settings.delivery.retry_window
    assert store.publish_edition(record.id, message_id_domain="news.example.org",
                                 now=now - window) == 2
    dropped, refused = store.claim_deliveries(record.id, worker_id="w", limit=2,
                                              now=now - window, lease=timedelta(1))
    store.mark_deferred(dropped, error="disconnected after the final dot (outcome unknown)",
                        retry_at=now + timedelta(hours=1), now=now - window, ambiguous=True)
    store.mark_deferred(refused, error="450 4.2.0 mailbox busy",
                        retry_at=now + timedelta(hours=1), now=now - window)
    for row in (dropped.delivery_id, refused.delivery_id):
        _first_attempt(store, row, now - window - timedelta(minutes=1))

    assert store.expire_overdue(record.id, window=window, now=now) == (1, 1)
    assert (store.get_delivery(dropped.delivery_id)["status"],
            store.get_delivery(refused.delivery_id)["status"]) == ("sent_unconfirmed",
                                                                    "expired")
    assert store.get_delivery(dropped.delivery_id)["reason"] == "outcome unknown"
    assert store.delivery_summary(record.id) == {"sent_unconfirmed": 1, "expired": 1}
