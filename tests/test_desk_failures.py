"""Failures grouped by reason, end to end: a real ``send`` through a loopback SMTP server that
refuses two unknown mailboxes (550 5.1.1) and one recipient by policy (550 5.7.1); the desk's
report and ``editions show`` list two reasons, not one "smtp 550"."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import httpx
from click.testing import CliRunner
from desk_support import DESK, add_editor, desk_client, desk_settings, sign_in
from test_desk_browser import ThreadedSMTP
from test_web import KEY

from digest.cli import main
from digest.store import open_store

SEED = Path(__file__).resolve().parent / "fixtures" / "pages" / "seed.txt"
AS_OF = "2025-08-23T12:00:00+01:00"
UNKNOWN = ("rcpt550@one.example.net", "rcpt550@two.example.net")  # 550 5.1.1 User unknown
POLICY = "rcpt550p@three.example.net"  # 550 5.7.1 Message refused by policy


def test_a_send_with_two_kinds_of_550_reports_two_reasons(tmp_path: Path) -> None:
    with ThreadedSMTP() as srv:  # `send` runs here, in the main thread (its signal handlers)
        settings = desk_settings(tmp_path, textwrap.dedent(f"""
            [[relays]]
            name = "local"
            host = "127.0.0.1"
            port = {srv.port}
            security = "none"
            """))
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        config = tmp_path / "digest.toml"
        with open_store(settings.database_url) as store:
            add_editor(store)
            for address in (*UNKNOWN, POLICY, "ana@example.org", "bo@example.org"):
                store.add_subscriber("daily", address)
        args = ["send", "--config", str(config), "--source", str(SEED), "--as-of", AS_OF,
                "--force"]
        env = {"DIGEST_SECRET_KEY": KEY}
        sent = CliRunner().invoke(main, args, env=env)
        assert sent.exit_code == 0, sent.output
        assert len(srv.handler.received) == 2  # ana and bo
    shown = CliRunner().invoke(main, ["editions", "show", "1", "--config", str(config)],
                               env=env)
    assert shown.exit_code == 0, shown.output

    async def open_report() -> httpx.Response:
        with open_store(settings.database_url) as store:
            async with desk_client(settings, store) as c:
                await sign_in(c)
                return await c.get(f"{DESK}/editions/1/report")

    report = asyncio.run(open_report())
    assert report.status_code == 200
    rows = re.findall(r'<td class="nowrap">([^<]+)</td>\s*<td class="num">(\d+)</td>',
                      report.text)
    assert rows == [("smtp 550 5.1.1 at RCPT", "2"), ("smtp 550 5.7.1 at RCPT", "1")]
    assert "Message refused by policy" in report.text and "User unknown" in report.text
    for address in (*UNKNOWN, POLICY):
        assert address not in report.text
    text = " ".join(shown.output.split())
    assert "failed: smtp 550 5.1.1 at RCPT (2)" in text
    assert "failed: smtp 550 5.7.1 at RCPT (1)" in text
