"""The sign-up form in a real browser: headless Chromium posts it from our page (accepted) and
from another site's page (refused with 403 by its Origin / Sec-Fetch-Site headers).

Screenshots land in ``.screenshots/`` (git-ignored). Without /usr/bin/chromium these tests
skip, except under CI, where they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_web import KEY, write_config

from digest.config import load_settings
from digest.store import open_store
from digest.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parent.parent / ".screenshots"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing and CI is set: install Debian's chromium.")
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium to run browser tests.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, object]]:
    """`serve`'s app under uvicorn on 127.0.0.1 (a thread), and its settings."""
    import uvicorn

    settings = load_settings(write_config(tmp_path), env={"DIGEST_SECRET_KEY": KEY})
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A static site on another origin (localhost, another port): a stranger's page."""
    root = tmp_path / "elsewhere"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_form_works_from_our_page_and_not_from_another_site(browser, served,
                                                                other_site) -> None:
    base, settings = served
    root, port = other_site
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 480, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{base}/digest/subscribe/daily")
        page.fill("#email", "reader@example.org")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "Check your inbox" in page.content()
        page.screenshot(path=str(SHOTS / "signup-accepted.png"), full_page=True)

        (root / "evil.html").write_text(
            '<!doctype html><form method="post" action="'
            f'{base}/digest/subscribe/daily"><input name="email" value="victim@example.org">'
            '<button type="submit">Win a prize</button></form>', encoding="utf-8")
        page.goto(f"http://localhost:{port}/evil.html")
        with page.expect_navigation() as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 403
        assert "can only be sent from our own pages" in page.content()
        page.screenshot(path=str(SHOTS / "signup-cross-site-403.png"), full_page=True)
    finally:
        context.close()
    with open_store(settings.database_url) as store:
        assert store.get_membership("daily", "reader@example.org").status == "pending"
        assert store.get_membership("daily", "victim@example.org") is None
