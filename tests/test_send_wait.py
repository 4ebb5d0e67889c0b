"""`send` returns: it delivers what it can, waits for retries only up to `[delivery]
send_wait`, then exits 0 with a report of what waits and who finishes it (never
"delivered", never "run send again"); the scheduler's daily job returns on the same terms.
A real SMTP server on loopback refuses one address with 450 for as long as it is asked."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from service_env import ListSpec, recording_server, write_project

from digest import pipeline
from digest.cli import main
from digest.config import load_settings
from digest.store import open_store

pytest_plugins = ["store_backends"]

ENV = {"DIGEST_SECRET_KEY": "k" * 32}


def _project(tmp_path: Path, srv: object, send_wait: str) -> Path:
    config = write_project(tmp_path, lists={"daily": ListSpec(readers=20)}, relay=srv)  # type: ignore[arg-type]
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('first_retry = "1s"\n',
                                   f'first_retry = "1s"\nsend_wait = "{send_wait}"\n'),
                      encoding="utf-8")
    return config


def test_send_returns_after_send_wait_and_says_who_finishes(tmp_path: Path,
                                                            store_url: str) -> None:
    with recording_server() as srv:
        config = _project(tmp_path, srv, "2s")
        settings = load_settings(config, env={"DIGEST_DATABASE_URL": store_url, **ENV})
        assert settings.delivery.send_wait == timedelta(seconds=2)
        assert settings.delivery.retry_window == timedelta(hours=24)  # the default
        with open_store(store_url) as store:  # 450 for as long as it is asked
            store.add_subscriber("daily", "rcpt450@example.org")
        env = {"DIGEST_DATABASE_URL": store_url, **ENV}
        began = time.monotonic()
        result = CliRunner().invoke(main, ["send", "--config", str(config)], env=env)
        took = time.monotonic() - began
        assert result.exit_code == 0, result.output
        out = " ".join(result.stdout.split())  # the console wraps long lines
        assert "The daily edition of " in out and "is not finished: 20 sent; 1 wait for a " \
            "retry (the next due " in out
        assert "The scheduler's periodic pass or a `worker` finishes them" in out
        assert "delivered" not in out and "send again" not in out
        assert took < 2 + 5 + 10  # send_wait, one backoff (at most 2 s) and the start-up
        tries = sum(1 for c in srv.handler.commands if c == "RCPT rcpt450@example.org")
        assert tries >= 2  # it did retry while send_wait lasted

        with open_store(store_url) as store:
            [edition] = store.unfinished_editions("daily")
            assert edition.counts == {"sent": 20, "queued": 1}
            assert store.get_edition(edition.edition_id).status == "sending"
        # Running send again neither says "already went out" nor sends anything twice.
        again = CliRunner().invoke(main, ["send", "--config", str(config)], env=env)
        assert again.exit_code == 0, again.output
        flat = " ".join(again.stdout.split())
        assert "already went out" not in flat and "is not finished" in flat
    got = srv.handler.by_rcpt()
    assert all(n == 1 for n in got.values()) and len(got) == 20


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_daily_job_returns_on_the_same_terms(tmp_path: Path, store_url: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    with recording_server() as srv:
        config = _project(tmp_path, srv, "1s")
        settings = load_settings(config, env={"DIGEST_DATABASE_URL": store_url, **ENV})
        with open_store(store_url) as store:
            store.add_subscriber("daily", "rcpt450@example.org")
            today = datetime.now(UTC).date()
            due = datetime(today.year, today.month, today.day, 7, 0, 30, tzinfo=UTC)
            began = time.monotonic()
            outcome = pipeline.run_scheduled(settings, "daily", store=store, now=due)
            took = time.monotonic() - began
            assert outcome.action == "published", outcome
            assert "is not finished: 20 sent; 1 wait for a retry" in outcome.message
            # Its log line never says "delivered" while a row waits.
            [line] = [r.getMessage() for r in caplog.records if "sent=20" in r.getMessage()]
            assert "delivered" not in line and "sent so far, rows wait" in line
            assert "waiting=1" in line
            assert took < 1 + 5 + 10
            [edition] = store.unfinished_editions("daily")
            assert edition.counts == {"sent": 20, "queued": 1}


def test_the_waiting_sentence_names_unconfirmed_rows_apart() -> None:
    """Rows ended "sent_unconfirmed" count as sent and are named apart, as in the closing
    sentence of a finished send; nothing waiting is ever called delivered."""
    from digest.pipeline.send import _waiting

    due = datetime(2026, 11, 30, 7, 5, tzinfo=UTC)
    text = _waiting("daily", "2026-11-30", {"sent": 18, "sent_unconfirmed": 2, "failed": 1,
                                             "queued": 3}, due)
    assert text.startswith("The daily edition of 2026-11-30 is not finished: 20 sent (2 of "
                           "them unconfirmed), 1 failed; 3 wait for a retry (the next due "
                           "2026-11-30T07:05:00Z).")
    assert "delivered" not in text
    plain = _waiting("daily", "2026-11-30", {"sent": 5, "queued": 1}, None)
    assert "5 sent; 1 wait for a retry (the next due unknown)" in plain
