"""Store benchmark: CSV import rate and memory, and streaming a million eligible recipients.

Usage::

    python bench/bench_store.py [--rows 100000] [--big 1000000] [--pg URL] [--skip-pg]

PostgreSQL comes from ``--pg``, else ``DIGEST_BENCH_DATABASE_URL`` or
``DIGEST_TEST_DATABASE_URL``; each run uses a fresh schema that is dropped afterwards.
Every measurement runs in its own process, so "peak RSS" (``ru_maxrss``) is that phase's
own peak; "growth" is the peak minus the RSS right after the store was opened.

Measured 2026-11-28 (2 CPUs, Python 3.11.7, SQLAlchemy 2.1, PostgreSQL 15 on loopback)::

    import 100,000 rows     SQLite 5,480 rows/s (re-import 12,456)   PostgreSQL 2,347 (6,058)
      peak RSS growth       +7.8 MB                                  +5.4 MB
    iter_eligible 98,000    SQLite 41,392 rows/s  +4.5 MB            PostgreSQL 39,676  +3.0 MB
    iter_eligible 980,000   SQLite 20,871 rows/s  +4.6 MB            PostgreSQL 13,760  +3.0 MB
    publish 980,000 rows    SQLite 6.7 s                             PostgreSQL 19.1 s
    claim(100)+mark_sent    SQLite 1,807 rows/s                      PostgreSQL 942
    claim(100)+mark_many    SQLite 3,021 rows/s                      PostgreSQL 6,721
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.models import Edition, Story
from digest.store import open_store
from digest.store.schema import UTCDateTime

SECTIONS = ("Politics", "World", "Business", "Top Stories", "Sports", "Health",
            "Entertainment", "Lifestyle", "Technology")
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_csv(path: Path, rows: int) -> None:
    """A realistic subscriber file of ``rows`` rows, written without holding it in memory."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["email", "name", "sections", "city"])
        for i in range(rows):
            sections = ";".join(SECTIONS[j] for j in range(i % 4)) if i % 3 else ""
            out.writerow([f"reader{i:07d}@example.org", f"Reader Nümber {i}", sections,
                          ("Lyon", "Zürich", "Kraków", "Osaka")[i % 4]])


# ----------------------------------------------------------------- phases (child processes)

def phase_import(url: str, csv_path: str) -> dict[str, float]:
    with open_store(url) as store:
        store.ensure_list("daily", "Daily")
        base = _current_rss_mb()
        start = time.perf_counter()
        report = store.import_csv("daily", csv_path, known_sections=SECTIONS)
        first = time.perf_counter() - start
        peak_first = _rss_mb()
        start = time.perf_counter()
        again = store.import_csv("daily", csv_path, known_sections=SECTIONS)
        second = time.perf_counter() - start
    assert not report.rejected and again.unchanged == report.accepted
    return {"rows": report.accepted, "seconds": first, "rows_per_s": report.accepted / first,
            "reimport_rows_per_s": again.unchanged / second, "base_rss_mb": base,
            "peak_rss_mb": peak_first, "growth_mb": peak_first - base}


def phase_populate(url: str, small: int, big: int) -> dict[str, float]:
    """Bulk-load ``big`` subscribers (members of "big"; the first ``small`` also of "small")."""
    start = time.perf_counter()
    with open_store(url) as store:
        small_id = store.ensure_list("small", "Small")
        big_id = store.ensure_list("big", "Big")
        series = ("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :n) "
                  "SELECT n FROM s" if store.is_sqlite else
                  "SELECT n FROM generate_series(1, :n) AS g(n)")
        t = sa.bindparam("t", NOW, type_=UTCDateTime)
        with store.write() as conn:
            conn.execute(sa.text(
                "INSERT INTO subscribers (id, email, email_key, name, attributes, created_at, "
                f"updated_at) SELECT n, 'r' || n || '@example.org', 'r' || n || '@example.org',"
                f" 'Reader ' || n, '{{}}', :t, :t FROM ({series}) AS q"
            ).bindparams(t), {"n": big})
            for list_id, count in ((big_id, big), (small_id, small)):
                conn.execute(sa.text(
                    "INSERT INTO memberships (list_id, subscriber_id, status, source, "
                    "created_at, changed_at) SELECT :l, id, CASE WHEN id % 50 = 0 THEN "
                    "'unsubscribed' ELSE 'active' END, 'bench', :t, :t FROM subscribers "
                    "WHERE id <= :c").bindparams(t), {"l": list_id, "c": count})
        if not store.is_sqlite:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("SELECT setval('subscribers_id_seq', "
                                     "(SELECT max(id) FROM subscribers))")
                conn.exec_driver_sql("ANALYZE")
    return {"seconds": time.perf_counter() - start}


def phase_stream(url: str, list_name: str) -> dict[str, float]:
    with open_store(url, migrate=False) as store:
        base = _current_rss_mb()
        start = time.perf_counter()
        count = sum(1 for _ in store.iter_eligible(list_name, batch=1000))
        seconds = time.perf_counter() - start
        peak = _rss_mb()
    return {"rows": count, "seconds": seconds, "rows_per_s": count / seconds,
            "base_rss_mb": base, "peak_rss_mb": peak, "growth_mb": peak - base}


def phase_ledger(url: str, list_name: str, claims: int) -> dict[str, float]:
    with open_store(url, migrate=False) as store:
        story = Story(id="bench-lead", section="World", headline="Benchmark")
        record = store.record_edition(Edition(list_name=list_name, date=NOW.date(),
                                              subject="Bench", preheader="", lead=story,
                                              sections=()))
        base = _current_rss_mb()
        start = time.perf_counter()
        created = store.publish_edition(record.id, message_id_domain="bench.example", now=NOW)
        publish = time.perf_counter() - start
        start = time.perf_counter()
        done = 0
        while done < claims:
            batch = store.claim_deliveries(record.id, worker_id="bench", limit=100, now=NOW,
                                           lease=timedelta(minutes=5))
            if not batch:
                break
            for claim in batch:
                store.mark_sent(claim, response="250 ok", now=NOW)
            done += len(batch)
        claim_seconds = time.perf_counter() - start
        start = time.perf_counter()
        batched = 0
        while batched < claims:
            batch = store.claim_deliveries(record.id, worker_id="bench", limit=100, now=NOW,
                                           lease=timedelta(minutes=5))
            if not batch:
                break
            store.mark_sent_many([(c, "250 ok") for c in batch], now=NOW)
            batched += len(batch)
        batch_seconds = time.perf_counter() - start
        peak = _rss_mb()
    return {"rows": created, "publish_seconds": publish, "publish_rows_per_s": created / publish,
            "claimed_and_marked": done, "claim_mark_per_s": done / claim_seconds,
            "claim_mark_many_per_s": batched / batch_seconds,
            "growth_mb": peak - base}


def _child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--phase", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


# ------------------------------------------------------------------------------- driver

def _pg_schema_url(base: str) -> tuple[str, sa.Engine, str]:
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), admin, schema


def run_backend(name: str, make_url_for: callable, csv_path: Path, args: argparse.Namespace
                ) -> None:
    url, cleanup = make_url_for("import")
    try:
        r = _child("import", url, str(csv_path))
    finally:
        cleanup()
    print(f"{name:10} import {int(r['rows']):>9,} rows: {r['rows_per_s']:>9,.0f} rows/s "
          f"({r['seconds']:.1f} s), re-import {r['reimport_rows_per_s']:>9,.0f} rows/s; "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (+{r['growth_mb']:.1f} MB over "
          f"{r['base_rss_mb']:.0f} MB)")
    url, cleanup = make_url_for("stream")
    try:
        p = _child("populate", url, str(args.rows), str(args.big))
        print(f"{name:10} bulk-loaded {args.big:,} subscribers in {p['seconds']:.1f} s")
        for list_name in ("small", "big"):
            s = _child("stream", url, list_name)
            print(f"{name:10} iter_eligible({list_name}): {int(s['rows']):>9,} rows at "
                  f"{s['rows_per_s']:>9,.0f} rows/s; peak RSS {s['peak_rss_mb']:.0f} MB "
                  f"(+{s['growth_mb']:.1f} MB)")
        led = _child("ledger", url, "big", str(args.claims))
        print(f"{name:10} publish_edition: {int(led['rows']):,} ledger rows in "
              f"{led['publish_seconds']:.1f} s ({led['publish_rows_per_s']:,.0f} rows/s); "
              f"claim(100)+mark_sent each: {led['claim_mark_per_s']:,.0f} rows/s, "
              f"claim(100)+mark_sent_many: {led['claim_mark_many_per_s']:,.0f} rows/s "
              f"(over {int(led['claimed_and_marked']):,} each); growth "
              f"+{led['growth_mb']:.1f} MB")
    finally:
        cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", nargs="+")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--pg", default=os.environ.get("DIGEST_BENCH_DATABASE_URL")
                        or os.environ.get("DIGEST_TEST_DATABASE_URL"))
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    if args.phase:
        kind, *rest = args.phase
        fn = {"import": phase_import, "populate": phase_populate, "stream": phase_stream,
              "ledger": phase_ledger}[kind]
        typed = [int(v) if v.isdigit() else v for v in rest]
        print(json.dumps(fn(*typed)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "subscribers.csv"
        write_csv(csv_path, args.rows)
        print(f"python {sys.version.split()[0]}, sqlalchemy {sa.__version__}, "
              f"{os.cpu_count()} CPUs; CSV of {args.rows:,} rows "
              f"({csv_path.stat().st_size / 2**20:.1f} MB)")

        def sqlite_url(tag: str) -> tuple[str, callable]:
            path = Path(tmp) / f"{tag}.db"
            return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True)
                                                 for p in Path(tmp).glob(f"{tag}.db*")]

        run_backend("sqlite", sqlite_url, csv_path, args)
        if args.pg and not args.skip_pg:
            def pg_url(tag: str) -> tuple[str, callable]:
                url, admin, schema = _pg_schema_url(args.pg)

                def drop() -> None:
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                    admin.dispose()
                return url, drop

            run_backend("postgresql", pg_url, csv_path, args)
        else:
            print("postgresql skipped (no --pg, DIGEST_BENCH_DATABASE_URL or "
                  "DIGEST_TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
