"""The editor's desk in headless Chromium, end to end, against a real ``serve`` over TLS.

An editor signs in, builds and opens today's draft at phone width (the list requires
review), sends a test that arrives at a loopback SMTP server, approves the edition behind its
confirmation, a real ``send`` (the command line, another process) delivers it through that
server, and the report page shows the counts and the chart; a request without a session and
a form posted from another site are refused. Screenshots of every
page land in ``.screenshots/desk-*.png`` (git-ignored) for people to look at.

Without /usr/bin/chromium these tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import http.server
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from desk_server import free_socket, serving
from desk_support import CHEAP, PASSWORD, add_editor
from smtp_servers import ServerInfo, smtp_server

from digest import pipeline
from digest.config import load_settings
from digest.store import open_store

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SHOTS = REPO / ".screenshots"
KEY = "desk-browser-test-key-0123456789"

pytestmark = pytest.mark.browser


class ThreadedSMTP:
    """``smtp_servers.smtp_server`` running in its own event loop thread (Playwright's sync
    API owns this thread's loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.info: ServerInfo | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self.stop = asyncio.Event()
        async with smtp_server() as info:
            self.info = info
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> ServerInfo:
        self.thread.start()
        assert self.ready.wait(20), "the SMTP server did not start"
        assert self.info is not None
        return self.info

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        self.loop.close()


class CrossSitePage:
    """A page on another origin (``http://localhost:PORT``) with a form that posts to the
    desk, as an attacker's page would."""

    def __init__(self, target: str) -> None:
        html = textwrap.dedent(f"""\
            <!doctype html><title>Win a prize</title>
            <form method="post" action="{target}">
            <input type="hidden" name="csrf" value="guessed">
            <input type="hidden" name="addresses" value="victim@example.org">
            <button id="go">Claim</button></form>""").encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(folder: Path, port: int, smtp_port: int) -> Path:
    """The repository's sample configuration, served at https://127.0.0.1:PORT/digest and
    delivering through the loopback SMTP server."""
    text = (REPO / "digest.toml").read_text(encoding="utf-8")
    text = text.replace('work_dir = "var"', f'work_dir = "{folder / "var"}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{REPO / "templates"}"')
    for rel in ("content/front-page.txt", "content/newsroom.rss", "subscribers/sample.csv"):
        text = text.replace(f'"{rel}"', f'"{REPO / rel}"')
    text = re.sub(r'(?m)^base_url = "[^"]*"',
                  f'base_url = "https://127.0.0.1:{port}/digest"', text)
    text = re.sub(r"(?m)^max_age = .*\n", "", text)  # the sample page's teasers are old
    # The daily list needs an editor's approval: the desk's button is what lets it go out.
    text = text.replace('review = "off"', 'review = "required"', 1)
    text = text.replace('# review_to = ["desk@news.example.org"]',
                        'review_to = ["desk@news.example.org"]', 1)
    # Sent an hour ago with a 20 h window: today's edition can still be approved, whatever
    # the time of day the test runs (after its window an approval is too late: missed).
    london = datetime.now(UTC).astimezone(ZoneInfo("Europe/London"))
    text = text.replace('send_time = "07:00"',
                        f'send_time = "{london - timedelta(hours=1):%H:%M}"', 1)
    text = text.replace('send_window = "3h"', 'send_window = "20h"', 1)
    text += textwrap.dedent(f"""
        [[relays]]
        name = "loopback"
        host = "127.0.0.1"
        port = {smtp_port}
        security = "none"
        """)
    path = folder / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing and CI is set: install Debian's chromium.")
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium to run browser tests.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def _watch(page, desk: str, failed: list[str]) -> None:  # type: ignore[no-untyped-def]
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.url.startswith(desk) else None)


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"desk-{name}.png"), full_page=True)


# Everything on the page that ends past the viewport's right edge, outside a scroll box.
_STICKING_OUT = """() => {
  const limit = document.documentElement.clientWidth;
  const inScroller = e => { for (let p = e.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true; }
    return false; };
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > limit + 0.5 && !inScroller(e)
                 && getComputedStyle(e).position !== 'fixed' && e.getClientRects().length)
    .map(e => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string'
                                         ? '.' + e.className.split(' ').join('.') : ''))
    .slice(0, 8);
}"""


def _fits(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """The page, at the context's width, needs no sideways scrolling and nothing sticks
    out of it (a table or chart may scroll inside its own box); its screenshot is saved."""
    _shot(page, name)
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, name
    assert page.evaluate(_STICKING_OUT) == [], name


def test_an_editor_checks_tests_and_follows_todays_edition(chromium, tmp_path: Path) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    with ThreadedSMTP() as smtp:
        config = _config(tmp_path, port, smtp.port)
        env = {**os.environ, "DIGEST_SECRET_KEY": KEY}
        settings = load_settings(config, env=env)
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with open_store(settings.database_url) as store:
            add_editor(store, "ana")
            # The readers of the sample list (`send` imports them too).
            pipeline.sync_subscriber_files(settings, settings.get_list("daily"), store)
        with serving(settings, sock, tmp_path / "tls", hasher=CHEAP) as origin:
            desk = f"{origin}/digest/desk"
            edition_id = _editor_session(chromium, desk, smtp, config, env)
            _refusals(chromium, desk, edition_id)


def _editor_session(chromium, desk: str, smtp: ServerInfo,  # type: ignore[no-untyped-def]
                    config: Path, env: dict[str, str]) -> int:
    phone = chromium.new_context(viewport={"width": 375, "height": 800},
                                 ignore_https_errors=True, is_mobile=True, has_touch=True)
    page = phone.new_page()
    failed: list[str] = []  # desk responses that failed (the email's CDN images may too)
    _watch(page, desk, failed)
    # Any desk page without a session leads to the sign-in form, then back.
    page.goto(f"{desk}/subscribers")
    assert page.url.startswith(f"{desk}/login?next=")
    _fits(page, "login-375")
    page.fill("#username", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{desk}/subscribers")
    # Nothing is stored for today: the editor builds today's draft from the overview.
    page.goto(f"{desk}/")
    _fits(page, "overview-375")
    page.locator("section", has_text="Morning Briefing").locator(
        "button:has-text(\"Build today's draft\")").click()
    page.wait_for_url(re.compile(r".*/editions/\d+\?notice=drafted$"))
    edition_id = int(re.search(r"/editions/(\d+)", page.url).group(1))
    assert "draft" in page.locator(".badge").first.inner_text()
    # Review is required: sending before approval is only the editor's explicit override.
    assert page.locator("a.button", has_text="Send without approval").count() == 1
    # Today's draft at phone width: the phone frame comes first and fits the screen.
    assert page.locator("h1").inner_text()
    frame = page.frame_locator(".frame.phone iframe")
    frame.locator("table.container").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.frame_locator(".frame.desktop iframe").locator("table.container").wait_for()
    box = page.locator(".frame.phone iframe").bounding_box()
    desktop_box = page.locator(".frame.desktop iframe").bounding_box()
    assert box is not None and desktop_box is not None and box["y"] < desktop_box["y"]
    _shot(page, "edition-375")
    page.locator(".frame.desktop").scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the frame paint once it is on screen
    page.screenshot(path=str(SHOTS / "desk-edition-375-desktop-frame.png"))
    page.click(".segmented >> text=Dark")
    page.frame_locator(".frame.phone iframe").locator("table.container").wait_for()
    dark_bg = page.frame_locator(".frame.phone iframe").locator("table.container").evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert dark_bg == "rgb(28, 27, 25)"  # the email's own dark mode, forced on
    _shot(page, "edition-dark-375")
    # A test to two addresses arrives at the loopback server.
    page.fill("#addresses", "desk.test@example.org, second@example.org")
    page.click("button:has-text('Send test')")
    page.wait_for_url(re.compile(r".*notice=test-sent$"))
    assert "The test copies went out" in page.locator(".notice").inner_text()
    tests = [m for m in smtp.handler.received if "desk.test@example.org" in m.rcpt_tos]
    assert len(tests) == 1
    subject = email.message_from_bytes(tests[0].data, policy=email.policy.default)["Subject"]
    assert subject.startswith("[TEST] ")
    # Approve, behind its confirmation; the edition's history names the editor.
    page.click("a.button:has-text('Approve')")
    page.wait_for_url(f"{desk}/editions/{edition_id}/confirm/approve")
    assert page.locator("h1").inner_text() == "Approve this edition?"
    page.fill("#reason", "read on my phone")
    _fits(page, "confirm-approve-375")
    page.click("button:has-text('Approve')")
    page.wait_for_url(f"{desk}/editions/{edition_id}?notice=approve")
    assert page.locator(".badge").first.inner_text() == "approved"
    assert "read on my phone" in page.locator("ol.history").inner_text()
    assert "editor:ana" in page.locator("ol.history").inner_text()
    phone.close()

    # A real `send` (another process) delivers the edition through the same server.
    result = subprocess.run([sys.executable, str(REPO / "run_digest.py"), "send", "--config",
                             str(config)], capture_output=True, text=True, env=env, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    delivered = [m for m in smtp.handler.received if not any(
        r in ("desk.test@example.org", "second@example.org") for r in m.rcpt_tos)]
    assert len(delivered) >= 20

    wide = chromium.new_context(viewport={"width": 1280, "height": 900},
                                ignore_https_errors=True)
    page = wide.new_page()
    _watch(page, desk, failed)
    page.goto(f"{desk}/login")
    page.fill("#username", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{desk}/")
    row = page.locator("table.data tbody tr").first.inner_text()
    assert f"\t{len(delivered)}\t0\t0" in row  # sent, failed, expired
    _shot(page, "overview-1280")
    page.goto(f"{desk}/editions/{edition_id}/report")
    sent = int(page.locator(".stat.good .n").inner_text().replace("\u202f", ""))
    assert sent == len(delivered)
    assert page.locator("svg.chart rect.bar-sent").count() >= 1
    assert page.locator("svg.chart title").first.text_content() == "Messages per minute"
    assert page.locator("[data-refresh]").count() == 0  # finished: no more refreshing
    _shot(page, "report-1280")
    page.goto(f"{desk}/editions/{edition_id}")
    page.frame_locator(".frame.desktop iframe").locator("table.container").wait_for()
    width = page.frame_locator(".frame.desktop iframe").locator("table.container").evaluate(
        "e => e.getBoundingClientRect().width")
    assert width == 600
    _shot(page, "edition-1280")
    page.goto(f"{desk}/subscribers")
    assert page.locator("svg.chart.wide:visible").count() == 3
    assert page.locator("svg.chart.narrow:visible").count() == 0
    _fits(page, "subscribers-1280")
    page.fill("#lookup", "amelie.durand@example.org")
    page.click("button:has-text('Look up')")
    page.wait_for_url(re.compile(r".*/subscribers/\d+$"))
    assert page.locator("h1").inner_text() == "a•••@e•••.org"
    assert "amelie" not in page.content()
    _shot(page, "subscriber-1280")
    wide.close()
    _every_page_at_phone_width(chromium, desk, edition_id, failed)
    assert failed == []
    return edition_id


def _every_page_at_phone_width(chromium, desk: str, edition_id: int,  # type: ignore[no-untyped-def]
                               failed: list[str]) -> None:
    """Each desk page, with the sent edition's data, at 375 px: nothing sideways."""
    phone = chromium.new_context(viewport={"width": 375, "height": 800},
                                 ignore_https_errors=True, is_mobile=True, has_touch=True)
    page = phone.new_page()
    _watch(page, desk, failed)
    page.goto(f"{desk}/login")
    page.fill("#username", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{desk}/")
    _fits(page, "overview-sent-375")
    page.goto(f"{desk}/editions/{edition_id}")
    page.frame_locator(".frame.phone iframe").locator("table.container").wait_for()
    _fits(page, "edition-sent-375")
    page.goto(f"{desk}/editions/{edition_id}/report")
    assert page.locator("svg.chart.narrow:visible").count() == 1  # the phone's drawing
    assert page.locator("svg.chart.wide:visible").count() == 0
    _fits(page, "report-375")
    page.goto(f"{desk}/subscribers")
    assert page.locator("svg.chart.narrow:visible").count() == 3
    _fits(page, "subscribers-375")
    page.fill("#lookup", "amelie.durand@example.org")
    page.click("button:has-text('Look up')")
    page.wait_for_url(re.compile(r".*/subscribers/\d+$"))
    _fits(page, "subscriber-375")
    failed_before = len(failed)
    page.goto(f"{desk}/editions/99999")  # a message page
    assert page.locator("h1").inner_text() == "No such edition"
    _fits(page, "not-found-375")
    del failed[failed_before:]  # that 404 was asked for
    phone.close()


def _refusals(chromium, desk: str, edition_id: int) -> None:  # type: ignore[no-untyped-def]
    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   ignore_https_errors=True)
    page = context.new_page()
    # No session: the report answers 303 to the sign-in page.
    response = page.request.get(f"{desk}/editions/{edition_id}/report", max_redirects=0)
    assert response.status == 303
    assert response.headers["location"].startswith(f"{desk}/login")
    # Signed in, a form on another site posting to the desk is refused.
    page.goto(f"{desk}/login")
    page.fill("#username", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{desk}/")
    with CrossSitePage(f"{desk}/editions/{edition_id}/test") as evil:
        page.goto(evil)
        with page.expect_navigation():
            page.click("#go")
        assert "Not allowed from there" in page.content()
        _shot(page, "cross-site-refused")
    page.goto(f"{desk}/")
    assert page.url == f"{desk}/"  # still signed in, nothing happened
    context.close()
