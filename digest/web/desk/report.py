"""The delivery report of a published edition: counts by state, retries waiting and when they
run, failures grouped by reason (addresses masked), the suppressions it caused, and messages
per minute as a chart; it refreshes itself while rows are still waiting."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..pages import mask_address
from .charts import Bar, bar_chart
from .editions import load_record
from .state import desk_of

__all__ = ["MAX_BARS", "REFRESH_SECONDS", "minute_bars", "report_page"]

#: Seconds between refreshes of a report while its edition is being delivered.
REFRESH_SECONDS = 10
#: Most bars the per-minute chart draws; a longer send is shown in wider buckets.
MAX_BARS = 120
#: Fewest minutes the chart spans.
MIN_BARS = 10
#: Suppressions listed by address (the rest are counted).
SHOWN = 50
_STATES = ("queued", "sending", "sent", "sent_unconfirmed", "failed", "expired", "skipped")


def minute_bars(timeline: list[tuple[datetime, dict[str, int]]], zone: Any) -> tuple[
        list[Bar], int]:
    """Bars of sent and failed (+expired) messages from the store's per-minute counts, with
    empty minutes filled in, from a minute before the first outcome and over at least
    :data:`MIN_BARS` minutes; buckets widen so there are at most :data:`MAX_BARS`.

    :returns: the bars and the bucket width in minutes.
    """
    if not timeline:
        return [], 1
    # A minute of room before the first outcome, and at least MIN_BARS minutes in all, so
    # a send that took one minute is one bar on a time axis, not one bar filling the chart.
    first, last = timeline[0][0] - timedelta(minutes=1), timeline[-1][0]
    span = max(MIN_BARS, int((last - first).total_seconds() // 60) + 1)
    width = max(1, math.ceil(span / MAX_BARS))
    counts: dict[int, list[int]] = {}
    for moment, by_status in timeline:
        slot = int((moment - first).total_seconds() // 60) // width
        row = counts.setdefault(slot, [0, 0])
        row[0] += by_status.get("sent", 0) + by_status.get("sent_unconfirmed", 0)
        row[1] += by_status.get("failed", 0) + by_status.get("expired", 0)
    bars = []
    for slot in range(math.ceil(span / width)):
        start = (first + timedelta(minutes=slot * width)).astimezone(zone)
        sent, failed = counts.get(slot, [0, 0])
        bars.append(Bar(start.strftime("%H:%M"), (("bar-sent", sent), ("bar-failed", failed))))
    return bars, width


def _masked(addresses: tuple[str, ...]) -> list[str]:
    return [mask_address(a) for a in addresses]


async def report_page(request: Request) -> Response:
    """``/desk/editions/{id}/report``."""
    desk = desk_of(request)
    store = desk.store
    record = await load_record(desk, request)
    lst = desk.web.configured(record.list_name)
    zone = lst.timezone if lst is not None else None

    def read() -> dict[str, Any]:
        return {"summary": store.delivery_summary(record.id),
                "retry": store.retry_state(record.id),
                "groups": store.failure_groups(record.id),
                "caused": store.suppressions_caused(record.id),
                "timeline": store.delivery_timeline(record.id)}

    data = await run_in_threadpool(read)
    summary: dict[str, int] = data["summary"]
    bars, width = minute_bars(data["timeline"], zone)
    total = sum(summary.values())
    live = bool(summary.get("queued") or summary.get("sending"))
    sent_minutes = [sum(v for css, v in b.values if css == "bar-sent") for b in bars]
    unit = "minute" if width == 1 else f"{width} minutes"
    chart = bar_chart(
        bars, title=f"Messages per {unit}",
        desc=(f"{summary.get('sent', 0) + summary.get('sent_unconfirmed', 0)} messages sent and "
              f"{summary.get('failed', 0) + summary.get('expired', 0)} failed, per {unit} "
              f"({zone or 'UTC'}); the busiest {unit} sent {max(sent_minutes, default=0)}."))
    groups = [{"status": g.status, "reason": g.reason or "no reason recorded",
               "count": g.count, "example": g.example, "addresses": _masked(g.addresses),
               "more": g.count - len(g.addresses)} for g in data["groups"]]
    caused = [{"reason": c.reason, "address": mask_address(c.email), "at": c.created_at,
               "detail": c.detail} for c in data["caused"]]
    timeline = data["timeline"]
    return desk.pages.render(
        request, "report.html", nav="editions", record=record, lst=lst, zone=zone,
        states=[(s, summary.get(s, 0)) for s in _STATES
                if s != "sent_unconfirmed" or summary.get(s)], total=total, retry=data["retry"],
        groups=groups, caused=caused, chart=chart, has_chart=bool(bars), live=live,
        refresh=REFRESH_SECONDS, started=timeline[0][0] if timeline else None,
        finished=timeline[-1][0] if timeline else None,
        peak=max(sent_minutes, default=0), bucket=width, shown=SHOWN,
        edition_url=desk.url(f"/editions/{record.id}"))
