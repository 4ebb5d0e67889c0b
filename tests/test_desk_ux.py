"""The desk speaks as the desk: no draft button on a day a list does not send, no command-line
flag in its sentences (a "Build it anyway" button instead), its own page when a form comes
from another site, and a test send logged as a note, not as a move."""

from __future__ import annotations

import logging
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from desk_support import DESK, add_editor, csrf_of, desk_client, desk_settings, sign_in
from render_editions import seed_edition
from test_web import KEY, write_config

from digest.config import load_settings
from digest.store import open_store

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _future_feed(folder: Path) -> Path:
    feed = folder / "future.rss"
    feed.write_text(
        '<rss version="2.0"><channel><title>t</title><link>https://news.example.org/</link>\n'
        "<item><title>Dated next year</title><link>https://news.example.org/n</link>"
        "<category>World</category><description>A clock set wrong.</description>"
        f"<pubDate>{(datetime.now(UTC) + timedelta(days=300)):%a, %d %b %Y %H:%M:%S} +0000"
        "</pubDate></item>\n</channel></rss>", encoding="utf-8")
    return feed


async def test_no_draft_button_on_a_day_the_list_does_not_send(tmp_path: Path) -> None:
    today = datetime.now(ZoneInfo("Europe/London")).weekday()
    other_days = ", ".join(f'"{d}"' for i, d in enumerate(DAYS) if i != today)
    settings = desk_settings(tmp_path, textwrap.dedent(f"""
        [lists.rest]
        title = "Rest Days"
        sections = ["World"]
        timezone = "Europe/London"
        send_days = [{other_days}]
        from = "The Morning Ledger <rest@news.example.org>"
        """))
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        add_editor(store)
        async with desk_client(settings, store) as c:
            await sign_in(c)
            page = (await c.get(f"{DESK}/")).text
    rest = page[page.index('id="list-rest"'):]
    rest = rest[:rest.index("</section>")]
    assert "This list does not send today." in rest
    assert "Build today&#39;s draft" not in rest and "/lists/rest/draft" not in rest
    daily = page[page.index('id="list-daily"'):]
    assert "/lists/daily/draft" in daily[:daily.index("</section>")]  # daily sends today


async def test_an_empty_draft_says_why_without_a_flag_and_offers_build_anyway(
        tmp_path: Path) -> None:
    feed = _future_feed(tmp_path)
    config = write_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'lead_section = "Politics"', f'lead_section = "Politics"\nsources = ["{feed}"]', 1),
        encoding="utf-8")
    settings = load_settings(config, env={"DIGEST_SECRET_KEY": KEY})
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        add_editor(store)
        async with desk_client(settings, store) as c:
            await sign_in(c)
            csrf = csrf_of((await c.get(f"{DESK}/")).text)
            refused = await c.post(f"{DESK}/lists/daily/draft", data={"csrf": csrf})
            assert refused.status_code == 409
            text = refused.text
            assert "No draft was built" in text
            assert "dated in the future" in text and "--force" not in text
            assert "future.rss:2: item 1 (&#39;Dated next year&#39;)" in text  # reported
            assert str(tmp_path) not in text  # the source's name, not its folder
            assert ">Build it anyway</button>" in text
            assert '<input type="hidden" name="force" value="yes">' in text
            assert store.find_edition("daily", datetime.now(UTC).astimezone(
                ZoneInfo("Europe/London")).date()) is None
            built = await c.post(f"{DESK}/lists/daily/draft",
                                 data={"csrf": csrf_of(text), "force": "yes"})
            assert built.status_code == 303 and built.headers["location"].endswith(
                "?notice=drafted")
            again = await c.post(f"{DESK}/lists/daily/draft",  # never a second one
                                 data={"csrf": csrf, "force": "yes"})
            assert again.headers["location"].endswith("?notice=already-stored")
        record = store.find_edition("daily", datetime.now(UTC).astimezone(
            ZoneInfo("Europe/London")).date())
        assert record is not None and record.subject == "Dated next year"
        [event] = store.edition_events(record.id)
        assert (event.actor, event.cause) == ("editor:ana", "built on the desk anyway (forced)")


async def test_a_cross_site_post_to_the_desk_gets_the_desks_page(tmp_path: Path) -> None:
    settings = desk_settings(tmp_path)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        add_editor(store)
        record = store.record_edition(seed_edition())
        async with desk_client(settings, store) as c:
            await sign_in(c)
            csrf = csrf_of((await c.get(f"{DESK}/")).text)
            for path in (f"/editions/{record.id}/test", f"/editions/{record.id}/approve",
                         "/lists/daily/draft", "/logout"):
                response = await c.post(DESK + path, data={"csrf": csrf, "confirmed": "yes"},
                                        headers={"Origin": "https://evil.example",
                                                 "Sec-Fetch-Site": "cross-site"})
                assert response.status_code == 403, path
                assert "This form can only be sent from the desk" in response.text, path
                assert "/static/desk.css" in response.text  # the desk's page, not a reader's
                assert "open the page from the email or our website" not in response.text
            # The public pages keep their own refusal.
            public = await c.post("/digest/subscribe/daily", data={"email": "a@example.org"},
                                  headers={"Origin": "https://evil.example",
                                           "Sec-Fetch-Site": "cross-site"})
            assert public.status_code == 403
            assert "open the page from the email or our website" in public.text
        assert store.get_edition(record.id).status == "draft"  # nothing happened


async def test_a_test_send_is_logged_as_a_note(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = desk_settings(tmp_path)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        record = store.record_edition(seed_edition())
        with caplog.at_level(logging.INFO, logger="digest"):
            store.note_edition(record.id, actor="editor:ana",
                               cause="test sent to 2 address(es) from the desk")
            store.set_edition_status(record.id, "approved", actor="editor:ana", cause="ok")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("edition ")]
    assert lines[-2].endswith("note (still draft) by editor:ana: test sent to 2 address(es) "
                              "from the desk")
    assert "draft -> draft" not in "\n".join(lines)
    assert lines[-1].endswith("draft -> approved by editor:ana: ok")
