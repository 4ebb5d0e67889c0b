"""The desk's pages and actions through the ASGI client: overview, edition (frames, parts,
a reader's variant, size, client support, warnings, tests to a loopback SMTP server),
delivery report and subscribers; addresses masked everywhere."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from desk_support import DESK, add_editor, csrf_of, desk_client, desk_settings, sign_in
from render_editions import large_edition, seed_edition
from smtp_servers import smtp_server
from test_edition import make_list
from test_web import KEY

from digest.config import Settings, load_settings
from digest.models import SkippedItem
from digest.slots import SendSchedule
from digest.store import EditionRecord, Store, open_store
from digest.web.desk.overview import _next_send

READER = "ana.lopez@example.org"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return desk_settings(tmp_path)


@pytest.fixture
def store(settings: Settings):
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as opened:
        add_editor(opened)
        yield opened


@pytest.fixture
async def desk(settings: Settings, store: Store):
    async with desk_client(settings, store) as c:
        assert (await sign_in(c)).status_code == 303
        yield c


def masked_only(html: str, *addresses: str) -> None:
    """No full address appears on the page."""
    for address in addresses:
        assert address not in html
        assert address.split("@")[0] not in html


def publish(store: Store, edition=None) -> int:
    record = store.record_edition(edition or seed_edition())
    store.publish_edition(record.id, message_id_domain="news.example.org",
                          now=datetime.now(UTC) - timedelta(minutes=30))
    return record.id


def deliver_some(store: Store, edition_id: int) -> dict[str, int]:
    """Ledger outcomes over three minutes: sends, a hard refusal, a deferral."""
    start = datetime.now(UTC) - timedelta(minutes=20)
    claims = store.claim_deliveries(edition_id, worker_id="w", limit=100, now=start,
                                    lease=timedelta(hours=1))
    sent = [(c, "250 ok") for c in claims[2:]]
    third = len(sent) // 3
    for minute, chunk in enumerate((sent[:third], sent[third:2 * third], sent[2 * third:])):
        store.mark_sent_many(chunk, now=start + timedelta(minutes=minute, seconds=5))
    store.mark_failed(claims[0], code=550, suppress=True,
                      error="5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
                      now=start + timedelta(minutes=1, seconds=30))
    store.mark_deferred(claims[1], error="451 4.7.1 Greylisted",
                        retry_at=datetime.now(UTC) + timedelta(minutes=9), now=start)
    return {"sent": len(sent), "failed": 1, "queued": 1}


# --------------------------------------------------------------------------- overview


def test_the_overview_next_send_is_today_while_its_window_is_open() -> None:
    """Past the send time but inside the window, with nothing sent, today's edition is
    still the next send (due now); once it went out, or an editor held, cancelled or missed
    it, the next is tomorrow's."""
    lst = make_list(send_time=time(7), send_window=timedelta(hours=3))
    schedule = SendSchedule(lst)
    today = date(2026, 11, 30)
    now = datetime(2026, 11, 30, 8, 15, tzinfo=UTC)  # 08:15 in London: due at 07:00
    due = _next_send(schedule, now, today, None)
    assert due is not None and due.day == today
    assert due.due == datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert due.closes == datetime(2026, 11, 30, 10, tzinfo=UTC)
    after = _next_send(schedule, datetime(2026, 11, 30, 10, 0, 1, tzinfo=UTC), today, None)
    assert after is not None and after.day == date(2026, 12, 1)

    def record(status: str) -> EditionRecord:
        return EditionRecord(id=1, list_name="daily", date=today, seq=1, subject="s",
                             created_at=now, published_at=None, payload={}, status=status)

    for status in ("held", "cancelled", "missed"):
        nxt = _next_send(schedule, now, today, record(status))
        assert nxt is not None and nxt.day == date(2026, 12, 1), status
    for status in ("draft", "approved"):
        nxt = _next_send(schedule, now, today, record(status))
        assert nxt is not None and nxt.day == today, status


async def test_overview_shows_each_list_its_next_send_and_its_editions(desk, store):
    for i in range(3):
        store.add_subscriber("daily", f"reader{i}@example.org")
    edition_id = publish(store)
    deliver_some(store, edition_id)
    page = await desk.get(f"{DESK}/")
    assert page.status_code == 200
    text = page.text
    assert "Morning Briefing" in text and "Weekend Reads" in text
    assert re.search(r"Next send <strong>\w{3} \d{2} \w{3}, 07:00</strong> Europe/London · "
                     r"0\d:00 UTC", text), text
    assert f'href="https://news.example.org/digest/desk/editions/{edition_id}"' in text
    assert seed_edition().subject in text
    row = re.search(r"<tr>\s*<td class=\"mono\"><a href=\"[^\"]+\">2025-08-25</a></td>.*?</tr>",
                    text, re.DOTALL)
    assert row is not None
    cells = re.findall(r'<td class="num">(?:<span class="over">)?([\d\u202f]+)', row.group(0))
    assert cells == ["1", "1", "0"]  # sent, failed, expired
    assert "Build today's draft" in text  # nothing stored for today yet
    assert "review <strong>off</strong>" in text


# --------------------------------------------------------------------------- edition page


async def test_edition_page_frames_the_email_in_sandboxed_iframes(desk, store):
    edition_id = publish(store, large_edition())
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    assert page.status_code == 200
    frames = re.findall(r"<iframe ([^>]*)>", page.text)
    assert len(frames) == 2
    for attrs in frames:
        assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in attrs
        assert "allow-scripts" not in attrs and "allow-same-origin" not in attrs
    srcs = [re.search(r'src="([^"]+)"', a).group(1).replace("&amp;", "&") for a in frames]
    assert srcs == [f"https://news.example.org/digest/desk/editions/{edition_id}/frame"
                    f"?view={view}&scheme=light" for view in ("desktop", "phone")]
    assert "?scheme=dark" in page.text
    # Size against the budget and the clip, and what the budget left out of this variant.
    assert re.search(r"<strong>\d+\.\d KB</strong> of HTML, against our budget of 90\.0 KB; "
                     r"Gmail clips at 102\.0 KB", page.text)
    assert "teasers were left out to fit" in page.text
    # Client support: the template's own guarded CSS is fine, what remains is listed.
    assert "Email client support" in page.text
    # The plaintext part, escaped, in the page.
    assert '<pre class="plaintext">' in page.text and "MORNING LEDGER" in page.text


async def test_frames_force_light_or_dark_and_keep_links_out_of_the_frame(desk, store):
    edition_id = publish(store)
    base = f"{DESK}/editions/{edition_id}/frame?view=desktop"
    light = await desk.get(base + "&scheme=light")
    dark = await desk.get(base + "&scheme=dark")
    for response in (light, dark):
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in policy and "sandbox" in policy
        assert "script-src" not in policy  # default-src 'none': no script at all
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert '<base target="_blank">' in response.text
        assert "prefers-color-scheme" not in response.text
    assert "@media all" in dark.text and "@media not all" not in dark.text
    assert "@media not all" in light.text


async def test_plaintext_and_eml_download(desk, store):
    edition_id = publish(store)
    text = await desk.get(f"{DESK}/editions/{edition_id}/text")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert seed_edition().lead.headline in text.text
    eml = await desk.get(f"{DESK}/editions/{edition_id}/eml")
    assert eml.headers["content-type"] == "message/rfc822"
    assert eml.headers["content-disposition"] == (
        f'attachment; filename="daily-2025-08-25-edition-{edition_id}.eml"')
    msg = email.message_from_bytes(eml.content, policy=email.policy.default)
    assert msg["To"] == "preview@news.example.org"
    assert msg["Subject"] == seed_edition().subject
    assert msg.get_body(preferencelist=("html",)) is not None
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_readers_variant_by_address_never_puts_the_address_in_a_url(desk, store):
    sid = store.add_subscriber("daily", READER, name="Ana", sections=["World"])
    edition_id = publish(store)
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    response = await desk.post(f"{DESK}/editions/{edition_id}/variant?scheme=dark",
                               data={"csrf": csrf_of(page.text), "address": READER.upper()})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == (f"https://news.example.org/digest/desk/editions/{edition_id}"
                        f"?scheme=dark&subscriber={sid}")
    page = await desk.get(location)
    assert "As a•••@e•••.org gets it · World ·" in page.text
    masked_only(page.text, READER)
    frame = await desk.get(f"{DESK}/editions/{edition_id}/frame?view=phone&scheme=dark"
                           f"&subscriber={sid}")
    assert "Hi Ana," in frame.text
    assert "/digest/unsubscribe/" in frame.text  # their own signed links
    assert ">World<" in frame.text and ">Sports<" not in frame.text
    eml = await desk.get(f"{DESK}/editions/{edition_id}/eml?subscriber={sid}")
    assert email.message_from_bytes(eml.content, policy=email.policy.default)["To"] == \
        f"Ana <{READER}>"


async def test_an_unknown_reader_is_one_sentence(desk, store):
    edition_id = publish(store)
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    response = await desk.post(f"{DESK}/editions/{edition_id}/variant",
                               data={"csrf": csrf_of(page.text), "address": "who@example.org"})
    assert response.status_code == 400
    assert "No reader of daily has that address" in response.text
    # A subscriber id of another list (or none) shows everyone's version.
    other = store.add_subscriber("weekend", "w@example.org")
    page = await desk.get(f"{DESK}/editions/{edition_id}?subscriber={other}")
    assert "As a reader of every section gets it" in page.text


async def test_source_warnings_are_listed(desk, store):
    edition = seed_edition()
    from dataclasses import replace

    edition = replace(edition, skipped=(SkippedItem("/srv/feeds/news.rss", 14,
                                                    "the item has no title"),))
    edition_id = publish(store, edition)
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    assert "news.rss:14" in page.text and "the item has no title" in page.text
    assert "/srv/feeds" not in page.text


async def test_send_a_test_to_any_addresses_through_the_relay(tmp_path):
    async with smtp_server() as srv:
        settings = desk_settings(tmp_path, textwrap.dedent(f"""
            [[relays]]
            name = "local"
            host = "127.0.0.1"
            port = {srv.port}
            security = "none"
            """))
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with open_store(settings.database_url) as relay_store:
            add_editor(relay_store)
            edition_id = publish(relay_store)
            async with desk_client(settings, relay_store) as c:
                await sign_in(c)
                page = await c.get(f"{DESK}/editions/{edition_id}")
                response = await c.post(f"{DESK}/editions/{edition_id}/test", data={
                    "csrf": csrf_of(page.text),
                    "addresses": "ed@example.org, Copy@Example.org\nthird@example.org; "
                                 "ed@example.org"})
                assert response.status_code == 303
                assert response.headers["location"].endswith("?notice=test-sent")
                page = await c.get(response.headers["location"])
                assert "The test copies went out" in page.text
                assert relay_store.delivery_summary(edition_id) == {}  # no ledger change
                note = relay_store.edition_events(edition_id)[-1]
                assert (note.actor, note.cause) == (
                    "editor:ana", "test sent to 3 address(es) from the desk")
    received = {r for m in srv.handler.received for r in m.rcpt_tos}
    assert received == {"ed@example.org", "Copy@example.org", "third@example.org"}
    msg = email.message_from_bytes(srv.handler.received[0].data, policy=email.policy.default)
    assert msg["Subject"] == "[TEST] " + seed_edition().subject


async def test_a_test_to_bad_addresses_sends_nothing(desk, store, settings):
    edition_id = publish(store)
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    for addresses, sentence in (
            ("", "Type at least one address"),
            ("not-an-address", "The address is not valid"),
            (", ".join(f"r{i}@example.org" for i in range(21)), "at most 20 addresses")):
        response = await desk.post(f"{DESK}/editions/{edition_id}/test",
                                   data={"csrf": csrf_of(page.text), "addresses": addresses})
        assert response.status_code == 400
        assert sentence in response.text
    assert not settings.maildir.exists()


async def test_a_test_when_the_relay_is_down_says_so(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = desk_settings(tmp_path, textwrap.dedent(f"""
        [[relays]]
        name = "down"
        host = "127.0.0.1"
        port = {dead}
        security = "none"
        timeout = "2s"
        """))
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        add_editor(store)
        edition_id = publish(store)
        async with desk_client(settings, store) as c:
            await sign_in(c)
            page = await c.get(f"{DESK}/editions/{edition_id}")
            response = await c.post(f"{DESK}/editions/{edition_id}/test", data={
                "csrf": csrf_of(page.text), "addresses": "ed@example.org"})
    assert response.status_code == 503
    assert "The test could not be sent" in response.text
    assert "Traceback" not in response.text


# --------------------------------------------------------------------------- report


async def test_report_counts_failures_suppressions_and_chart(desk, store):
    for i in range(12):
        store.add_subscriber("daily", f"reader{i}@example.org")
    edition_id = publish(store)
    counts = deliver_some(store, edition_id)
    page = await desk.get(f"{DESK}/editions/{edition_id}/report")
    assert page.status_code == 200
    text = page.text
    stats = {label: int(n) for n, label in re.findall(
        r'<span class="n">(\d+)</span><span class="l">(\w+)</span>', text)}
    assert stats == {"queued": counts["queued"], "sending": 0, "sent": counts["sent"],
                     "failed": 1, "expired": 0, "skipped": 0}
    # A retry waits: how many and when.
    assert re.search(r"<dt>Retries waiting</dt><dd>1</dd>", text)
    assert re.search(r"<dt>Next retry due</dt><dd>\d\d:\d\d:\d\d Europe/London · "
                     r"\d\d:\d\d UTC</dd>", text)
    # Failures grouped by reason, addresses masked.
    assert "smtp 550" in text and "Recipient address rejected" in text
    # The relay's words quote an address: masked too.
    assert "gone@example.net" not in text and "g•••@e•••.net" in text
    assert "r•••@e•••.org" in text
    masked_only(text, *(f"reader{i}@example.org" for i in range(12)))
    # The suppression that refusal caused.
    assert "Suppressions this edition caused" in text
    assert re.search(r"<td>r•••@e•••\.org</td><td><span class=\"badge bounced\">", text)
    # The chart: one bar per minute, sent and failed.
    for size in ("wide", "narrow"):  # drawn for a page and for a phone
        svg = re.search(rf"<svg class=\"chart bars {size}\".*?</svg>", text,
                        re.DOTALL).group(0)
        assert svg.count('class="bar-sent"') == 3 and svg.count('class="bar-failed"') == 1
        assert "<title>Messages per minute</title>" in svg
    # Rows still waiting: the page refreshes itself (script, or meta refresh without it).
    assert 'data-refresh="10"' in text
    assert '<noscript><meta http-equiv="refresh" content="10"></noscript>' in text


async def test_a_finished_report_stops_refreshing(desk, store):
    store.add_subscriber("daily", "one@example.org")
    edition_id = publish(store)
    claims = store.claim_deliveries(edition_id, worker_id="w", limit=5, now=datetime.now(UTC),
                                    lease=timedelta(minutes=5))
    store.mark_sent(claims[0], response="250 ok", now=datetime.now(UTC))
    page = await desk.get(f"{DESK}/editions/{edition_id}/report")
    assert "data-refresh" not in page.text and "Every message has an outcome." in page.text


# --------------------------------------------------------------------------- subscribers


async def test_look_up_a_reader_and_see_them_on_every_list(desk, store):
    sid = store.add_subscriber("daily", READER, name="Ana", sections=["World", "Sports"])
    store.add_subscriber("weekend", READER)
    store.set_status("weekend", READER, "unsubscribed")
    edition_id = publish(store)
    page = await desk.get(f"{DESK}/subscribers")
    response = await desk.post(f"{DESK}/subscribers",
                               data={"csrf": csrf_of(page.text), "address": f" {READER} "})
    assert response.status_code == 303
    assert response.headers["location"] == (
        f"https://news.example.org/digest/desk/subscribers/{sid}")
    reader = await desk.get(response.headers["location"])
    text = reader.text
    assert "<h1 class=\"plain\">a•••@e•••.org</h1>" in text
    masked_only(text, READER)
    assert re.search(r"Morning Briefing</td>\s*<td><span class=\"badge active\">", text)
    assert re.search(r"Weekend Reads</td>\s*<td><span class=\"badge unsubscribed\">", text)
    assert "Sports, World" in text
    assert f'/digest/desk/editions/{edition_id}"' in text  # what the last edition did
    # The consent record: how each membership began and changed, and who did it.
    consent = re.search(r'id="consent-head".*?</section>', text, re.DOTALL).group(0)
    rows = re.findall(r"<tr>\s*<td class=\"mono\">.*?</tr>", consent, re.DOTALL)
    assert len(rows) == 3
    assert re.search(r"weekend</td>\s*<td><span class=\"badge active\">active</span> → "
                     r"<span class=\"badge unsubscribed\">", consent)
    assert "editor · " in consent


async def test_looking_up_nobody(desk):
    page = await desk.get(f"{DESK}/subscribers")
    response = await desk.post(f"{DESK}/subscribers",
                               data={"csrf": csrf_of(page.text), "address": "x@example.org"})
    assert response.status_code == 404
    assert "No subscriber has that address" in response.text
    assert (await desk.get(f"{DESK}/subscribers/99999")).status_code == 404


async def test_list_growth_and_complaint_rates_with_gmails_threshold(desk, store):
    sids = [store.add_subscriber("daily", f"reader{i}@example.org") for i in range(300)]
    edition_id = publish(store)
    claims = store.claim_deliveries(edition_id, worker_id="w", limit=1000,
                                    now=datetime.now(UTC), lease=timedelta(minutes=5))
    store.mark_sent_many([(c, "250") for c in claims], now=datetime.now(UTC))
    by_sid = {c.subscriber_id: c.delivery_id for c in claims}
    for n, sid in enumerate(sids[:2]):  # 2 complaints of 300 delivered: 0.667 %
        store.record_bounce(f"complaint-{n}", kind="complaint", subscriber_id=sid,
                            delivery_id=by_sid[sid], status=None, reason="abuse")
    page = await desk.get(f"{DESK}/subscribers?list=daily")
    text = page.text
    assert "Morning Briefing · 298" in text  # two complainers left the list
    assert "<title>Morning Briefing: active readers per day</title>" in text
    assert "Gmail&#39;s limit 0.3 %" in text
    assert 'class="bar-rate over"' in text
    assert re.search(r'<td class="num over">0\.667 %</td>', text)
    assert "2 joined" not in text and "300 joined and 2 left" in text


# --------------------------------------------------------------------------- actions


def draft(store: Store, edition=None) -> int:
    return store.record_edition(edition or seed_edition(), actor="test").id


async def confirm_and_post(desk, edition_id: int, action: str, reason: str = "") -> tuple[
        object, object]:
    """Open the action's confirmation page and press its button."""
    page = await desk.get(f"{DESK}/editions/{edition_id}/confirm/{action}")
    assert page.status_code == 200, page.text
    response = await desk.post(f"{DESK}/editions/{edition_id}/{action}", data={
        "csrf": csrf_of(page.text), "confirmed": "yes", "reason": reason})
    return page, response


def tomorrows(store: Store) -> int:
    """A draft dated tomorrow (London): its send window is still ahead, so it can be
    approved (an edition whose window ended is missed instead)."""
    import dataclasses
    from zoneinfo import ZoneInfo

    tomorrow = datetime.now(UTC).astimezone(ZoneInfo("Europe/London")).date() + timedelta(1)
    return draft(store, dataclasses.replace(seed_edition(), date=tomorrow))


async def test_approve_hold_and_cancel_are_confirmed_and_recorded_with_the_editor(desk, store):
    edition_id = tomorrows(store)
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    buttons = re.findall(r'<a class="button[^"]*" href="[^"]*/confirm/(\w+)">', page.text)
    assert buttons == ["approve", "hold", "cancel", "send"]
    confirm, response = await confirm_and_post(desk, edition_id, "approve", "checked  twice")
    assert "Approve this edition?" in confirm.text and 'name="reason"' in confirm.text
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/editions/{edition_id}?notice=approve")
    assert store.get_edition(edition_id).status == "approved"
    _, response = await confirm_and_post(desk, edition_id, "hold")
    assert store.get_edition(edition_id).status == "held"
    _, response = await confirm_and_post(desk, edition_id, "cancel", "wrong lead")
    assert store.get_edition(edition_id).status == "cancelled"
    moves = [(e.old_status, e.new_status, e.actor, e.cause)
             for e in store.edition_events(edition_id)][1:]
    assert moves == [("draft", "approved", "editor:ana", "checked twice"),
                     ("approved", "held", "editor:ana", "hold on the desk by ana"),
                     ("held", "cancelled", "editor:ana", "wrong lead")]
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    assert "/confirm/" not in page.text  # a cancelled edition offers nothing
    assert "wrong lead" in page.text and "editor:ana" in page.text  # its history


async def test_approving_after_the_send_window_says_it_is_missed(desk, store):
    edition_id = draft(store)  # of 2025-08-25: its window ended long ago
    _, response = await confirm_and_post(desk, edition_id, "approve")
    assert response.status_code == 409
    assert (f"Edition {edition_id} of daily for 2025-08-25 is missed, not approved: its send "
            "window ended at 2025-08-25 10:00 Europe/London") in response.text
    assert "--force" in response.text and "Traceback" not in response.text
    assert store.get_edition(edition_id).status == "missed"


async def test_a_move_needs_the_confirmation_and_the_right_status(desk, store):
    edition_id = draft(store)
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    token = csrf_of(page.text)
    unconfirmed = await desk.post(f"{DESK}/editions/{edition_id}/approve", data={"csrf": token})
    assert unconfirmed.status_code == 303
    assert unconfirmed.headers["location"].endswith(f"/editions/{edition_id}/confirm/approve")
    assert store.get_edition(edition_id).status == "draft"
    # Force is only for held or missed editions; nothing happens to a draft.
    response = await desk.post(f"{DESK}/editions/{edition_id}/force",
                               data={"csrf": token, "confirmed": "yes"})
    assert response.status_code == 409 and "cannot be done" in response.text
    assert (await desk.get(f"{DESK}/editions/{edition_id}/confirm/force")).status_code == 409
    assert (await desk.post(f"{DESK}/editions/{edition_id}/nonsense",
                            data={"csrf": token, "confirmed": "yes"})).status_code == 409
    assert store.get_edition(edition_id).status == "draft"
    assert len(store.edition_events(edition_id)) == 1


async def test_send_now_publishes_and_delivers_in_the_background(tmp_path):
    async with smtp_server() as srv:
        settings = desk_settings(tmp_path, textwrap.dedent(f"""
            [[relays]]
            name = "local"
            host = "127.0.0.1"
            port = {srv.port}
            security = "none"
            """))
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with open_store(settings.database_url) as store:
            add_editor(store)
            for i in range(5):
                store.add_subscriber("daily", f"reader{i}@example.org")
            edition_id = draft(store)
            async with desk_client(settings, store) as c:
                await sign_in(c)
                _, response = await confirm_and_post(c, edition_id, "send", "breaking news")
                assert response.status_code == 303
                assert response.headers["location"].endswith(f"/editions/{edition_id}/report")
                desk_state = c.desk  # type: ignore[attr-defined]
                await asyncio.wait_for(asyncio.gather(*desk_state.sends), 30)
                assert store.get_edition(edition_id).status == "sent"
                assert store.delivery_summary(edition_id) == {"sent": 5}
                report = await c.get(response.headers["location"])
                assert "data-refresh" not in report.text
            events = store.edition_events(edition_id)
            assert (events[1].old_status, events[1].new_status, events[1].actor,
                    events[1].cause) == ("draft", "sending", "editor:ana", "breaking news")
    assert sorted(r for m in srv.handler.received for r in m.rcpt_tos) == [
        f"reader{i}@example.org" for i in range(5)]


async def test_force_sends_a_held_edition_and_says_so(desk, store, settings):
    store.add_subscriber("daily", "one@example.org")
    edition_id = draft(store)
    store.set_edition_status(edition_id, "held", actor="scheduler", cause="a source failed")
    page = await desk.get(f"{DESK}/editions/{edition_id}")
    assert re.findall(r'/confirm/(\w+)">', page.text) == ["approve", "cancel", "force"]
    confirm, response = await confirm_and_post(desk, edition_id, "force")
    assert "overrides the hold" in confirm.text
    assert response.status_code == 303
    await asyncio.wait_for(asyncio.gather(*desk.desk.sends), 30)
    assert store.get_edition(edition_id).published
    event = store.edition_events(edition_id)[-2]
    assert (event.old_status, event.new_status, event.actor) == ("held", "sending", "editor:ana")
    assert settings.maildir.exists()  # the embedded server stored it


async def test_send_now_with_nobody_to_send_to_says_so(desk, store):
    edition_id = draft(store)
    _, response = await confirm_and_post(desk, edition_id, "send")
    assert response.status_code == 409
    assert "has no active subscribers" in response.text
    assert store.get_edition(edition_id).status == "draft"


async def test_build_todays_draft_from_the_overview(tmp_path):
    sources = f'sources = ["{Path(__file__).parent / "fixtures" / "pages" / "seed.txt"}"]'
    settings = desk_settings(tmp_path)
    config = settings.path.read_text()
    settings.path.write_text(config.replace('lead_section = "Politics"',
                                            f'lead_section = "Politics"\n{sources}'))
    settings = load_settings(settings.path, env={"DIGEST_SECRET_KEY": KEY})
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        add_editor(store)
        async with desk_client(settings, store) as c:
            await sign_in(c)
            overview = await c.get(f"{DESK}/")
            response = await c.post(f"{DESK}/lists/daily/draft",
                                    data={"csrf": csrf_of(overview.text)})
            assert response.status_code == 303
            assert response.headers["location"].endswith("?notice=drafted")
            page = await c.get(response.headers["location"])
            assert "Today&#39;s draft is built and stored" in page.text
            (record,) = store.list_editions("daily")
            assert record.status == "draft"
            assert store.edition_events(record.id)[0].actor == "editor:ana"
            again = await c.post(f"{DESK}/lists/daily/draft",
                                 data={"csrf": csrf_of(overview.text)})
            assert again.headers["location"].endswith(f"/editions/{record.id}"
                                                      "?notice=already-stored")
            assert (await c.post(f"{DESK}/lists/nosuch/draft",
                                 data={"csrf": csrf_of(overview.text)})).status_code == 404


async def test_a_day_nothing_was_built_for_shows_its_history_only(desk, store):
    from datetime import date

    from digest.models import Edition

    placeholder = Edition(list_name="daily", date=date(2026, 3, 2), subject="", preheader="",
                          lead=None, sections=())
    record = store.record_edition(placeholder, actor="scheduler", cause="no source could be "
                                  "read before the send window ended", status="missed")
    page = await desk.get(f"{DESK}/editions/{record.id}")
    assert page.status_code == 200
    assert "No edition was built" in page.text and "no source could be read" in page.text
    assert "<iframe" not in page.text
    for part in ("frame?view=phone", "text", "eml"):
        response = await desk.get(f"{DESK}/editions/{record.id}/{part}")
        assert response.status_code == 404, part
    overview = await desk.get(f"{DESK}/")
    assert "(never built)" in overview.text


def test_charts_come_wide_and_narrow_with_room_for_their_labels() -> None:
    from digest.web.desk.charts import HALF, NARROW, Bar, bar_chart, line_chart, rate_chart

    charts = [
        bar_chart([Bar(f"{h:02d}:00", (("bar-sent", 12000.0),)) for h in range(24)],
                  title="t", desc="d"),
        line_chart([(f"{d:02d} Nov", 123456.0) for d in range(1, 31)], title="t", desc="d",
                   width=HALF),
        rate_chart([("01 Nov", 0.0025), ("02 Nov", None)], threshold=0.003, title="t",
                   desc="d", threshold_label="Gmail's limit 0.3 %"),
    ]
    for chart in charts:
        assert chart.startswith('<div class="chart-box"><svg class="chart ')
        svgs = re.findall(r'<svg class="chart (\w+) (wide|narrow)" viewBox="0 0 (\d+) 250"',
                          chart)
        assert [s[1] for s in svgs] == ["wide", "narrow"] and svgs[1][2] == str(NARROW)
        for svg in re.findall(r"<svg.*?</svg>", chart):
            # y labels end 6 units left of the plot; at the largest tick font (18 units,
            # about 0.6 of it a character) the longest one starts inside the drawing.
            for x, label in re.findall(r'<text class="tick" x="([\d.]+)" y="[\d.]+" '
                                       r'text-anchor="end">([^<]+)</text>', svg):
                assert float(x) - len(label) * 18 * 0.6 >= 0, (label, x)
            ticks = re.findall(r'text-anchor="middle">', svg)
            assert 1 <= len(ticks) <= 8
