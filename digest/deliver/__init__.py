"""Deliver: sends an edition's ledger rows over SMTP through pooled connections.

:func:`deliver_edition` claims rows from the store, sends each message, and records every
outcome (sent, retried with backoff, failed, suppressed, expired) until every row is terminal
or the rest wait for a backoff beyond ``max_wait``. :func:`send_test` sends messages with no
ledger (``send --test-to``). :func:`embedded_smtp_server` is the local Maildir server used
when no relay is configured.

Stopping: a :class:`StopRequest` passed as ``stop`` ends a run cleanly (no new claim,
transactions under way finish and are recorded, the rest of its claims go back to
"queued"); see :mod:`digest.deliver.stop`. :func:`worker_id` names this process in the
ledger (``host:pid:random``).

Repeats: a row stays "sending" until its outcome is committed. "Sent" outcomes are
group-committed while the connections go on sending, so a connection may start its next
message before its previous "sent" is committed; a transaction waits at its DATA command
while the messages in DATA and the rows waiting for that commit are 2 x pool size. After a
crash (kill -9) the next run sends again only rows that were still "sending", and at most
2 x pool size of the crashed run's messages.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from digest.config import DeliverySettings, RelaySettings
from digest.deliver.classify import Kind, Outcome, Phase, classify_exception, classify_reply
from digest.deliver.embedded import embedded_smtp_server
from digest.deliver.identity import worker_id
from digest.deliver.pool import RelayTarget, SMTPPool, TransactionError
from digest.deliver.ratelimit import RateLimiter
from digest.deliver.report import DeliveryReport, ProgressView
from digest.deliver.stop import StopRequest
from digest.deliver.worker import LedgerStore, Worker, backoff_delay
from digest.errors import ConfigError
from digest.models import Signer, Unsigned

__all__ = [
    "DeliveryReport",
    "RateLimiter",
    "RelayTarget",
    "SMTPPool",
    "StopRequest",
    "backoff_delay",
    "default_lease",
    "deliver_edition",
    "embedded_smtp_server",
    "send_test",
    "worker_id",
]

DEFAULT_MAX_WAIT = 300.0


def _now() -> datetime:
    return datetime.now(UTC)


def default_lease(delivery: DeliverySettings) -> timedelta:
    """How long a claimed row stays ours: ``[delivery] claim_lease``, by default three
    message deadlines plus slack. A crashed or paused worker's rows are claimable again
    after this (a cleanly stopped run releases its own at once); a worker sends nothing on a
    claim with less than a message deadline of its lease left."""
    if delivery.claim_lease is not None:
        return delivery.claim_lease
    return timedelta(seconds=3 * delivery.message_timeout + 10)


def _targets(relay: RelaySettings | Sequence[RelaySettings] | None,
             smtp_addr: tuple[str, int] | None, pool_size: int | None,
             tls_context: ssl.SSLContext | None) -> list[SMTPPool]:
    if relay is None:
        if smtp_addr is None:
            raise ConfigError("No relay is configured and no embedded server address was "
                              "given; configure [[relays]] or start the embedded server.")
        return [SMTPPool(RelayTarget.local(*smtp_addr, pool_size=pool_size or 10))]
    relays = [relay] if isinstance(relay, RelaySettings) else list(relay)
    return [SMTPPool(RelayTarget.from_settings(r, tls_context=tls_context), size=pool_size)
            for r in relays]


async def deliver_edition(edition_id: int, *, store: LedgerStore,
                          build: Callable[[Any], tuple[str, str, bytes | Unsigned]],
                          relay: RelaySettings | Sequence[RelaySettings] | None,
                          smtp_addr: tuple[str, int] | None = None,
                          delivery: DeliverySettings, worker_id: str, progress: bool = False,
                          clock: Callable[[], datetime] = _now, stop_when_idle: bool = True,
                          max_wait: float = DEFAULT_MAX_WAIT, lease: timedelta | None = None,
                          pool_size: int | None = None, relay_patience: float = 120.0,
                          stop: StopRequest | None = None, send_wait: float | None = None,
                          tls_context: ssl.SSLContext | None = None,
                          signer: Signer | None = None) -> DeliveryReport:
    """Send every due ledger row of a published edition and record each outcome.

    :param build: ``claim -> (envelope sender, recipient, message)``, the message as bytes
        or as :class:`~digest.models.Unsigned` (DKIM signatures still to make); an
        exception from it fails that row only ("could not build the message").
    :param signer: makes the signatures of :class:`~digest.models.Unsigned` messages
        beside the event loop (:class:`digest.models.Signer`, a child process), the next
        rows' messages built a little ahead so their signatures are ready in time; None:
        signed in the event loop.
    :param relay: one relay, several (each with its own pool and limits, sharing the
        work), or None to use ``smtp_addr`` (the embedded server, plain SMTP).
    A crash of this run repeats at most the rows it left "sending", and no more than two
    messages per connection (see the module docstring).

    :param worker_id: who claims the rows (:func:`worker_id` for this process); unique
        among processes running at the same time, and not used by two runs over the same
        edition at once (a run releases its own claims of the edition when it ends). Rows
        another process left "sending" are taken over only once their lease ran out.
    :param stop: ends the run cleanly when requested (:mod:`digest.deliver.stop`); the
        report's ``interrupted`` then names the reason if rows are left.
    :param stop_when_idle: when true, return as soon as every remaining row waits for a
        backoff (or a rate-limit slot) more than ``max_wait`` seconds away; the report
        says how many are deferred and when the next is due. When false, wait for them.
    :param send_wait: seconds the run may spend waiting for retries in all, counted from
        the first moment nothing was due (``[delivery] send_wait`` for ``send`` and the
        scheduler's daily job); then it returns, the report saying how many rows wait and
        when the next is due. None: only ``max_wait`` bounds each wait.
    :param lease: how long a claim is ours (default :func:`default_lease`).
    :param relay_patience: seconds without any usable connection before giving up.
    :raises AuthenticationError: the relay refused our credentials
        ``delivery.max_auth_failures`` times; claims are released first.
    :raises RelayUnavailableError: no connection could be made for ``relay_patience``.
    :raises DeliveryError: the relay keeps refusing our envelope sender.
    """
    started = time.monotonic()
    report = DeliveryReport(edition_id=edition_id)
    pools = _targets(relay, smtp_addr, pool_size, tls_context)
    before = store.delivery_summary(edition_id)
    skipped_before = store.delivery_reasons(edition_id).get("skipped", {})
    pending = before.get("queued", 0) + before.get("sending", 0)
    worker = Worker(edition_id, store=store, build=build, pools=pools, delivery=delivery,
                    worker_id=worker_id, report=report, clock=clock,
                    lease=lease or default_lease(delivery),
                    max_wait=max_wait if stop_when_idle else None,
                    relay_patience=relay_patience, stop=stop, send_wait=send_wait,
                    signer=signer)
    try:
        if pending:
            with ProgressView(pending, enabled=progress) as view:
                await worker.run(view)
    finally:
        try:
            store.release_claims(worker_id, edition_id=edition_id)
        finally:
            await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)
            report.elapsed = time.monotonic() - started
    after = store.delivery_summary(edition_id)
    report.ledger = after
    report.skipped = after.get("skipped", 0) - before.get("skipped", 0)
    for reason, n in store.delivery_reasons(edition_id).get("skipped", {}).items():
        if n - skipped_before.get(reason, 0) > 0:
            report.reasons["skipped"][reason or "skipped"] = n - skipped_before.get(reason, 0)
    report.deferred = after.get("queued", 0) + after.get("sending", 0)
    if stop is not None and stop.requested and report.deferred:
        report.interrupted = stop.reason
    if report.deferred:
        wake = store.next_wakeup(edition_id)
        report.next_retry_at = wake.replace(tzinfo=UTC) if wake and wake.tzinfo is None \
            else wake
    return report


async def send_test(messages: Iterable[tuple[str, str, bytes]], *,
                    relay: RelaySettings | Sequence[RelaySettings] | None,
                    smtp_addr: tuple[str, int] | None = None, delivery: DeliverySettings,
                    tls_context: ssl.SSLContext | None = None) -> DeliveryReport:
    """Send ``(sender, recipient, bytes)`` messages once each, without the ledger
    (``send --test-to``): the report counts sent and failed, temporary failures included
    as failed with their reason. The first relay is used.

    :raises AuthenticationError: the relay refused our credentials.
    """
    from digest.errors import AuthenticationError, RelayUnavailableError

    started = time.monotonic()
    report = DeliveryReport()
    pool = _targets(relay, smtp_addr, 2, tls_context)[0]
    try:
        for sender, rcpt, data in messages:
            try:
                result = await pool.send(sender, [rcpt], data,
                                         deadline=delivery.message_timeout)
            except TransactionError as err:
                refused = err.refused.get(rcpt)
                outcome = (classify_reply(refused.code, refused.message, Phase.RCPT)
                           if refused is not None else classify_exception(
                               err.cause, err.phase, payload_sent=err.payload_sent))
            else:
                refused = result.refused.get(rcpt)
                outcome = (classify_reply(refused.code, refused.message, Phase.RCPT)
                           if refused else Outcome(Kind.SENT, "250"))
            if outcome.kind is Kind.AUTH:
                raise AuthenticationError(f"The relay {pool.target.name} refused our "
                                          f"credentials ({outcome.reason}); check the relay "
                                          "username and password.", recipient=None)
            if outcome.kind is Kind.RELAY:
                raise RelayUnavailableError(f"The relay {pool.target.name} could not be used "
                                            f"({outcome.reason}); check that it is running.")
            report.count("sent" if outcome.kind is Kind.SENT else "failed", outcome.reason)
    finally:
        await pool.close()
        report.elapsed = time.monotonic() - started
    return report
