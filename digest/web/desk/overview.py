"""The desk's first page: each list's next send (in its timezone and in UTC), today's edition
and its status, and its last seven editions with what they delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digest.schedule import planned_jobs

from .state import desk_of

__all__ = ["RECENT", "overview_page"]

RECENT = 7


async def overview_page(request: Request) -> Response:
    """``/desk/``."""
    desk = desk_of(request)
    store = desk.store
    settings = desk.web.settings
    now = datetime.now(UTC)
    jobs = {job.list_name: job for job in planned_jobs(settings.lists.values(), now)}

    def read() -> list[dict[str, Any]]:
        out = []
        for lst in settings.lists.values():
            today = now.astimezone(lst.timezone).date()
            records = store.list_editions(lst.name, limit=RECENT)
            recent = [{"record": r, "counts": store.delivery_summary(r.id),
                       "url": desk.url(f"/editions/{r.id}"),
                       "report": desk.url(f"/editions/{r.id}/report")} for r in records]
            todays = next((e for e in recent if e["record"].date == today), None)
            nxt = jobs[lst.name].next_run if lst.name in jobs else None
            out.append({"lst": lst, "today": today, "todays": todays, "recent": recent,
                        "next_local": nxt.astimezone(lst.timezone) if nxt else None,
                        "next_utc": nxt.astimezone(UTC) if nxt else None,
                        "review": getattr(lst, "review", None),
                        "active": store.count_members(lst.name).get("active", 0)})
        return out

    lists = await run_in_threadpool(read)
    return desk.pages.render(request, "overview.html", nav="overview", lists=lists, now=now)
