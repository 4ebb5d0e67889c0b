"""Logging: one line per event on stderr, ISO 8601 timestamps with their UTC offset.

``schedule``, ``worker`` and ``serve`` log at INFO by default, so an operator sees one line
per edition event (each status change the store records: built, held, published, sent with
its counts, missed with the reason; and each delivery's counts), the scheduler's start with
each list's next run, its lock changes and its stop; other commands log warnings only (their
report is printed).
Libraries stay at WARNING (APScheduler, Alembic: a migration is logged by the store as one
line of its own) unless the level asked for is DEBUG; ``serve`` keeps uvicorn's startup
lines and its access log (tokens and query values redacted) in the same format
(:func:`uvicorn_log_config`). No line carries an address or a secret: the formatter masks
anything shaped like an address that a message let through.

Example line::

    2026-11-28T07:00:04.127+00:00 INFO digest.editions: edition 12 list=daily delivered:
    sent=497 unconfirmed=0 failed=1 waiting=0 skipped=0
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["ISOFormatter", "configure_logging", "delivery_counts", "iso_time",
           "uvicorn_log_config"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers of libraries that are chatty at INFO (per job, per request, per migration step).
QUIET = ("apscheduler", "alembic", "httpx", "aiosmtpd", "mail.log", "asyncio")


def iso_time(moment: datetime) -> str:
    """``moment`` as ISO 8601 to the second with its offset (``2026-11-28T07:00:00+00:00``)."""
    return moment.isoformat(timespec="seconds")


#: Anything shaped like an email address (``local@domain.tld``), and its URL-encoded form.
_ADDRESS = re.compile(r"[\w.!#$%&'*+=?^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")


class ISOFormatter(logging.Formatter):
    """``%(asctime)s`` as local ISO 8601 time with milliseconds and the UTC offset; every
    line (a traceback included) with anything shaped like an email address replaced by
    ``[address]``, the last guard of "no line carries an address"."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).astimezone().isoformat(
            timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return _ADDRESS.sub("[address]", line) if "@" in line or "%40" in line else line


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line (it may be swapped)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: int | str, *, stream: Any = None) -> None:
    """Send every log line to stderr (or ``stream``) in :data:`FORMAT` at ``level``.

    Replaces handlers set earlier, so it may be called again (tests, embedding).
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(ISOFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG
                                         else max(numeric, logging.WARNING))


def uvicorn_log_config() -> dict[str, object]:
    """uvicorn's ``log_config``: its loggers (startup lines, access log) at INFO, on stderr,
    in :data:`FORMAT` with ISO timestamps; other loggers are left as they are."""
    handler = {"class": "logging.StreamHandler", "formatter": "iso",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"iso": {"()": ISOFormatter, "fmt": FORMAT}},
        "handlers": {"uvicorn": handler},
        "loggers": {name: {"handlers": ["uvicorn"], "level": "INFO", "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def delivery_counts(summary: Mapping[str, int]) -> dict[str, int]:
    """A ledger summary (rows per status) as ``sent, failed, waiting, skipped`` and any
    other state by name: sent counts sent and sent-unconfirmed rows (the latter also shown
    apart as ``unconfirmed`` when there are any), failed counts failed and expired rows,
    waiting queued and sending."""
    counts = {
        "sent": summary.get("sent", 0) + summary.get("sent_unconfirmed", 0),
        "failed": summary.get("failed", 0) + summary.get("expired", 0),
        "waiting": summary.get("queued", 0) + summary.get("sending", 0),
        "skipped": summary.get("skipped", 0),
    }
    if summary.get("sent_unconfirmed"):
        counts["unconfirmed"] = summary["sent_unconfirmed"]
    known = {"sent", "sent_unconfirmed", "failed", "expired", "queued", "sending", "skipped"}
    counts.update({k: v for k, v in summary.items() if k not in known})
    return counts
