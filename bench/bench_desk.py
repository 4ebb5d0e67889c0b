"""How long the editor's desk takes to answer over a large list (SQLite).

A store with ``--subscribers`` readers gets one published edition whose ledger rows ended over
an hour (sends, refusals that suppressed, deferrals), then every desk page is fetched through
the ASGI app (no network) by a signed-in editor, a few times each; the median is reported.

Goals: the delivery report, the overview and the subscribers page answer within 1 s at
100 000 readers, and the edition page (variants rendered once, then cached) within 0.5 s.

    PYTHONPATH=. python bench/bench_desk.py [--subscribers 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

GOALS = {"report": 1.0, "overview": 1.0, "subscribers": 1.0, "edition": 0.5}


def _fill(store, count: int, folder: Path) -> int:  # type: ignore[no-untyped-def]
    from render_editions import seed_edition

    path = folder / "readers.csv"
    sections = ["World", "Business", "Sports", ""]
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["email", "name", "sections"])
        for i in range(count):
            out.writerow([f"reader{i}@example.org", f"Reader {i}", sections[i % 4]])
    store.import_csv("daily", path)
    record = store.record_edition(seed_edition())
    start = datetime.now(UTC) - timedelta(hours=2)
    store.publish_edition(record.id, message_id_domain="news.example.org", now=start)
    minute = 0
    while True:
        now = start + timedelta(minutes=minute % 60, seconds=7)
        claims = store.claim_deliveries(record.id, worker_id="bench", limit=2000, now=now,
                                        lease=timedelta(hours=3))
        if not claims:
            break
        store.mark_sent_many([(c, "250 ok") for c in claims[5:]], now=now)
        for c in claims[:3]:
            store.mark_failed(c, code=550, suppress=True, now=now,
                              error=f"5.1.1 <{c.email}>: Recipient address rejected")
        for c in claims[3:5]:
            store.mark_deferred(c, error="451 4.7.1 try later",
                                retry_at=datetime.now(UTC) + timedelta(hours=1), now=now)
        minute += 1
    return int(record.id)


async def _measure(settings, store, edition_id: int, rounds: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from desk_support import DESK, add_editor, desk_client, sign_in

    add_editor(store)
    pages = {"report": f"{DESK}/editions/{edition_id}/report", "overview": f"{DESK}/",
             "subscribers": f"{DESK}/subscribers", "edition": f"{DESK}/editions/{edition_id}"}
    medians: dict[str, float] = {}
    async with desk_client(settings, store) as client:
        await sign_in(client)
        first = time.perf_counter()
        assert (await client.get(pages["edition"])).status_code == 200
        medians["edition (first, renders)"] = time.perf_counter() - first
        for name, path in pages.items():
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                response = await client.get(path)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (name, response.status_code)
            medians[name] = statistics.median(times)
    return medians


def main() -> int:
    from desk_support import desk_settings

    from digest.store import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = desk_settings(folder)
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with open_store(settings.database_url) as store:
            started = time.perf_counter()
            edition_id = _fill(store, args.subscribers, folder)
            print(f"filled {args.subscribers} readers and their ledger rows in "
                  f"{time.perf_counter() - started:.1f} s")
            medians = asyncio.run(_measure(settings, store, edition_id, args.rounds))
    missed = []
    for name, seconds in medians.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else (" ok" if seconds <= goal else f" MISSED ({goal} s)")
        print(f"{name:28s} {seconds * 1000:8.1f} ms{verdict}")
        if goal is not None and seconds > goal and args.subscribers <= 100_000:
            missed.append(name)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
