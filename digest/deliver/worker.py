"""The claim → build → send → mark loop over one edition's ledger rows.

One task per pooled connection. A task connects first and only then takes a claim, so a
relay that cannot be reached charges no row. Claims are taken in batches of about a quarter
of a second of sending at the rate measured (two rows per task at first, at most
``claim_batch``), refilled in the background before the buffer runs dry, just before they
are sent, which keeps them far inside their lease; a claimed row that was never sent is not
a repeat after a crash (it comes back when its lease runs out). Every outcome is written to
the ledger as soon as it is known. "Sent" results are group-committed in the background
while the tasks go on sending; a transaction waits (before MAIL, and again at its DATA
command: the DATA gate) while the messages past that gate and the results waiting for their
commit are two per connection. A row stays "sending" until its result is committed, so
after a crash (kill -9) only rows still "sending" can be sent again, and at most two per
connection: those whose "sent" was waiting for its commit, and the messages past the DATA
gate. A requested stop (:mod:`digest.deliver.stop`) ends every task after its
transaction under way; the claims it still holds are released by ``deliver_edition``.

Fencing: a claim is sent only while more than a message timeout of its lease is left,
checked before MAIL FROM and again before DATA (buffered claims included), so a process
paused past its lease (SIGSTOP, a VM pause, swap) sends none of the rows another worker may
have taken over; every mark carries the claim's token, so its late results are kept as
events (:mod:`digest.store.ledger`), never recorded as outcomes. What such a process can
still repeat is what was in DATA (or whose 250 awaited its commit) when it stopped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from digest.config import DeliverySettings
from digest.deliver.classify import Kind, Outcome, Phase, classify_exception, classify_reply
from digest.deliver.outcomes import OutcomeRecorder, backoff_delay
from digest.deliver.pool import (
    DataRefused,
    SMTPConnection,
    SMTPPool,
    TransactionError,
    send_with_deadline,
)
from digest.deliver.report import DeliveryReport, ProgressView
from digest.deliver.stop import StopRequest
from digest.errors import AuthenticationError, DeliveryError, RelayUnavailableError, StoreError
from digest.models import Signer, Unsigned

__all__ = ["ClaimLike", "LedgerStore", "Worker", "backoff_delay"]

log = logging.getLogger("digest.deliver")


class ClaimLike(Protocol):
    delivery_id: int
    email: str
    attempts: int
    first_attempt_at: datetime | None
    worker_id: str
    token: int
    lease_until: datetime | None
    ambiguous: int


class LedgerStore(Protocol):
    """The part of ``digest.store.Store`` delivery uses (see :mod:`digest.store.ledger`)."""

    def claim_deliveries(self, edition_id: int, *, worker_id: str, limit: int, now: datetime,
                         lease: timedelta) -> list[Any]: ...
    def mark_sent(self, claim: Any, *, response: str, now: datetime) -> bool: ...
    def mark_deferred(self, claim: Any, *, error: str, retry_at: datetime, now: datetime,
                      ambiguous: bool = False) -> bool: ...
    def mark_unconfirmed(self, claim: Any, *, error: str, now: datetime) -> bool: ...
    def mark_failed(self, claim: Any, *, code: int | None, error: str, suppress: bool,
                    now: datetime) -> bool: ...
    def mark_expired(self, claim: Any, *, error: str, now: datetime) -> bool: ...
    def release_claims(self, worker_id: str, *, edition_id: int | None = None) -> int: ...
    def delivery_summary(self, edition_id: int) -> dict[str, int]: ...
    def delivery_reasons(self, edition_id: int) -> dict[str, dict[str, int]]: ...
    def next_wakeup(self, edition_id: int) -> datetime | None: ...


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Worker(OutcomeRecorder):
    """Sends one edition's due rows through ``pools`` until none is left (or it must stop);
    :class:`~digest.deliver.outcomes.OutcomeRecorder` records each outcome."""

    #: A claim asks for about this many seconds of sending at the rate just measured.
    CLAIM_SPAN = 0.25

    def __init__(self, edition_id: int, *, store: LedgerStore,
                 build: Callable[[Any], tuple[str, str, bytes | Unsigned]],
                 pools: Sequence[SMTPPool],
                 delivery: DeliverySettings, worker_id: str, report: DeliveryReport,
                 clock: Callable[[], datetime], lease: timedelta, max_wait: float | None,
                 relay_patience: float, stop: StopRequest | None = None,
                 send_wait: float | None = None, signer: Signer | None = None) -> None:
        self.edition_id = edition_id
        self.store = store
        self.build = build
        self.pools = pools
        self.delivery = delivery
        self.worker_id = worker_id
        self.report = report
        self.clock = clock
        self.lease = lease
        self.max_wait = max_wait
        # Waiting for retries is bounded in all by ``send_wait`` seconds, counted from the
        # first time nothing was due (``send`` and the daily job return after it).
        self.send_wait = send_wait
        self._idle_since: float | None = None
        self.relay_patience = relay_patience
        self.stop = stop
        self.stopping = False  # a stop was requested: no new claim, no new transaction
        self._stopped = asyncio.Event()
        self.tasks = sum(p.size for p in pools)
        # Claims are taken in batches (a claim transaction costs as much as ~5 marks), sized
        # to what the pools sent in the last CLAIM_SPAN seconds (see _claim_size): from two
        # rows per connection up to claim_batch, and never more than rate-limited relays
        # send well inside the lease. A claimed row is sent even if its subscriber
        # unsubscribes meanwhile, so a claim covers a fraction of a second of sending.
        lease_s = lease.total_seconds()
        most = delivery.claim_batch
        rates = [p.limiter.per_second for p in pools if p.limiter.per_second]
        if rates:
            most = min(most, max(self.tasks, int(sum(rates) * lease_s / 4)))
        self.max_batch = max(1, most)
        self.min_batch = max(1, min(self.max_batch, 2 * self.tasks))
        self.batch = self.min_batch
        # Refill the buffer in the background once it is down to this many rows, so tasks
        # rarely wait for a claim; the buffer never holds more than ``batch`` rows.
        self.refill_at = self.batch // 2
        self.done_rows = 0  # rows whose transaction ended (any outcome), for _claim_size
        self._sized_at = (time.monotonic(), 0)
        self._refill: asyncio.Task[None] | None = None
        self.lease_s = lease_s
        # A claim is sent only while this much of its lease is left, so the transaction
        # (bounded by message_timeout) ends before anyone else may take the row over.
        self.lease_margin = timedelta(seconds=min(delivery.message_timeout, lease_s / 2))
        self.buffer: deque[Any] = deque()
        self.claim_lock = asyncio.Lock()
        self.changed = asyncio.Event()  # an in-flight message finished
        self.in_flight = 0  # rows taken from the buffer whose outcome is not recorded yet
        self.stop_error: BaseException | None = None
        self.finished = False
        self.config_failures = 0
        self.relay_down_since: float | None = None
        self.last_relay_error = ""
        self.progress: ProgressView | None = None
        # Group commit of "sent" results when the store offers mark_sent_many: rows queued
        # while a commit runs go in the next one. Rows queued or being committed plus
        # messages past the DATA gate are at most 2 x ``tasks`` (the repeat bound after a
        # crash counts on it, see _enter_data).
        self._sent: list[tuple[Any, str]] = []
        self._uncommitted = 0
        # Messages past the DATA gate whose outcome is not recorded yet (see _enter_data).
        self._in_data = 0
        self._room = asyncio.Event()  # set whenever _uncommitted or _in_data goes down
        self._room.set()
        self._flush_now = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._unsaved: list[tuple[Any, str]] = []  # sent, but their commit failed
        self._db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="digest-ledger")
        # With a signer, the next rows' messages are built a little ahead (in the event
        # loop) and their DKIM signatures made by the signer meanwhile (a child process:
        # the private-key step runs on another core).
        self.signer = signer
        self._ahead: dict[int, _Ahead] = {}

    @property
    def busy(self) -> bool:
        """Some row taken from the buffer has no committed outcome yet."""
        return bool(self.in_flight or self._uncommitted)

    async def db(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a (blocking) store call on the ledger thread, so a busy database never
        stalls the SMTP conversations of the other tasks; retried briefly on StoreError."""
        loop = asyncio.get_running_loop()
        call = functools.partial(func, *args, **kwargs)
        for attempt in range(3):
            try:
                return await loop.run_in_executor(self._db, call)
            except StoreError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _on_stop(self) -> None:
        self.stopping = True
        self._stopped.set()
        self.changed.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is requested."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def run(self, progress: ProgressView | None = None) -> None:
        """Run every task to the end; raise the error that stopped the run, if any.

        A requested stop (see :mod:`digest.deliver.stop`) ends every task once its
        transaction under way, if any, has finished and been recorded."""
        with self.stop.watch(self._on_stop) if self.stop else contextlib.nullcontext():
            await self._run(progress)

    async def _run(self, progress: ProgressView | None) -> None:
        self.progress = progress
        tasks = [asyncio.create_task(self._task(pool, conn))
                 for pool in self.pools for conn in pool.connections]
        try:
            # Not gather: a task that misses its cancellation (asyncio.wait_for in 3.11 can
            # swallow one) would keep the run going; here a cancel reaches run() at once.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self.finished = True  # every loop ends even if a cancellation got lost
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Results already known are committed, not dropped: release_claims would
            # otherwise put rows the relay accepted back in the queue.
            self._flush_now.set()
            others = [t for t in (self._refill, self._flusher) if t is not None]
            await asyncio.gather(*others, return_exceptions=True)
            if self._unsaved:
                # The relay accepted these; a database that failed a moment ago may be back.
                # If not, release_claims re-queues them: repeats stay within the bound.
                with contextlib.suppress(Exception):
                    ended = await self.db(self.store.mark_sent_many,  # type: ignore[attr-defined]
                                          self._unsaved, now=self.clock())
                    self._count_sent(self._unsaved, ended)
                    self._unsaved = []
            self._db.shutdown(wait=True)
            self._drop_builds()
        if self.stop_error is not None:
            raise self.stop_error

    # -- claims ---------------------------------------------------------------------------

    async def _next_claim(self, pool: SMTPPool) -> Any | None:
        """The next row to send, waiting for backoffs and rate limits; None when done."""
        while True:
            if self.stop_error is not None or self.finished or self.stopping:
                return None
            wait = pool.limiter.delay()
            too_long = self.max_wait is not None and wait > self.max_wait
            if wait > self.lease_s / 4 or too_long:
                # Do not sit on claims past their lease: hand them back first (under the
                # claim lock, so no refill is adding rows meanwhile).
                if self.buffer and not self.busy:
                    async with self.claim_lock:
                        if not self.busy:
                            self.buffer.clear()
                            self._drop_builds()
                            await self.db(self.store.release_claims, self.worker_id,
                                          edition_id=self.edition_id)
                if too_long and not self.busy:
                    self.report.stopped = self.report.stopped or (
                        f"the relay's rate limit allows the next message in {wait:.0f} s")
                    self.finished = True
                    return None
            if wait > 0:
                await self._pause(min(wait, 1.0))
                continue
            if self.buffer:
                claim = self.buffer.popleft()
                if self.signer is not None:
                    self._build_ahead()
                if len(self.buffer) <= self.refill_at and (
                        self._refill is None or self._refill.done()):
                    self._refill = asyncio.create_task(self._refill_buffer())
                return claim
            async with self.claim_lock:
                if self.buffer or self.finished or self.stop_error is not None:
                    continue
                claims = await self.db(self.store.claim_deliveries, self.edition_id,
                                       worker_id=self.worker_id, limit=self._claim_size(),
                                       now=self.clock(), lease=self.lease)
                if claims:
                    self.buffer.extend(claims)
                    continue
                await self._wait_for_work()

    async def _refill_buffer(self) -> None:
        """Top the buffer up to ``batch`` rows while the tasks still have rows to send."""
        async with self.claim_lock:
            if (len(self.buffer) > self.refill_at or self.finished
                    or self.stop_error is not None):
                return
            want = self._claim_size() - len(self.buffer)
            if want <= 0:
                return
            try:
                claims = await self.db(self.store.claim_deliveries, self.edition_id,
                                       worker_id=self.worker_id, limit=want,
                                       now=self.clock(), lease=self.lease)
            except Exception:  # a task's own claim retries and reports it
                log.debug("background claim failed", exc_info=True)
                return
            self.buffer.extend(claims)

    # -- signing ahead (signer) -----------------------------------------------------------

    def _build_ahead(self) -> None:
        """Build the messages of the next rows in the buffer (two per connection), each
        one's DKIM signatures asked of the signer, so they are ready when its turn comes."""
        for claim in itertools.islice(self.buffer, 2 * self.tasks):
            if claim.delivery_id not in self._ahead:
                self._ahead[claim.delivery_id] = self._start_build(claim)

    def _start_build(self, claim: Any) -> _Ahead:
        try:
            sender, rcpt, data = self.build(claim)
        except Exception as exc:  # noqa: BLE001 - raised again when the row's turn comes
            return _Ahead("", "", b"", None, exc)
        if isinstance(data, bytes) or self.signer is None:
            return _Ahead(sender, rcpt, data, None, None)
        return _Ahead(sender, rcpt, data,
                      asyncio.ensure_future(self.signer.signatures(data)), None)

    def _drop_builds(self) -> None:
        """Forget the messages built ahead for claims that were handed back."""
        for ahead in self._ahead.values():
            if ahead.signatures is not None:
                ahead.signatures.cancel()
        self._ahead.clear()

    async def _build(self, claim: Any) -> tuple[str, str, bytes]:
        """The claim's (envelope sender, recipient, bytes to send), signed; its build's
        error, if any."""
        ahead = self._ahead.pop(claim.delivery_id, None) or self._start_build(claim)
        if ahead.error is not None:
            raise ahead.error
        data = ahead.data
        if isinstance(data, bytes):
            return ahead.sender, ahead.rcpt, data
        if ahead.signatures is None or ahead.signatures.cancelled():
            return ahead.sender, ahead.rcpt, data.signed(data.signatures())
        future = ahead.signatures
        # Usually done by now: take it at once (awaiting costs a turn of the loop).
        signatures = future.result() if future.done() else await future
        return ahead.sender, ahead.rcpt, data.signed(signatures)

    def _claim_size(self) -> int:
        """Rows the next claim asks for: what the pools sent in the last ``CLAIM_SPAN``
        seconds (measured since the previous sizing), between ``min_batch`` (two rows per
        connection) and ``max_batch`` (``claim_batch``, or what rate-limited relays send in
        a quarter of the lease); also moves ``refill_at`` to half of it."""
        now = time.monotonic()
        since, done = self._sized_at
        if now - since >= self.CLAIM_SPAN:
            rate = (self.done_rows - done) / (now - since)
            self.batch = max(self.min_batch, min(self.max_batch, int(rate * self.CLAIM_SPAN)))
            self.refill_at = self.batch // 2
            self._sized_at = (now, self.done_rows)
        return self.batch

    async def _wait_for_work(self) -> None:
        """Nothing is due: wait for the next due row, an in-flight result, or finish."""
        wake = await self.db(self.store.next_wakeup, self.edition_id)
        if wake is None and not self.busy:
            self.finished = True
            return
        delay = 1.0
        if wake is not None:
            delay = max(0.0, (_utc(wake) - self.clock()).total_seconds())
            if self.max_wait is not None and delay > self.max_wait and not self.busy:
                self.finished = True
                return
            if self.send_wait is not None and not self.busy:
                idle = time.monotonic()
                if self._idle_since is None:
                    self._idle_since = idle
                if idle + delay - self._idle_since > self.send_wait:
                    self.report.waited = idle - self._idle_since
                    self.finished = True
                    return
        if self.stopping:
            return
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(max(delay, 0.01), 1.0)):
                await self.changed.wait()

    # -- one task per connection -------------------------------------------------------------

    async def _task(self, pool: SMTPPool, conn: SMTPConnection) -> None:
        pause = 0.2
        while self.stop_error is None and not self.finished and not self.stopping:
            try:
                if not conn.connected:  # asyncio.timeout: wait_for can swallow a cancel (3.11)
                    async with asyncio.timeout(self.delivery.message_timeout):
                        await conn.connect()
            except (TransactionError, TimeoutError) as err:
                cause = err.cause if isinstance(err, TransactionError) else err
                self._connect_failed(pool, classify_exception(cause, Phase.CONNECT))
                await self._pause(pause * (0.5 + random.random()))
                pause = min(pause * 2, 10.0)
                continue
            pause = 0.2
            self.relay_down_since = None
            claim = await self._next_claim(pool)
            if claim is None:
                break
            await self._deliver(pool, conn, claim)

    def _connect_failed(self, pool: SMTPPool, outcome: Outcome) -> None:
        if outcome.kind is Kind.AUTH:
            self._config_failure(outcome, AuthenticationError(
                f"The relay {pool.target.name} refused our credentials ({outcome.reason}); "
                "check the relay username and DIGEST_SMTP_PASSWORD."))
            return
        now = time.monotonic()
        self.last_relay_error = outcome.reason
        if self.relay_down_since is None:
            self.relay_down_since = now
        elif now - self.relay_down_since > self.relay_patience:
            self.stop_error = RelayUnavailableError(
                f"The relay {pool.target.name} ({pool.target.host}:{pool.target.port}) could "
                f"not be used for {self.relay_patience:.0f} s ({outcome.reason}); check it is "
                "running and the [[relays]] settings, then run send again.")

    def _config_failure(self, outcome: Outcome, error: DeliveryError) -> None:
        self.config_failures += 1
        log.warning("relay configuration problem: %s", outcome.reason)
        if self.config_failures >= self.delivery.max_auth_failures and self.stop_error is None:
            self.stop_error = error

    async def _deliver(self, pool: SMTPPool, conn: SMTPConnection, claim: Any) -> None:
        # Counted before the first await: a task handing claims back (rate limits, see
        # _next_claim) must see this one as busy, or it would release a row still sent.
        self.in_flight += 1
        gate: _DataGate | None = None
        try:
            now = self.clock()
            first = _utc(claim.first_attempt_at or now)
            if now - first > self.delivery.retry_window:
                await self._finish(claim, "expired", Outcome(
                    Kind.RETRY, "retry window ran out before this attempt"))
                return
            try:
                sender, rcpt, data = await self._build(claim)
            except Exception as exc:  # a poison row must not stop the others
                reason = f"could not build the message: {type(exc).__name__}: {exc}"[:200]
                await self._finish(claim, "failed", Outcome(Kind.FAIL, reason))
                return
            if not await self._slot(pool):  # stopping: the claim goes back untouched
                self.buffer.appendleft(claim)
                return
            if not self.lease_left(claim):
                # Fencing: the claim's lease ran out while it waited (a paused process, a
                # slow database or rate limit). Another worker may own the row now; send
                # nothing. If nobody took it, it comes back to any claim as a lost row.
                self.report.lease_lost += 1
                return
            # The DATA gate is full: wait here, outside the message's deadline and before
            # MAIL, so a slow commit never times out a transaction at RCPT.
            await self._wait_for_room()
            gate = _DataGate(self, claim)
            try:
                result = await send_with_deadline(
                    conn, sender, [rcpt], data, self.delivery.message_timeout,
                    before_data=gate.enter)
            except DataRefused:  # the gate said no (the lease ran out, or the run stops)
                return
            except TransactionError as err:
                refused = err.refused.get(rcpt)
                outcome = (classify_reply(refused.code, refused.message, Phase.RCPT)
                           if refused is not None else classify_exception(
                               err.cause, err.phase, payload_sent=err.payload_sent))
            else:
                refused = result.refused.get(rcpt)
                outcome = (classify_reply(refused.code, refused.message, Phase.RCPT)
                           if refused is not None else
                           Outcome(Kind.SENT, f"{result.response.code} "
                                   f"{result.response.message}"[:300],
                                   result.response.code))
            await self._record(pool, claim, outcome)
        finally:
            if gate is not None and gate.entered:
                self._in_data -= 1  # recorded (a 250 is queued for its commit by now)
                self._room.set()
            self.in_flight -= 1
            self.done_rows += 1
            self.changed.set()

    async def _wait_for_room(self) -> None:
        """Wait while the messages past the DATA gate plus the "sent" results waiting for
        their commit (or whose commit failed) are two per connection; not once the run
        has an error (a failed commit: nothing more goes out)."""
        while (self._uncommitted + len(self._unsaved) + self._in_data >= 2 * self.tasks
               and self.stop_error is None):
            self._flush_now.set()
            self._room.clear()
            await self._room.wait()

    async def _enter_data(self, claim: Any) -> bool:
        """The DATA gate (``before_data``, after RCPT): wait for room (see
        :meth:`_wait_for_room`; rarely needed here, the task waited before MAIL), then check
        the run may go on and the claim's lease (fencing). A crash can only repeat the
        messages past this gate and the results waiting for their commit, so this is the
        repeat bound of the delivery contract; MAIL, RCPT and the next message's build go
        on while a commit runs."""
        await self._wait_for_room()
        if self.stop_error is not None:  # e.g. a commit failed: nothing more may go out
            return False
        if not self.lease_left(claim):
            self.report.lease_lost += 1
            return False
        self._in_data += 1
        return True

    def lease_left(self, claim: Any) -> bool:
        """True while ``claim``'s lease has more than ``lease_margin`` left (checked
        before MAIL FROM); claims without a lease (other stores) always pass."""
        until = getattr(claim, "lease_until", None)
        return until is None or self.clock() + self.lease_margin < _utc(until)

    async def _slot(self, pool: SMTPPool) -> bool:
        """Take the relay's next rate-limit slot; False when a stop comes first."""
        if self.stopping:
            return False
        if self.stop is None or pool.limiter.delay() <= 0:
            await pool.limiter.acquire()
            return True
        acquire = asyncio.ensure_future(pool.limiter.acquire())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((acquire, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            acquire.cancel()
            stopped.cancel()
        return not self.stopping


class _DataGate:
    """One transaction's pass through :meth:`Worker._enter_data` (``entered`` once it
    passed, so the count goes down exactly once)."""

    __slots__ = ("claim", "entered", "worker")

    def __init__(self, worker: Worker, claim: Any) -> None:
        self.worker = worker
        self.claim = claim
        self.entered = False

    async def enter(self) -> bool:
        self.entered = await self.worker._enter_data(self.claim)
        return self.entered


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A row's message built ahead: its signatures under way (the signer), or the error
    its build raised."""

    sender: str
    rcpt: str
    data: bytes | Unsigned
    signatures: asyncio.Future[list[bytes]] | None
    error: Exception | None
