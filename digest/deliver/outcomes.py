"""Recording what happened to each message: sent (group-committed), retried with backoff,
failed or expired, or handed back when the fault is not the recipient's.

:class:`OutcomeRecorder` is the part of :class:`digest.deliver.worker.Worker` that writes
outcomes to the ledger. "Sent" results are group-committed in the background while the
tasks go on sending; the worker's DATA gate keeps the results waiting for their commit and
the messages in DATA at two per connection (``tasks``) together. A row stays "sending"
until its result is committed, so after a crash only rows still "sending" can be sent
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from digest.config import DeliverySettings
from digest.deliver.classify import Kind, Outcome
from digest.deliver.pool import SMTPPool
from digest.deliver.report import DeliveryReport, ProgressView
from digest.errors import DeliveryError

__all__ = ["OutcomeRecorder", "backoff_delay"]


def backoff_delay(attempts: int, settings: DeliverySettings,
                  rand: Callable[[], float] = random.random) -> timedelta:
    """Exponential backoff with full jitter: uniform in [0, min(cap, first·2^attempts)],
    but never under a quarter of ``first_retry`` (a greylisting server needs a pause)."""
    first = settings.first_retry.total_seconds()
    ceiling = min(settings.max_retry_delay.total_seconds(), first * 2 ** min(attempts, 30))
    return timedelta(seconds=max(first / 4, ceiling * rand()))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class OutcomeRecorder:
    """Writes each outcome to the ledger; mixed into ``Worker``, whose state it shares."""

    #: A group commit of "sent" rows waits this long for more rows unless it must go now
    #: (seconds): fewer, larger commits leave more of the GIL to the SMTP conversations.
    commit_window = 0.002

    if TYPE_CHECKING:  # provided by Worker
        store: Any
        report: DeliveryReport
        clock: Callable[[], datetime]
        delivery: DeliverySettings
        progress: ProgressView | None
        tasks: int
        buffer: deque[Any]
        changed: asyncio.Event
        stop_error: BaseException | None
        config_failures: int
        _sent: list[tuple[Any, str]]
        _uncommitted: int
        _in_data: int
        _room: asyncio.Event
        _flush_now: asyncio.Event
        _flusher: asyncio.Task[None] | None
        _unsaved: list[tuple[Any, str]]

        async def db(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
        def _connect_failed(self, pool: SMTPPool, outcome: Outcome) -> None: ...
        def _config_failure(self, outcome: Outcome, error: DeliveryError) -> None: ...

    async def _record(self, pool: SMTPPool, claim: Any, outcome: Outcome) -> None:
        if outcome.ambiguous:
            self.report.ambiguous += 1
        if outcome.kind is Kind.SENT:
            self.config_failures = 0
            if hasattr(self.store, "mark_sent_many"):
                await self._queue_sent(claim, outcome.reason)
                return
            await self._finish(claim, "sent", outcome)
        elif outcome.kind is Kind.RETRY and outcome.ambiguous and \
                getattr(claim, "ambiguous", 0) >= self.delivery.max_ambiguous:
            # Retried max_ambiguous times after ambiguous outcomes already, and the relay may
            # hold the message: no more copies (README, delivery contract).
            await self._finish(claim, "sent_unconfirmed", outcome)
        elif outcome.kind is Kind.RETRY:
            await self._retry(claim, outcome)
        elif outcome.kind in (Kind.FAIL, Kind.SUPPRESS):
            await self._finish(claim, "failed", outcome)
        else:
            # Not this recipient's fault: hand the row to another task, untouched.
            self.buffer.appendleft(claim)
            if outcome.kind is Kind.AUTH:
                self._connect_failed(pool, outcome)
            elif outcome.kind is Kind.SENDER:
                self._config_failure(outcome, DeliveryError(
                    f"The relay {pool.target.name} refuses our envelope sender "
                    f"({outcome.reason}); check the list's from address and the relay's "
                    "sender policy."))
            else:
                self._connect_failed(pool, outcome)

    async def _retry(self, claim: Any, outcome: Outcome) -> None:
        now = self.clock()
        retry_at = now + backoff_delay(claim.attempts, self.delivery)
        first = _utc(claim.first_attempt_at or now)
        if retry_at - first > self.delivery.retry_window:
            # The window ends: an ambiguous last outcome may have reached the reader.
            await self._finish(claim, "sent_unconfirmed" if outcome.ambiguous else "expired",
                               outcome)
            return
        recorded = await self.db(self.store.mark_deferred, claim, error=outcome.reason,
                                 retry_at=retry_at, now=now, ambiguous=outcome.ambiguous)
        if recorded is False:
            self.report.late += 1
            return
        self.report.count("retried", outcome.reason)

    async def _finish(self, claim: Any, status: str, outcome: Outcome) -> None:
        now = self.clock()
        suppress = False
        if status == "sent":  # a store without group commit
            recorded = await self.db(self.store.mark_sent, claim, response=outcome.reason,
                                     now=now)
        elif status == "failed":
            suppress = outcome.kind is Kind.SUPPRESS
            recorded = await self.db(self.store.mark_failed, claim, code=outcome.code,
                                     error=outcome.reason, suppress=suppress, now=now)
        elif status == "sent_unconfirmed":
            recorded = await self.db(self.store.mark_unconfirmed, claim,
                                     error=outcome.reason, now=now)
        else:
            recorded = await self.db(self.store.mark_expired, claim,
                                     error=f"last error: {outcome.reason}", now=now)
        if recorded is False:  # the claim was lost meanwhile: kept as a late reply only
            self.report.late += 1
            return
        if suppress:
            self.report.suppressed += 1
        self.report.count("unconfirmed" if status == "sent_unconfirmed" else status,
                          outcome.reason)
        if self.progress is not None:
            self.progress.advance(self.report)

    # -- group commit of "sent" rows -------------------------------------------------------

    def _count_sent(self, batch: list[tuple[Any, str]], ended: int) -> None:
        """Count a group commit: ``ended`` rows recorded as sent, the rest late replies
        (their claims were lost; the store kept them as events)."""
        for _, response in batch[:ended]:
            self.report.count("sent", response)
        self.report.late += len(batch) - ended

    async def _queue_sent(self, claim: Any, response: str) -> None:
        """Queue a "sent" result for the group commit (the row stays "sending" in the
        ledger until it is committed). It never waits: the DATA gate
        (``Worker._enter_data``) already counted this message, and holds the next ones
        back while too many results wait."""
        self._uncommitted += 1
        self._sent.append((claim, response))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_sent())

    async def _flush_sent(self) -> None:
        while self._sent:
            if self.commit_window > 0 and not self._flush_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.commit_window):
                        await self._flush_now.wait()
            self._flush_now.clear()
            batch, self._sent = self._sent, []
            try:
                ended = await self.db(self.store.mark_sent_many,  # type: ignore[attr-defined]
                                      batch, now=self.clock())
            except Exception as exc:  # noqa: BLE001 - run() raises it; rows stay "sending"
                if self.stop_error is None:
                    self.stop_error = exc
                self._unsaved.extend(batch)  # run() tries once more before claims are released
                continue
            finally:
                self._uncommitted -= len(batch)
                self._room.set()
                self.changed.set()
            self._count_sent(batch, ended)
            if self.progress is not None:
                self.progress.advance(self.report)
