"""Numbers in URLs beyond what the store holds: every route, public and desk, answers with a
page (404 or a clear 4xx), never a 500; the command line refuses them in one sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from desk_support import DESK, add_editor, csrf_of, desk_client, desk_settings, sign_in
from starlette.routing import Mount, Route

from digest.cli import main
from digest.store import open_store
from digest.store.engine import MAX_ROW_ID
from digest.web.rowids import ROW_ID_PATTERN, at_most, parse_row_id

HOSTILE = ("9223372036854775808", "99999999999999999999999", str(MAX_ROW_ID + 1),
           "18446744073709551616", "0", "-1", "00", "1e5", "\uff11", "%00", "1.5")


def paths(app) -> list[tuple[str, tuple[str, ...]]]:  # type: ignore[no-untyped-def]
    """Every route's path template (mounted apps included) and its methods."""
    out = []
    for route in app.routes:
        if isinstance(route, Mount):
            out += [(route.path + p, m) for p, m in paths(route.app)]
        elif isinstance(route, Route):
            out.append((route.path, tuple(sorted(route.methods or ("GET",)))))
    return out


def test_the_pattern_is_exactly_one_to_the_largest_id() -> None:
    pattern = re.compile(ROW_ID_PATTERN)
    for n in (1, 9, 10, 99, 100, 2147483647, 2147483639, 1999999999, 2099999999, 2147399999):
        assert pattern.fullmatch(str(n)), n
    for text in ("0", "01", "2147483648", "2147483650", "2147490000", "2200000000",
                 "3000000000", "10000000000", "-1", ""):
        assert not pattern.fullmatch(text), text
    for limit in (1, 7, 10, 19, 20, 100, 509, 1000, 2024):
        got = [n for n in range(limit + 50) if re.fullmatch(at_most(limit), str(n))]
        assert got == list(range(1, limit + 1)), limit
    assert parse_row_id(str(MAX_ROW_ID)) == MAX_ROW_ID
    assert [parse_row_id(v) for v in HOSTILE] == [None] * len(HOSTILE)


async def test_no_route_answers_a_huge_or_odd_id_with_a_500(tmp_path: Path) -> None:
    settings = desk_settings(tmp_path)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store:
        add_editor(store)
        sid = store.add_subscriber("daily", "ana@example.org")
        async with desk_client(settings, store) as c:
            await sign_in(c)
            csrf = csrf_of((await c.get(f"{DESK}/subscribers")).text)
            app = c._transport.app  # type: ignore[attr-defined]
            templates = paths(app)
            assert any("{id:rowid}" in p for p, _ in templates)
            assert not any(":int}" in p for p, _ in templates)  # every id is bounded
            seen = 0
            for template, methods in templates:
                if "{" not in template:
                    continue
                for value in HOSTILE:
                    path = re.sub(r"\{(\w+)(?::\w+)?\}",
                                  lambda m, v=value: "approve" if m.group(1) == "action"
                                  else v, template)
                    url = "/digest" + path
                    for method in methods:
                        if method == "HEAD":
                            continue
                        data = {"csrf": csrf, "addresses": "a@example.org",
                                "address": "a@example.org"} if method == "POST" else None
                        response = await c.request(method, url, data=data)
                        seen += 1
                        assert response.status_code < 500, (method, url, response.text[:300])
                        assert "Traceback" not in response.text
                        if "{id:" in template and method == "GET":
                            assert response.status_code == 404, (url, response.status_code)
                            assert "Not found" in response.text or "No such" in response.text
            assert seen > 100
            # Query parameters carrying an id: a reader's version of an edition.
            record = store.record_edition(_edition())
            for value in (*HOSTILE, str(sid)):
                page = await c.get(f"{DESK}/editions/{record.id}?subscriber={value}")
                assert page.status_code == 200, (value, page.text[:300])


def _edition():  # type: ignore[no-untyped-def]
    from render_editions import seed_edition

    return seed_edition()


@pytest.mark.parametrize("command", ["show", "approve", "hold", "cancel"])
def test_the_command_line_refuses_an_id_out_of_range(tmp_path: Path, command: str) -> None:
    desk_settings(tmp_path)
    config = str(tmp_path / "digest.toml")
    for value in ("9223372036854775808", "0"):
        result = CliRunner().invoke(main, ["editions", command, value, "--config", config],
                                    env={"DIGEST_SECRET_KEY": "k" * 32})
        assert result.exit_code == 2, result.output
        assert f"{value} is not in the range 1<=x<={MAX_ROW_ID}" in result.output
        assert "Traceback" not in result.output
