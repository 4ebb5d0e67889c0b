"""Subscribers on the desk: look up one reader (status per list, sections, suppression, the
consent record of every change, what the last editions did for them), each list's size and
growth per day, and the bounce and complaint rates of its last editions against the 0.3 %
complaint rate Gmail's sender guidelines tell bulk senders never to reach.

Addresses are shown masked everywhere; a reader is named in URLs by id, never by address.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest.config import ListSettings
from digest.errors import SubscriberNotFoundError
from digest.store.schema import MEMBERSHIP_STATUSES

from ..pages import mask_address
from .charts import HALF, Bar, bar_chart, line_chart, rate_chart
from .state import desk_of

__all__ = ["GMAIL_COMPLAINT_LIMIT", "GROWTH_DAYS", "lookup", "subscriber_page",
           "subscribers_page"]

#: Gmail's sender guidelines: keep the spam rate below 0.1 % and never reach 0.3 %.
GMAIL_COMPLAINT_LIMIT = 0.003
GMAIL_COMPLAINT_TARGET = 0.001
GROWTH_DAYS = 30
RATE_EDITIONS = 10


def _chosen_list(request: Request) -> ListSettings:
    desk = desk_of(request)
    lists = desk.web.settings.lists
    wanted = request.query_params.get("list", "")
    return lists.get(wanted) or next(iter(lists.values()))


async def subscribers_page(request: Request, *, status: int = 200, error: str | None = None,
                           address: str = "") -> Response:
    """``/desk/subscribers``: the lookup form, and one list's size, growth and rates."""
    desk = desk_of(request)
    store = desk.store
    lst = _chosen_list(request)
    today = datetime.now(UTC).astimezone(lst.timezone).date()

    def read() -> dict[str, Any]:
        return {"counts": {name: store.count_members(name) for name in desk.web.settings.lists},
                "growth": store.list_growth(lst.name, days=GROWTH_DAYS, zone=lst.timezone,
                                            today=today),
                "rates": store.edition_rates(lst.name, limit=RATE_EDITIONS)}

    data = await run_in_threadpool(read)
    growth = data["growth"]
    size_chart = line_chart(
        [(d.day.strftime("%d %b"), d.size) for d in growth],
        title=f"{lst.title}: active readers per day",
        desc=f"Active readers at the end of each of the last {GROWTH_DAYS} days "
             f"({lst.timezone}); {growth[-1].size if growth else 0} today.", width=HALF)
    flow_chart = bar_chart(
        [Bar(d.day.strftime("%d %b"), (("bar-joined", d.joined), ("bar-left", d.left)))
         for d in growth],
        title=f"{lst.title}: readers who joined and left per day",
        desc=f"{sum(d.joined for d in growth)} joined and {sum(d.left for d in growth)} left "
             f"in the last {GROWTH_DAYS} days.", width=HALF)
    rates = list(reversed(data["rates"]))
    complaint_chart = rate_chart(
        [(r.date.strftime("%d %b"), r.complaint_rate) for r in rates],
        threshold=GMAIL_COMPLAINT_LIMIT, threshold_label="Gmail's limit 0.3 %",
        title=f"{lst.title}: complaint rate per edition",
        desc=f"Complaints over delivered messages for the last {len(rates)} editions, "
             "with the 0.3 % Gmail publishes as the limit for bulk senders.")
    lists = [{"name": name, "title": cfg.title, "counts": data["counts"][name],
              "active": data["counts"][name].get("active", 0),
              "url": desk.url(f"/subscribers?list={name}")}
             for name, cfg in desk.web.settings.lists.items()]
    return desk.pages.render(
        request, "subscribers.html", status=status, nav="subscribers", lst=lst, lists=lists,
        statuses=MEMBERSHIP_STATUSES, growth=growth, size_chart=size_chart,
        flow_chart=flow_chart, complaint_chart=complaint_chart, rates=data["rates"],
        limit=GMAIL_COMPLAINT_LIMIT, target=GMAIL_COMPLAINT_TARGET, error=error,
        address=address, days=GROWTH_DAYS)


async def lookup(request: Request) -> Response:
    """POST ``address``: the reader's page, or the form again saying nobody has it."""
    desk = desk_of(request)
    form = await request.form(max_files=0, max_fields=10, max_part_size=1024)
    address = str(form.get("address") or "").strip()[:320]
    found = await run_in_threadpool(desk.store.find_subscriber_id, address) if address else None
    if found is None:
        return await subscribers_page(request, status=404, address=address,
                                      error="No subscriber has that address (on any list).")
    return RedirectResponse(desk.url(f"/subscribers/{found}"), status_code=303)


async def subscriber_page(request: Request) -> Response:
    """``/desk/subscribers/{id}``: one reader on every list."""
    desk = desk_of(request)
    store = desk.store
    subscriber_id = int(request.path_params["id"])

    def read() -> dict[str, Any]:
        members = store.subscriber_memberships(subscriber_id)
        try:
            consent = store.membership_history(members[0].email) if members else []
        except SubscriberNotFoundError:
            consent = []
        return {"members": members, "consent": consent,
                "suppression": store.suppression_of(subscriber_id),
                "deliveries": store.subscriber_deliveries(subscriber_id)}

    data = await run_in_threadpool(read)
    members = data["members"]
    if not members:
        return desk.pages.message(request, "No such subscriber",
                                  "There is no subscriber with that id; look the address up "
                                  "again.", status=404,
                                  links=[("Subscribers", desk.url("/subscribers"))])
    masked = mask_address(members[0].email)
    rows = []
    for m in members:
        lst = desk.web.configured(m.list_name)
        rows.append({"member": m, "title": lst.title if lst else m.list_name,
                     "sections": sorted(m.sections) if m.sections is not None else None,
                     "edition_url": None})
    return desk.pages.render(
        request, "subscriber.html", nav="subscribers", masked=masked, rows=rows,
        suppression=data["suppression"], deliveries=data["deliveries"], consent=data["consent"],
        subscriber_id=subscriber_id,
        edition_url=lambda eid: desk.url(f"/editions/{eid}"))
