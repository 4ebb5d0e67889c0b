"""The desk's first page: each list's next send (in its timezone and in UTC), its review
mode, today's edition and its status, and its last seven editions with what they delivered."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digest.slots import SendSchedule, Slot
from digest.store import EditionRecord

from .state import desk_of

__all__ = ["RECENT", "overview_page"]

RECENT = 7


async def overview_page(request: Request) -> Response:
    """``/desk/``."""
    desk = desk_of(request)
    store = desk.store
    settings = desk.web.settings
    now = datetime.now(UTC)

    def read() -> list[dict[str, Any]]:
        out = []
        for lst in settings.lists.values():
            schedule = SendSchedule(lst)
            today = now.astimezone(lst.timezone).date()
            records = store.list_editions(lst.name, limit=RECENT)
            counts = store.delivery_counts([r.id for r in records])
            recent = [{"record": r, "counts": counts.get(r.id, {}),
                       "url": desk.url(f"/editions/{r.id}"),
                       "report": desk.url(f"/editions/{r.id}/report")} for r in records]
            todays = store.find_edition(lst.name, today)
            upcoming = _next_send(schedule, now, today, todays)
            nxt = upcoming.due if upcoming else None
            slot = schedule.slot(today)
            out.append({
                "lst": lst, "today": today, "schedule": schedule.describe(),
                "todays": todays, "todays_url": desk.url(f"/editions/{todays.id}")
                if todays else None,
                "todays_report": desk.url(f"/editions/{todays.id}/report") if todays else None,
                "sends_today": today.weekday() in schedule.weekdays,
                "due_today": slot.due, "closes_today": slot.closes, "opens_today": slot.opens,
                "moment": ("before" if now < slot.opens else "open" if now < slot.closes
                           else "closed"), "recent": recent,
                "next_local": nxt.astimezone(lst.timezone) if nxt else None,
                "next_utc": nxt.astimezone(UTC) if nxt else None,
                "next_is_due": nxt is not None and nxt <= now,
                "next_closes": upcoming.closes if upcoming else None,
                "review": lst.review, "draft_url": desk.url(f"/lists/{lst.name}/draft"),
                "active": store.count_members(lst.name).get("active", 0)})
        return out

    lists = await run_in_threadpool(read)
    return desk.pages.render(request, "overview.html", nav="overview", lists=lists, now=now)


def _next_send(schedule: SendSchedule, now: datetime, today: date,
               todays: EditionRecord | None) -> Slot | None:
    """When the list next sends: the send time of the first slot whose window has not
    closed (today's, past its send time but still in its window, is due now), skipping
    today's when today's edition went out or will not go out (held, cancelled, missed)."""
    done = todays is not None and (
        todays.published or todays.status in ("held", "cancelled", "missed"))
    return next((s for s in schedule.slots_around(now)
                 if s.closes > now and not (done and s.day == today)), None)
