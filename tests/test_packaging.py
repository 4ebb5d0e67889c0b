"""An installed digest (a wheel's files, not a source checkout) renders its email and serves
its pages with no templates folder of its own: the shipped templates are package data and
the fallback of every loader; a newsroom's folder needs only the templates it changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = Path(__file__).resolve().parent / "fixtures" / "pages" / "seed.txt"

CHECK = textwrap.dedent("""\
    import sys
    from pathlib import Path
    import digest
    lib = Path(sys.argv[1]).resolve()
    assert Path(digest.__file__).resolve().is_relative_to(lib), digest.__file__
    from click.testing import CliRunner
    from digest.cli import main
    from digest.config import load_settings
    env = {"DIGEST_SECRET_KEY": "packaging-test-key-0123456789"}
    settings = load_settings("digest.toml", env=env)
    assert settings.templates_dir == lib / "digest" / "templates", settings.templates_dir
    result = CliRunner().invoke(main, ["preview", "--config", "digest.toml", "--out", "out",
                                       "--source", sys.argv[2], "--as-of",
                                       "2025-08-23T12:00:00+01:00", "--force"], env=env)
    assert result.exit_code == 0, result.output
    html = Path("out/edition.html").read_text(encoding="utf-8")
    assert "Morning Briefing" in html and "<table" in html and "Unsubscribe" in html
    from starlette.testclient import TestClient
    from digest.web import create_app
    with TestClient(create_app(settings), base_url="https://news.example.org") as client:
        page = client.get("/digest/subscribe/daily")
        assert page.status_code == 200 and "<form" in page.text, page.text[:300]
        desk = client.get("/digest/desk/login")
        assert desk.status_code == 200 and "password" in desk.text, desk.text[:300]
        css = client.get("/digest/desk/static/desk.css")
        assert css.status_code == 200 and "chart-box" in css.text
    print("ok")
    """)


def test_an_installed_digest_needs_no_templates_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO / "digest", src / "digest",
                    ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copytree(REPO / "templates", src / "templates")
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(REPO / name, src / name)
    lib = tmp_path / "lib"
    built = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib",
                            str(lib)], cwd=src, capture_output=True, text=True, timeout=120,
                           check=False)
    assert built.returncode == 0, built.stderr
    shipped = lib / "digest" / "templates"
    for name in ("email/edition.html", "email/edition.txt", "web/subscribe.html",
                 "web/desk/base.html", "web/desk/static/desk.css"):
        assert (shipped / name).is_file(), name
    site = tmp_path / "newsroom"  # a project folder with a config and nothing else
    site.mkdir()
    (site / "digest.toml").write_text(textwrap.dedent("""\
        [site]
        name = "The Morning Ledger"
        url = "https://news.example.org"
        postal_address = "The Morning Ledger, 1 Press Row, Springfield 12345"
        domain = "news.example.org"
        [web]
        base_url = "https://news.example.org/digest"
        [lists.daily]
        title = "Morning Briefing"
        sections = ["Politics", "World", "Business"]
        from = "The Morning Ledger <briefing@news.example.org>"
        """), encoding="utf-8")
    (site / "check.py").write_text(CHECK, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["PYTHONPATH"] = str(lib)
    ran = subprocess.run([sys.executable, "check.py", str(lib), str(SEED)], cwd=site, env=env,
                         capture_output=True, text=True, timeout=180, check=False)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stdout + ran.stderr


def test_a_newsrooms_folder_needs_only_the_templates_it_changes(tmp_path: Path) -> None:
    import asyncio

    from digest.config import load_settings
    from digest.pipeline import MessageFactory, build_edition

    own = tmp_path / "templates" / "email"
    own.mkdir(parents=True)
    footer = (REPO / "templates" / "email" / "_footer.html").read_text(encoding="utf-8")
    (own / "_footer.html").write_text("<!-- our footer -->\n" + footer, encoding="utf-8")
    (tmp_path / "digest.toml").write_text(textwrap.dedent(f"""\
        [digest]
        templates_dir = "templates"
        [site]
        name = "The Morning Ledger"
        url = "https://news.example.org"
        postal_address = "The Morning Ledger, 1 Press Row, Springfield 12345"
        domain = "news.example.org"
        [web]
        base_url = "https://news.example.org/digest"
        [lists.daily]
        sources = ["{SEED}"]
        sections = ["Politics", "World"]
        from = "The Morning Ledger <briefing@news.example.org>"
        """), encoding="utf-8")
    settings = load_settings(tmp_path / "digest.toml", env={"DIGEST_SECRET_KEY": "k" * 32})
    assert settings.templates_dir == tmp_path / "templates"
    lst = settings.get_list("daily")
    from datetime import datetime

    edition = asyncio.run(build_edition(settings, lst, store=None, as_of=datetime.fromisoformat(
        "2025-08-23T12:00:00+01:00"), force=True)).edition
    raw = MessageFactory(settings, lst, edition).message(
        email="ana@example.org", name=None, sections=None, subscriber_id=1,
        message_id="<m1@news.example.org>")
    assert b"our footer" in raw  # the newsroom's partial, inside the shipped edition.html
