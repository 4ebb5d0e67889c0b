"""Settings: the sample file loads, every wrong setting is one sentence naming it and the file."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_settings, parse_duration
from digest.errors import ConfigError

MINIMAL = """
[site]
name = "Gazette"
url = "https://gazette.example"
postal_address = "1 Main St"

[web]
base_url = "https://gazette.example/digest"

[lists.morning]
sources = ["front.txt"]
from = "Gazette <am@gazette.example>"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_configuration_loads(repo: Path, tmp_path: Path) -> None:
    settings = load_settings(repo / "digest.toml", env={"DIGEST_WORK_DIR": str(tmp_path)})
    daily = settings.get_list(None)
    assert daily.name == "daily"
    assert daily.sections[0] == "Politics"
    assert daily.teasers_per_section == 3
    assert daily.send_time == time(7, 0)
    assert str(daily.timezone) == "Europe/London"
    assert daily.from_header == "The Morning Ledger <briefing@news.example.org>"
    assert daily.sources[0] == str(repo / "content" / "front-page.txt")
    assert settings.get_list("weekend").max_age == timedelta(days=7)
    assert settings.database_url == f"sqlite:///{tmp_path / 'digest.db'}"
    assert settings.relays == ()


def test_minimal_configuration_has_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), env={})
    lst = settings.get_list("morning")
    assert lst.title == "Morning"
    assert lst.subject == "{lead_headline}"
    assert lst.sources == (str(tmp_path / "front.txt"),)
    assert settings.site.domain == "gazette.example"
    assert settings.scheduler.heartbeat == timedelta(seconds=5)
    assert settings.scheduler.lease == timedelta(seconds=30)
    assert settings.web.secret_keys  # generated once, kept under the work folder
    again = load_settings(tmp_path / "digest.toml", env={})
    assert again.web.secret_keys == settings.web.secret_keys
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o077 == 0


def test_environment_overrides_secrets(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[relays]]\nname = "main"\nhost = "smtp.gazette.example"\n'
    env = {
        "DIGEST_DATABASE_URL": "postgresql+psycopg://u:pw@db/x",
        "DIGEST_SECRET_KEY": "k1",
        "DIGEST_OLD_SECRET_KEYS": "k0, kx",
        "DIGEST_RELAY_MAIN_USERNAME": "mailer",
        "DIGEST_RELAY_MAIN_PASSWORD": "hunter2",
    }
    settings = load_settings(write(tmp_path, text), env=env)
    assert settings.database_url == "postgresql+psycopg://u:pw@db/x"
    assert settings.web.secret_keys == ("k1", "k0", "kx")
    relay = settings.relays[0]
    assert (relay.username, relay.password, relay.port, relay.security) == (
        "mailer", "hunter2", 587, "starttls")
    shown = repr(settings) + repr(relay) + repr(settings.web)
    assert "hunter2" not in shown and "k1" not in shown and "pw@" not in shown


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('url = "https://gazette.example"', 'url = "ftp://x"'),
         "Setting site.url in"),
        (lambda t: t + "teasers_per_section = 0\n", "lists.morning.teasers_per_section"),
        (lambda t: t + 'teasers_per_section = "three"\n', "whole number from 1 to 50"),
        (lambda t: t + 'timezone = "Mars/Olympus"\n', "lists.morning.timezone"),
        (lambda t: t + 'send_time = "7am"\n', "lists.morning.send_time"),
        (lambda t: t + 'max_age = "a while"\n', "lists.morning.max_age"),
        (lambda t: t + 'teaser_per_section = 3\n', "did you mean teasers_per_section"),
        (lambda t: t + 'subject = "{headline}"\n', "lists.morning.subject"),
        (lambda t: t + 'relay = "nowhere"\n', "lists.morning.relay"),
        (lambda t: t.replace('from = "Gazette <am@gazette.example>"', 'from = "nobody"'),
         "lists.morning.from"),
        (lambda t: t.replace('from = "Gazette <am@gazette.example>"', ""),
         "lists.morning.from in"),
        (lambda t: t.replace('postal_address = "1 Main St"', ""), "site.postal_address"),
        (lambda t: t + '\n[[relays]]\nhost = "h"\npassword = "x"\n', "must not be in the file"),
        (lambda t: t + '\n[[relays]]\nhost = "h"\nsecurity = "ssl"\n', "relays[0].security"),
        (lambda t: t + '\n[database]\nurl = "mysql://x"\n', "database.url"),
        (lambda t: t.replace("https://gazette.example/digest", "http://gazette.example"),
         "web.base_url"),
        (lambda t: t.replace("https://gazette.example/digest", "https://gazette.example/d gest"),
         "web.base_url"),
        (lambda t: t.replace("https://gazette.example/digest", "https://gazette.example/dígest"),
         "web.base_url"),
        (lambda t: t.replace("https://gazette.example/digest", "https://gazette.example/?a=1"),
         "web.base_url"),
        (lambda t: t.replace("[lists.morning]", '[lists."Morning Paper"]'), "short slug"),
        (lambda t: t.replace('sources = ["front.txt"]', 'sources = ["ftp://x/feed"]'),
         "lists.morning.sources"),
        (lambda t: '[scheduler]\nheartbeat = "20s"\nlease = "30s"\n' + t,
         "scheduler.lease in"),
        (lambda t: '[scheduler]\nheartbeat = "0s"\n' + t, "scheduler.lease in"),
        (lambda t: '[scheduler]\nheartbeats = "5s"\n' + t, "scheduler.heartbeats"),
        (lambda t: '[delivery]\nsend_wait = "100d"\n' + t, "delivery.send_wait in"),
        (lambda t: '[delivery]\nmax_ambiguous = -1\n' + t, "delivery.max_ambiguous in"),
    ],
)
def test_wrong_settings_name_the_setting_and_file(tmp_path: Path, edit, expected: str) -> None:
    path = write(tmp_path, edit(MINIMAL))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert expected in message
    assert str(path) in message or path.name in message
    assert "\n" not in message


@pytest.mark.parametrize("base", ["https://gazette.example:8443/news/digest",
                                  "https://[2001:db8::1]/digest", "https://xn--bcher-kva.example",
                                  "https://gazette.example/d%C3%ADgest/"])
def test_base_urls_that_can_go_into_every_link(tmp_path: Path, base: str) -> None:
    path = write(tmp_path, MINIMAL.replace("https://gazette.example/digest", base))
    assert load_settings(path, env={}).web.base_url == base.rstrip("/")


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[site\nname="), env={})
    with pytest.raises(ConfigError, match=r"Setting lists in .* is missing"):
        load_settings(write(tmp_path, MINIMAL.split("[lists.morning]")[0]), env={})


def test_unknown_list_is_named(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), env={})
    with pytest.raises(ConfigError, match="no list 'evening'.*morning"):
        settings.get_list("evening")


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90), ("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("2w", 1209600),
    ("1.5h", 5400), ("250ms", 0.25),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "5 parsecs", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_cli_reports_bad_configuration_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "teasers_per_section = -1\n")
    result = CliRunner().invoke(main, ["build", "--config", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "lists.morning.teasers_per_section" in result.output
    missing = CliRunner().invoke(main, ["build", "--config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
