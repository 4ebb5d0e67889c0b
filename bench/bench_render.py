"""Render benchmark: build a variant once (Jinja2 + Premailer) vs fill it per subscriber.

For the seed edition and a 10 sections x 10 teasers edition, measures:

* build (cold)  — the first variant of a fresh Renderer (template compile, cssutils parse);
* build (warm)  — a variant built again by a fresh cache (templates compiled, CSS cache warm);
* fill          — ``RenderedVariant.fill`` per subscriber (slot values + string joins);
* full          — ``render_full``'s path per subscriber (Jinja2 + Premailer every time).

Goals (performance research §3): per-edition fixed cost <= 1 s; per-subscriber fill cost a
tiny fraction of a full render (we ask >= 100x cheaper). Exit status 1 when a goal is missed.

    python bench/bench_render.py [--subscribers 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from render_editions import (
    large_edition,
    make_renderer,
    person,
    seed_edition,
)


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench(name: str, edition, subscribers: int) -> bool:
    cold_renderer = make_renderer()
    start = time.perf_counter()
    variant = cold_renderer.variant(edition)
    cold = time.perf_counter() - start

    warm = statistics.median(timed(lambda: make_renderer().variant(edition), 5))
    people = [person(f"Reader {i}", token=f"tok{i:06d}") for i in range(subscribers)]
    start = time.perf_counter()
    for p in people:
        variant.fill(p)
    fill = (time.perf_counter() - start) / subscribers
    full = statistics.median(timed(lambda: cold_renderer.render_for(edition, people[0]), 5))
    html, _ = variant.fill(people[0])
    print(f"{name:>6}: html {len(html.encode()) / 1024:5.1f} KB (transmitted "
          f"{variant.html_size / 1024:5.1f} KB, {len(variant.dropped)} dropped) | build cold "
          f"{cold * 1000:6.1f} ms, warm {warm * 1000:6.1f} ms | fill {fill * 1e6:6.1f} us/subscriber"
          f" | full render {full * 1000:6.1f} ms/subscriber | full/fill {full / fill:7.0f}x")
    ok = warm <= 1.0 and cold <= 2.0 and full / fill >= 100
    if not ok:
        print(f"{name}: goal missed (warm build <= 1 s, cold <= 2 s, fill >= 100x cheaper)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    args = parser.parse_args()
    results = [bench("seed", seed_edition(), args.subscribers),
               bench("10x10", large_edition(summaries=False), args.subscribers),
               bench("10x10+", large_edition(), args.subscribers)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
