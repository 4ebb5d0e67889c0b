"""What `preview --out` writes, opened in headless Chromium: seed page and feed input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, SEED_PAGE
from test_browser import DESKTOP, PHONE, SHOTS, browser, view  # noqa: F401 - fixtures
from test_cli import AS_OF, make_project

pytestmark = pytest.mark.browser

SOURCES = {
    "seed": ["--source", str(SEED_PAGE), "--as-of", AS_OF],
    "feed": ["--list", "weekend", "--source", str(REPO / "content" / "newsroom.rss"),
             "--as-of", "2026-11-17T08:00"],
}


@pytest.fixture(scope="module")
def previews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The real command line writes both previews (in a subprocess: Playwright's sync API
    keeps an event loop running in this one)."""
    tmp = tmp_path_factory.mktemp("previews")
    project = make_project(tmp, REPO)
    pages = {}
    for name, args in SOURCES.items():
        out = tmp / name
        result = subprocess.run(
            [sys.executable, str(REPO / "run_digest.py"), "preview", "--config", str(project),
             *args, "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        pages[name] = (out / "edition.html").read_text(encoding="utf-8")
    return pages


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_preview_fits_every_width(view, previews, name: str, width: int,  # noqa: F811
                                  scheme: str) -> None:
    v = view(previews[name], width, scheme)
    assert v.js("document.documentElement.scrollWidth") <= width, v.overflowing()
    assert v.width("table.container") == width
    assert v.style("td.pad", "padding-left") == ("20px" if width == PHONE else "32px")
    SHOTS.mkdir(exist_ok=True)
    v.page.screenshot(path=str(SHOTS / f"preview-{name}-{width}-{scheme}.png"), full_page=True)
