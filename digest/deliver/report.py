"""The delivery report (counts and grouped reasons) and the terminal progress bar."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

__all__ = ["DeliveryReport", "ProgressView"]


@dataclass
class DeliveryReport:
    """What one run did. Counts are events of this run: ``retried`` counts deferrals (one
    row may be retried several times); ``deferred`` counts rows still waiting at the end."""

    edition_id: int | None = None
    sent: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    skipped: int = 0
    suppressed: int = 0
    ambiguous: int = 0  # disconnects/timeouts inside DATA: the relay may hold a copy
    unconfirmed: int = 0  # rows ended "sent_unconfirmed" (max_ambiguous reached)
    late: int = 0  # outcomes that came after their claim was lost: kept as events only
    lease_lost: int = 0  # claims not sent because their lease ran out first (fencing)
    deferred: int = 0
    next_retry_at: datetime | None = None
    waited: float | None = None  # seconds spent waiting for retries before send_wait ended it
    stopped: str | None = None  # why the run ended before every row was terminal
    interrupted: str | None = None  # a requested stop (e.g. "SIGTERM") left rows queued
    reasons: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    ledger: dict[str, int] = field(default_factory=dict)  # the edition's rows per status
    elapsed: float = 0.0

    def count(self, status: str, reason: str) -> None:
        """Add one event of ``status`` ("sent", "failed", ...) with its ``reason``."""
        setattr(self, status, getattr(self, status) + 1)
        if status != "sent":
            self.reasons[status][reason] += 1

    @property
    def done(self) -> bool:
        """True when nothing of the edition is left to send."""
        return self.deferred == 0 and self.stopped is None and self.interrupted is None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` and logs."""
        return {
            "edition_id": self.edition_id, "sent": self.sent, "failed": self.failed,
            "retried": self.retried, "expired": self.expired, "skipped": self.skipped,
            "suppressed": self.suppressed, "ambiguous": self.ambiguous,
            "unconfirmed": self.unconfirmed, "late": self.late, "lease_lost": self.lease_lost,
            "deferred": self.deferred,
            "next_retry_at": self.next_retry_at.isoformat() if self.next_retry_at else None,
            "waited": round(self.waited, 3) if self.waited is not None else None,
            "stopped": self.stopped, "interrupted": self.interrupted, "elapsed": round(self.elapsed, 3),
            "reasons": {k: dict(v) for k, v in self.reasons.items()},
            "ledger": dict(self.ledger),
        }

    def waiting_sentence(self) -> str:
        """What happens to the rows still waiting (never "delivered", never "run send
        again": the scheduler's periodic pass or a ``worker`` finishes them)."""
        when = self.next_retry_at.isoformat(timespec="seconds") if self.next_retry_at \
            else "unknown"
        return (f"{self.deferred} row(s) wait for a retry, the next due {when}; the "
                "scheduler's periodic pass or a `worker` finishes them (each within its "
                "retry window).")

    def render(self, console: Console) -> None:
        """Print the final report: the counts, then each reason grouped under its status."""
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        title = f"Delivery report{f' — edition {self.edition_id}' if self.edition_id else ''}"
        table = Table(title=title, show_header=True, header_style="bold")
        table.add_column("outcome")
        table.add_column("count", justify="right")
        for name in ("sent", "failed", "retried", "expired", "skipped", "deferred"):
            table.add_row(name, str(getattr(self, name)))
            if name == "sent" and self.unconfirmed:
                table.add_row("sent, unconfirmed", str(self.unconfirmed))
        console.print(table)
        console.print(f"{self.sent} sent in {self.elapsed:.1f} s ({rate:.0f}/s)"
                      + (f"; {self.suppressed} addresses suppressed" if self.suppressed else "")
                      + (f"; {self.ambiguous} ambiguous outcome(s) (a disconnect or timeout "
                         "after the message was sent: the relay may hold a copy)"
                         if self.ambiguous else ""), highlight=False)
        if self.late or self.lease_lost:
            console.print(f"{self.lease_lost} claim(s) not sent because their lease ran out "
                          f"first; {self.late} reply(ies) came after their claim was lost "
                          "(kept as events, not counted as outcomes)", highlight=False)
        for status in ("failed", "retried", "unconfirmed", "expired", "skipped"):
            grouped = self.reasons.get(status)
            if not grouped:
                continue
            console.print(f"[bold]{status}[/]:")
            for reason, n in sorted(grouped.items(), key=lambda kv: -kv[1]):
                console.print(f"  {n:>6}  {reason}", highlight=False, markup=False)
        if self.interrupted:
            console.print(f"Stopped on request ({escape(self.interrupted)}): {self.deferred} "
                          "left queued, none in flight; they go out on the next run.",
                          highlight=False)
        if self.stopped:
            console.print(f"[bold red]stopped:[/] {escape(self.stopped)}", highlight=False)


class ProgressView:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, *, enabled: bool, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        self._progress: Progress | None = None
        if enabled and console.is_terminal and total > 0:
            self._progress = Progress(
                TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                transient=False)
            self._task = self._progress.add_task("send", total=total, info="")

    def __enter__(self) -> ProgressView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, report: DeliveryReport) -> None:
        """Move one row on and refresh the running counts."""
        if self._progress is not None:
            info = f"sent {report.sent} failed {report.failed} retried {report.retried}"
            self._progress.update(self._task, advance=1, info=info)
