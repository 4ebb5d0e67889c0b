"""The email as a person sees it: headless Chromium at 600 and 375 px, light and dark.

Screenshots of the last run land in ``.screenshots/`` (git-ignored) for an editor to look at.
Without /usr/bin/chromium these tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from render_editions import (
    FRENCH_LIST,
    REPO,
    french_edition,
    large_edition,
    make_renderer,
    person,
    seed_edition,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / ".screenshots"
PHONE, DESKTOP = 375, 600
IMAGE_HOST = "cdn.example.org"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def emails() -> dict[str, str]:
    SHOTS.mkdir(exist_ok=True)
    renderer = make_renderer()
    french = make_renderer(list_settings=FRENCH_LIST)
    return {"seed": renderer.variant(seed_edition()).fill(person())[0],
            "large": renderer.variant(large_edition()).fill(person())[0],
            "french": french.variant(french_edition()).fill(person("Marie-Amélie"))[0]}


class View:
    """One rendered page with the requests it tried (all aborted: no network, images off)."""

    def __init__(self, browser, html: str, width: int, scheme: str) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900},
                                           color_scheme=scheme, java_script_enabled=False)
        self.page = self.context.new_page()
        self.requests: list[str] = []

        def refuse(route) -> None:
            self.requests.append(route.request.url)
            route.abort()

        self.page.route("**/*", refuse)
        self.page.set_content(html, wait_until="load")

    def js(self, script: str):
        return self.page.evaluate(script)

    def style(self, selector: str, prop: str) -> str:
        return self.js(f"getComputedStyle(document.querySelector({selector!r}))"
                       f".getPropertyValue({prop!r})")

    def width(self, selector: str) -> float:
        return self.js(f"document.querySelector({selector!r}).getBoundingClientRect().width")

    def overflowing(self) -> list[str]:
        return self.js("""() => {
            const w = document.documentElement.clientWidth, out = [];
            for (const el of document.body.querySelectorAll('*')) {
                const r = el.getBoundingClientRect();
                if (r.width && r.right > w + 0.5) out.push(el.tagName + '.' + el.className);
            }
            return out.slice(0, 5);
        }""")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def view(browser):
    opened: list[View] = []

    def open_view(html: str, width: int, scheme: str = "light") -> View:
        opened.append(View(browser, html, width, scheme))
        return opened[-1]

    yield open_view
    for v in opened:
        v.close()


def luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("name", ["seed", "large", "french"])
def test_layout_fits_and_screenshots(view, emails, name, width, scheme):
    v = view(emails[name], width, scheme)
    assert v.js("document.documentElement.scrollWidth") <= width, v.overflowing()
    assert v.width("table.container") == width
    assert v.overflowing() == []
    assert [u for u in v.requests if IMAGE_HOST not in u] == []
    v.page.screenshot(path=str(SHOTS / f"{name}-{width}-{scheme}.png"), full_page=True)


def test_phone_media_query_really_applies(view, emails):
    """Premailer's default strip_important=True would leave these at their desktop values."""
    phone, desktop = view(emails["large"], PHONE), view(emails["large"], DESKTOP)
    teaser = "td.teaser-right"
    assert desktop.style(teaser, "display") == "table-cell"
    assert phone.style(teaser, "display") == "block"
    assert desktop.style("td.pad", "padding-left") == "32px"
    assert phone.style("td.pad", "padding-left") == "20px"
    assert phone.style(".lead h1", "font-size") == "26px"
    assert desktop.style(".lead h1", "font-size") == "30px"
    # stacked teasers share one x and one width: a single column
    lefts = phone.js("[...document.querySelectorAll('td.teaser-left, td.teaser-right')]"
                     ".filter(e => e.offsetParent).map(e => e.getBoundingClientRect().left)")
    assert len(set(lefts)) == 1
    desktop_lefts = desktop.js("[...document.querySelectorAll('td.teaser-left, td.teaser-right')]"
                               ".map(e => Math.round(e.getBoundingClientRect().left))")
    assert len(set(desktop_lefts)) == 2


def test_a_wide_screen_keeps_the_600_px_column_centred(view, emails):
    v = view(emails["seed"], 1024)
    assert v.width("table.container") == 600
    assert v.js("document.querySelector('table.container').getBoundingClientRect().left") == 212


def test_dark_mode_recolours_with_readable_contrast(view, emails):
    light, dark = view(emails["large"], DESKTOP, "light"), view(emails["large"], DESKTOP, "dark")
    container = "table.container"
    assert light.style(container, "background-color") == "rgb(255, 255, 255)"
    assert dark.style(container, "background-color") == "rgb(28, 27, 25)"
    bg = dark.style(container, "background-color")
    for selector in (".lead h1 a", ".lead p.body", ".teaser h3 a", "p.summary", "p.meta",
                     ".footer a", "p.label"):
        assert contrast(dark.style(selector, "color"), bg) >= 4.5, selector
        assert contrast(light.style(selector, "color"), "rgb(255, 255, 255)") >= 4.5, selector
    button = "a.button-a"
    assert contrast(dark.style(button, "color"), dark.style(button, "background-color")) >= 4.5
    assert contrast(light.style(button, "color"), light.style(button, "background-color")) >= 4.5


def test_images_off_keep_alt_text_and_the_box(view, emails):
    v = view(emails["large"], DESKTOP)
    assert any(IMAGE_HOST in u for u in v.requests)  # it was asked for, and refused
    box = v.js("(() => { const r = document.querySelector('img').getBoundingClientRect();"
               " return [r.width, r.height]; })()")
    assert box == [600, 338]
    assert v.js("document.querySelector('img').alt") == "Members of parliament voting"
    assert v.js("document.querySelector('a.button-a').innerText").startswith("Read the full")


def test_without_head_styles_the_email_stays_readable_and_narrow(view, emails):
    html = re.sub(r"<style\b.*?</style>", "", emails["large"], flags=re.DOTALL)
    v = view(html, DESKTOP)
    assert v.js("document.documentElement.scrollWidth") <= DESKTOP
    assert v.width("table.container") == DESKTOP
    assert v.style(".lead h1 a", "font-size") == "30px"  # inline styles carry the design


def test_inliner_keeps_important_on_media_queries_it_processes(view):
    """The classic Premailer regression, on a block Premailer does inline (not ignored)."""
    from digest.render.inline import inline_css

    html = inline_css(
        "<!DOCTYPE html><html><head><meta name='viewport' content='width=device-width'>"
        "<style>.cell { text-align: left; color: #222222; }"
        "@media screen and (max-width: 599px) { .cell { text-align: center !important; } }"
        "</style></head><body><table role='presentation'><tr>"
        "<td class='cell'>Centred on phones</td></tr></table></body></html>")
    assert 'style="text-align:left; color:#222222"' in html
    assert view(html, PHONE).style("td.cell", "text-align") == "center"
    assert view(html, DESKTOP).style("td.cell", "text-align") == "left"


def test_longer_french_words_keep_the_layout_on_a_phone(view, emails):
    """The footer links, the top bar and the button hold longer French words at 375 px:
    nothing overflows and the button's label stays on one line."""
    v = view(emails["french"], PHONE)
    assert v.js("document.documentElement.lang") == "fr"
    assert v.js("document.querySelector('a.button-a').innerText").startswith(
        "Lire l’article complet")
    button = v.js("(() => { const a = document.querySelector('a.button-a');"
                  " return [a.getBoundingClientRect().height,"
                  " parseFloat(getComputedStyle(a).lineHeight)]; })()")
    assert button[0] < 2 * button[1] + 30  # one line of text plus its padding
    top = v.js("[...document.querySelectorAll('td.topbar td')].map(td => td.innerText)")
    assert top == ["lundi 25 août 2025", "Voir en ligne"]
    footer = v.js("document.querySelector('td.footer').innerText")
    assert "Gérer vos rubriques" in footer and "Se désabonner" in footer
    assert v.overflowing() == []
