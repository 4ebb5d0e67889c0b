"""Ambiguous outcomes are capped: a relay that drops the connection after the final dot (it
kept the message) every time gets the message once and the one retry ``max_ambiguous = 1``
allows (two copies, never one per retry), and the row ends "sent_unconfirmed": terminal, counted as
delivered, shown apart in send's report, `editions show`, the edition's history and the
log counts. A 4xx keeps retrying. Real SMTP server on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from service_env import ListSpec, recording_server, write_project

from digest.cli import main
from digest.logs import delivery_counts
from digest.store import open_store

pytest_plugins = ["store_backends"]


def test_a_drop_after_the_final_dot_ends_sent_unconfirmed(tmp_path: Path,
                                                          store_url: str) -> None:
    env = {"DIGEST_DATABASE_URL": store_url, "DIGEST_SECRET_KEY": "k" * 32}
    with recording_server() as srv:
        config = write_project(tmp_path, lists={"daily": ListSpec(readers=5)}, relay=srv)
        with open_store(store_url) as store:
            store.add_subscriber("daily", "dropalways@example.org")  # stored, then dropped
            store.add_subscriber("daily", "greylist@example.org")  # 450 once, then 250
        result = CliRunner().invoke(main, ["send", "--config", str(config)], env=env)
        assert result.exit_code == 0, result.output
        out = " ".join(result.stdout.split())
        got = srv.handler.by_rcpt()
    assert got["dropalways@example.org"] == 2  # the first and its one retry, no more
    assert got["greylist@example.org"] == 1 and len(got) == 7
    assert "was delivered (1 of them unconfirmed: the connection dropped after the message " \
        "was sent)" in out
    assert "sent, unconfirmed" in out  # the report's table row
    with open_store(store_url) as store:
        [record] = store.list_editions("daily", limit=1)
        summary = store.delivery_summary(record.id)
        assert summary == {"sent": 6, "sent_unconfirmed": 1}
        assert record.status == "sent"
        assert delivery_counts(summary) == {"sent": 7, "failed": 0, "waiting": 0,
                                            "skipped": 0, "unconfirmed": 1}
        last = store.edition_events(record.id)[-1]
        assert last.detail is not None and last.detail["sent_unconfirmed"] == 1
        assert "6 sent, 1 sent_unconfirmed, 0 failed" in last.cause
    shown = CliRunner().invoke(main, ["editions", "show", str(record.id), "--config",
                                      str(config)], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Delivery: 6 sent, 1 sent_unconfirmed, 0 failed, 0 expired, 0 skipped, 0 waiting" \
        in " ".join(shown.stdout.split())
