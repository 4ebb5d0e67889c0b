"""What `send` tells the editor (review of issue 9, defects 10 and 11): every row its file
import rejected or left to the reader, with file, line and reason; test sends that report
only what happened and exit 1 when a test address failed; --dry-run with --test-to is bad
usage. Through the command line, with real SMTP servers on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_servers import smtp_server
from test_cli import AS_OF, make_project
from test_consent_web import KEY, consent_config
from test_due import Scheduler, at, make_settings, page

from digest.cli import main
from digest.config import load_settings
from digest.store import open_store

REPO = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


async def run_process(*args: str) -> tuple[int, str, str]:
    """The command in its own process (``send`` installs signal handlers), while the test's
    event loop serves the SMTP server it talks to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "run_digest.py"), *args, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**env, "DIGEST_SECRET_KEY": KEY, "COLUMNS": "200"})
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_send_names_every_row_its_import_rejected_or_kept(tmp_path: Path, repo: Path) -> None:
    project = make_project(tmp_path, repo)
    readers = tmp_path / "readers.csv"
    readers.write_text((repo / "subscribers/sample.csv").read_text(encoding="utf-8")
                       + "not-an-address,X,,Nowhere\n", encoding="utf-8")
    project.write_text(project.read_text(encoding="utf-8").replace(
        str(repo / "subscribers/sample.csv"), str(readers)), encoding="utf-8")
    code, out, err = run("send", "--config", str(project), "--dry-run", "--force",
                         "--as-of", AS_OF)
    assert code == 0, err
    assert "1 rejected" in out  # the summary, on stdout as before
    [rejected] = [line for line in err.splitlines() if "rejected line" in line]
    assert rejected.startswith(f"warning: {readers}: rejected line 28: ")
    assert "not valid" in rejected
    # A row left to the reader: sections she chose on the preferences page.
    settings = load_settings(project)
    assert run("send", "--config", str(project), "--as-of", AS_OF)[0] == 0
    with open_store(settings.database_url) as store:
        amelie = store.get_membership("daily", "amelie.durand@example.org")
        assert amelie is not None
        store.update_sections(amelie.subscriber_id, "daily", ["Sports"])
    code, out, err = run("send", "--config", str(project), "--dry-run", "--force",
                         "--as-of", AS_OF)
    assert code == 0, err
    # The file is unchanged since the send imported it: not read again, and its rejected
    # row is still named; the kept row shows when an import next reads the file.
    assert "unchanged since its import at" in out
    assert "kept line" not in err and "rejected line 28" in err
    with readers.open("a", encoding="utf-8") as f:
        f.write("new.reader@example.org,New,,Lyon\n")
    code, out, err = run("send", "--config", str(project), "--dry-run", "--force",
                         "--as-of", AS_OF)
    assert code == 0, err
    assert f"warning: {readers}: kept line 2: sections chosen by the reader" in " ".join(
        err.split())


@pytest.mark.parametrize("addresses", [("zoë@example.org",),
                                       ("ann@example.org", "zoë@example.org")])
async def test_a_failed_test_address_is_reported_and_exits_1(
        tmp_path: Path, addresses: tuple[str, ...]) -> None:
    async with smtp_server(smtputf8=False) as srv:  # a relay without SMTPUTF8
        config = consent_config(tmp_path, srv.port, smtputf8=True)
        args = [a for address in addresses for a in ("--test-to", address)]
        code, out, err = await run_process("send", "--config", str(config), "--as-of", AS_OF,
                                           *args)
    assert code == 1
    said = " ".join((out + err).split())
    assert "Sent a test" not in said
    assert f"reached {len(addresses) - 1} of {len(addresses)} address(es); 1 failed" in said
    assert "error: 1 of the test addresses did not get the test" in said
    assert "SMTPUTF8" in said  # the reason, with the report
    assert [r.rcpt_tos for r in srv.handler.received] == [(a,) for a in addresses[:-1]]


async def test_dry_run_with_test_to_is_bad_usage_and_sends_nothing(tmp_path: Path) -> None:
    async with smtp_server() as srv:
        config = consent_config(tmp_path, srv.port)
        code, out, err = await run_process("send", "--config", str(config), "--dry-run",
                                           "--test-to", "x@example.org")
    assert code == 2 and out == ""
    assert err.strip() == ("error: Use either --dry-run (build every message, send none) or "
                           "--test-to (send a test copy), not both.")
    assert srv.handler.received == []


async def test_a_scheduled_edition_logs_the_lines_its_import_rejected(
        tmp_path: Path, repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digest.editions")
    readers = tmp_path / "readers.csv"
    readers.write_text("email,name\nann@example.org,Ann\nnot-an-address,X\n", encoding="utf-8")
    async with smtp_server() as srv:
        settings = make_settings(tmp_path, repo, srv.port,
                                 sources=[page(tmp_path / "front.txt", "Vote tonight")],
                                 extra=f'subscribers_files = ["{readers}"]')
        with open_store(settings.database_url) as store:
            outcome = await Scheduler(settings, store).run(at(7, 1))
    assert outcome.action == "published", outcome
    lines = [r.getMessage() for r in caplog.records]
    assert (f"list=daily subscribers file {readers}: rejected lines 3; left to the readers: "
            "lines none") in lines
    assert not any("not-an-address" in line or "@example.org" in line for line in lines)
