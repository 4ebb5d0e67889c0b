"""What an operator sees: is the scheduler alive, when does each list go out next, which
editions are due and not sent, and which still have rows waiting (``status``, ``/healthz``
and the scheduler's start line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.logs import delivery_counts, iso_time
from digest.pipeline.locks import SCHEDULER_LEASE
from digest.pipeline.overdue import DueEdition, due_editions

if TYPE_CHECKING:
    from digest.store import EditionWaits, OpenEdition, Store

__all__ = ["NextRun", "SchedulerHealth", "ServiceStatus", "next_runs", "next_runs_text",
           "scheduler_health", "service_status"]


@dataclass(frozen=True, slots=True)
class SchedulerHealth:
    """The scheduler as its lease shows it: ``state`` is "alive" (heartbeat within the
    lease), "stale" (no heartbeat for longer: crashed, hung or cut off), "stopped" (it let
    go of the lock) or "none" (no scheduler ever ran on this database)."""

    state: str
    holder: str | None = None
    heartbeat_at: datetime | None = None
    heartbeat_age: timedelta | None = None
    stopped_at: datetime | None = None

    @property
    def healthy(self) -> bool:
        """False when a scheduler ran but is no longer alive (``/healthz`` answers 503)."""
        return self.state in ("alive", "none")

    def sentence(self) -> str:
        """One line, e.g. ``scheduler: alive (mail1:4242:9f3a1c, heartbeat 3 s ago at …)``."""
        if self.state == "none":
            return "scheduler: none has run on this database"
        assert self.heartbeat_at is not None and self.heartbeat_age is not None
        age = self.heartbeat_age.total_seconds()
        when = f"{age:.0f} s ago" if age < 120 else f"{age / 60:.0f} min ago"
        if self.state == "stopped" and self.stopped_at is not None:
            return (f"scheduler: stopped ({self.holder} let go of the lock at "
                    f"{iso_time(self.stopped_at)})")
        return (f"scheduler: {self.state} ({self.holder}, last heartbeat {when} at "
                f"{iso_time(self.heartbeat_at)})")


@dataclass(frozen=True, slots=True)
class NextRun:
    """A list's next scheduled run, in its own zone and in UTC (None: never)."""

    list_name: str
    trigger: str
    local: datetime | None
    review_at: datetime | None = None  # when the draft is built for review, if any

    @property
    def utc(self) -> datetime | None:
        return self.local.astimezone(UTC) if self.local is not None else None

    def text(self) -> str:
        if self.local is None or self.utc is None:
            return f"{self.list_name} never"
        review = (f", draft for review at {iso_time(self.review_at)}"
                  if self.review_at is not None else "")
        return (f"{self.list_name} {iso_time(self.local)} {self.local.tzinfo} "
                f"({iso_time(self.utc).replace('+00:00', 'Z')}{review})")


@dataclass
class ServiceStatus:
    """Everything ``status`` prints: the scheduler, the next runs, and per unfinished
    edition its rows by state with ``waits`` (next retry, oldest claim and its owner,
    claims whose lease ran out, rows past their retry window)."""

    scheduler: SchedulerHealth
    next_runs: list[NextRun]
    editions: list[OpenEdition] = field(default_factory=list)
    waits: dict[int, EditionWaits] = field(default_factory=dict)
    retry_window: timedelta | None = None
    #: Due and not sent (send time passed, not published, held, cancelled or missed).
    due: list[DueEdition] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def overdue(self) -> int:
        """Rows waiting past their retry window, in every edition shown (``status``
        exits 3 when there are any: no scheduler or worker is finishing them)."""
        return sum(w.overdue for w in self.waits.values())

    def lines(self) -> list[str]:
        """The report, one fact per line (an edition's details indented under it)."""
        out = [self.scheduler.sentence()]
        out += [f"next run: {run.text()}" for run in self.next_runs]
        if not self.due:
            out.append("editions due and not sent: none")
        out += [f"edition due, not sent: {d.text(self.now)}" for d in self.due]
        if not self.editions:
            out.append("editions not finished: none")
        for ed in self.editions:
            counts = " ".join(f"{k}={v}" for k, v in delivery_counts(ed.counts).items())
            states = " ".join(f"{k}={v}" for k, v in sorted(ed.counts.items()))
            out.append(f"edition not finished: {ed.list_name} {ed.date.isoformat()} "
                       f"(id {ed.edition_id}): {counts} [{states}]")
            waits = self.waits.get(ed.edition_id)
            if waits is not None:
                out += self._details(waits)
        return out

    def _details(self, waits: EditionWaits) -> list[str]:
        out = []
        if waits.next_retry_at is not None:
            out.append(f"  next retry due {_z(waits.next_retry_at)}")
        if waits.oldest_claim_at is not None:
            out.append(f"  oldest claim {_z(waits.oldest_claim_at)} by "
                       f"{waits.oldest_claim_by or '?'}")
        for lapsed in waits.lapsed:
            out.append(f"  lease expired: {lapsed.worker} holds {lapsed.rows} row(s) whose "
                       f"claim lease ran out at {_z(lapsed.lease_until)} (crashed, paused or "
                       "cut off); the next claim takes them over")
        if waits.overdue:
            window = (f" ({_duration(self.retry_window)})" if self.retry_window else "")
            out.append(f"  {waits.overdue} row(s) wait past their retry window{window}: no "
                       "scheduler or worker has finished them; start `schedule` or "
                       "`worker`")
        return out


def _z(moment: datetime) -> str:
    return iso_time(moment.astimezone(UTC)).replace("+00:00", "Z")


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def scheduler_health(store: Store) -> SchedulerHealth:
    """The scheduler's state from its lease in the store.

    :raises StoreError: the database cannot be read.
    """
    lease = store.get_lease(SCHEDULER_LEASE)
    if lease is None:
        return SchedulerHealth("none")
    state = {"held": "alive", "expired": "stale", "released": "stopped"}[lease.state]
    return SchedulerHealth(state, lease.holder, lease.heartbeat_at, lease.heartbeat_age,
                           lease.released_at)


def next_runs(settings: Settings, now: datetime,
              list_name: str | None = None) -> list[NextRun]:
    """Each list's (or ``list_name``'s) next run after ``now``."""
    from digest.schedule import planned_jobs

    lists = [settings.get_list(list_name)] if list_name else list(settings.lists.values())
    return [NextRun(job.list_name, job.trigger, job.next_run, job.review_at)
            for job in planned_jobs(lists, now)]


def next_runs_text(settings: Settings, now: datetime) -> str:
    """``next runs: daily 2026-11-29T07:00:00+00:00 Europe/London (…Z); weekend …``."""
    return "next runs: " + "; ".join(run.text() for run in next_runs(settings, now))


def service_status(settings: Settings, store: Store, *, list_name: str | None = None,
                   now: datetime | None = None) -> ServiceStatus:
    """The scheduler's health, the next runs, the editions due and not sent, and the
    unfinished editions (of one list), each with what its rows wait for
    (:meth:`Store.edition_waits`).

    :raises ConfigError: ``list_name`` is not configured.
    :raises StoreError: the database cannot be read.
    """
    if list_name is not None:
        settings.get_list(list_name)
    now = now or datetime.now(UTC)
    window = settings.delivery.retry_window
    unfinished = store.unfinished_editions(list_name)
    waits = {ed.edition_id: store.edition_waits(ed.edition_id, now=now, retry_window=window)
             for ed in unfinished}
    return ServiceStatus(scheduler_health(store), next_runs(settings, now, list_name),
                         unfinished, waits, window,
                         due=due_editions(settings, store, now, list_name), now=now)
