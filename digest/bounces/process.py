"""Apply classified reports to the store: suppress, count soft bounces, unsubscribe, once each.

Nothing is applied unless the report names one of our deliveries (a Message-ID found in the
ledger) or carries a valid signed unsubscribe token: a report that names only an address is
"unattributed" and changes nothing, so forged bounces cannot suppress anyone. A failure
report must also be about the address the delivery went to: when it names several
recipients the reader's is the one read, and a hard bounce naming only other addresses (a
forward's target, an alias expansion) counts as a soft bounce, never as proof that the
reader's address is gone.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from digest.config import Settings
from digest.errors import InvalidTokenError, SubscriberNotFoundError
from digest.mailboxes import mailbox
from digest.tokens import read_unsubscribe_token

from .classify import Action, classify, decide
from .events import BounceEvent
from .sources import RawMessage

if TYPE_CHECKING:
    from digest.store import Store

__all__ = ["SOFT_BOUNCE_LIMIT", "SOFT_BOUNCE_WINDOW", "BounceReport", "MessageOutcome",
           "process_bounces"]

SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=14)
_KIND_OF_RECORD = {"suppress-bounced": "hard", "suppress-complained": "complaint",
                   "record-soft": "soft", "note-complaint": "complaint"}
# RFC 6590 redaction of the reporter's address: the word, masks, or a hash of the local part.
_REDACTED = re.compile(r"(?i)(?:redacted|anonymi[sz]ed)[\w.+-]*|[x*#_.-]+|[0-9a-f]{16,}|"
                       r"[A-Za-z0-9+/=_-]{24,}")


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """What happened to one message: ``result`` is "suppressed", "already-suppressed",
    "recorded" (a soft bounce below the limit), "noted" (a complaint by someone the reader
    forwarded the edition to), "unsubscribed", "already-inactive", "duplicate" (recorded
    by an earlier run), "unattributed", "ignored" or "dry-run";
    ``about`` is "us" for a failure about our mail rather than the reader."""

    key: str
    kind: str
    action: str
    result: str
    reason: str
    status: str | None = None
    subscriber_id: int | None = None
    about: str = "reader"


@dataclass(slots=True)
class BounceReport:
    """Counts for one run, and one :class:`MessageOutcome` per message."""

    dry_run: bool = False
    processed: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    outcomes: list[MessageOutcome] = field(default_factory=list)

    @property
    def hard(self) -> int:
        return self.kinds["hard"]

    @property
    def soft(self) -> int:
        return self.kinds["soft"]

    @property
    def complaints(self) -> int:
        return self.kinds["complaint"]

    @property
    def unsubscribes(self) -> int:
        return self.kinds["unsubscribe"]

    @property
    def auto_replies(self) -> int:
        return self.kinds["auto-reply"]

    @property
    def feedback(self) -> int:
        return self.kinds["feedback"]

    @property
    def unknown(self) -> int:
        return self.kinds["unknown"]

    @property
    def about_us(self) -> int:
        """Failures (hard or soft by code) that concern our mail, not the reader."""
        return sum(1 for o in self.outcomes if o.about == "us")

    @property
    def unattributed(self) -> int:
        return self.results["unattributed"]

    def add(self, outcome: MessageOutcome) -> None:
        """Count one message's outcome."""
        self.processed += 1
        self.kinds[outcome.kind] += 1
        self.results[outcome.result] += 1
        self.reasons[outcome.reason] += 1
        self.outcomes.append(outcome)

    def summary(self) -> list[str]:
        """The lines ``bounces process`` prints: totals, what changed, then each reason."""
        head = (f"{'Dry run: ' if self.dry_run else ''}processed "
                f"{_count(self.processed, 'message')}: {self.hard} hard, {self.soft} soft, "
                f"{_count(self.complaints, 'complaint')}, "
                f"{_count(self.unsubscribes, 'unsubscribe')}, "
                f"{_count(self.auto_replies, 'auto-reply', 'auto-replies')}, "
                f"{_count(self.feedback, 'other feedback report')}, "
                f"{self.unknown} unknown; "
                f"{_count(self.about_us, 'failure')} about our mail, not the reader.")
        r = self.results
        if self.dry_run:
            changes = (f"Nothing was changed; {r['dry-run']} would be applied, "
                       f"{r['unattributed']} unattributed, {r['ignored']} ignored.")
        else:
            changes = (f"{r['suppressed']} suppressed, {r['recorded']} soft bounces recorded, "
                       f"{_count(r['noted'], 'complaint')} by someone else noted (not "
                       f"suppressing), "
                       f"{r['unsubscribed']} unsubscribed, {r['already-suppressed']} already "
                       f"suppressed, {r['already-inactive']} already inactive, "
                       f"{r['duplicate']} seen before, {r['unattributed']} unattributed, "
                       f"{r['ignored']} ignored (these two changed nothing).")
        lines = [head, changes]
        lines += [f"  {n:5d}  {reason}" for reason, n in
                  sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))]
        return lines


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


class _Target(NamedTuple):
    subscriber_id: int
    list_name: str
    delivery_id: int | None
    email: str


def _attribute(settings: Settings, store: Store, event: BounceEvent) -> _Target | None:
    """The subscriber an event is about, from our ledger or a valid signed token only."""
    if event.message_id:
        ref = store.find_delivery_by_message_id(event.message_id)
        if ref is not None:
            return _Target(ref.subscriber_id, ref.list_name, ref.delivery_id, ref.email)
    if event.token:
        try:
            # Tokens carry real signing times, so they are checked against the real clock.
            sid, list_name = read_unsubscribe_token(settings.web.secret_keys, event.token,
                                                    max_age=settings.web.token_max_age)
            member = store.get_membership_by_id(sid, list_name)
        except (InvalidTokenError, SubscriberNotFoundError):
            return None
        return _Target(sid, list_name, None, member.email)
    return None


def _redacted(address: str) -> bool:
    """True for a reporter's address whose local part was redacted (RFC 6590)."""
    return bool(_REDACTED.fullmatch(address.rpartition("@")[0]))


def _for_reader(message: RawMessage, event: BounceEvent, action: Action, target: _Target,
                domain: str | None) -> tuple[BounceEvent, Action]:
    """The event and action for the address the delivery went to (see the module
    docstring): the reader's own block of a report naming several recipients; a hard
    bounce of another address counted as a soft one; a complaint by another mailbox noted
    only."""
    mine = mailbox(target.email)
    if event.kind == "complaint":
        reporter = event.recipient
        if reporter and not _redacted(reporter) and mailbox(reporter) != mine:
            return event, Action("note-complaint", f"{action.reason} by another recipient "
                                 "than the delivery's (a forward): noted, not suppressing")
        return event, action
    if event.kind not in ("hard", "soft") or not event.recipients:
        return event, action
    if mine in {mailbox(a) for a in event.recipients} and (
            event.recipient is None or mailbox(event.recipient) != mine):
        event = classify(message.data, domain=domain, recipient=target.email)
        action = decide(event)
    if action.kind == "suppress-bounced" and (event.recipient is None
                                              or mailbox(event.recipient) != mine):
        return event, Action("record-soft", f"{action.reason} (for another address than "
                             "the delivery's: counted as soft)")
    return event, action


def process_bounces(settings: Settings, store: Store, messages: Iterable[RawMessage], *,
                    dry_run: bool, now: datetime | None = None,
                    soft_limit: int = SOFT_BOUNCE_LIMIT,
                    soft_window: timedelta = SOFT_BOUNCE_WINDOW) -> BounceReport:
    """Classify each message, apply what it calls for, and ``ack()`` it.

    A message is acknowledged only after its change is committed, and the store records
    each report's hash, so a run interrupted at any point can simply be repeated.

    :param dry_run: classify and attribute (reading the store) but change nothing and
        acknowledge nothing.
    :param soft_limit: soft bounces of different deliveries within ``soft_window`` that
        suppress an address as bounced.
    :raises StoreError: when the store fails (the message at hand stays unprocessed).
    :raises BounceSourceError: when the source cannot be read or updated.
    """
    report = BounceReport(dry_run=dry_run)
    for message in messages:
        moment = now or datetime.now(UTC)
        outcome = _handle(settings, store, message, dry_run=dry_run, now=moment,
                          soft_limit=soft_limit, soft_window=soft_window)
        if not dry_run and message.ack is not None:
            message.ack()
        report.add(outcome)
    return report


def _handle(settings: Settings, store: Store, message: RawMessage, *, dry_run: bool,
            now: datetime, soft_limit: int, soft_window: timedelta) -> MessageOutcome:
    event = classify(message.data, domain=settings.site.domain)
    action = decide(event)

    def outcome(result: str, reason: str, target: _Target | None = None) -> MessageOutcome:
        return MessageOutcome(key=message.key, kind=event.kind, action=action.kind,
                              result=result, reason=reason, status=event.status,
                              subscriber_id=target.subscriber_id if target else None,
                              about=event.about if event.kind in ("hard", "soft")
                              else "reader")

    if action.kind == "ignore":
        unattributed = action.reason.startswith("unattributed")
        return outcome("unattributed" if unattributed else "ignored", action.reason)
    target = _attribute(settings, store, event)
    if target is None:
        return outcome("unattributed", f"unattributed: {event.kind} names no delivery or "
                       "valid token of ours")
    event, action = _for_reader(message, event, action, target, settings.site.domain)
    if action.kind == "ignore":
        return outcome("ignored", action.reason, target)
    if dry_run:
        return outcome("dry-run", action.reason, target)
    report_id = event.report_id  # the report's own Message-ID, for the consent record
    if action.kind == "unsubscribe":
        try:
            done = store.unsubscribe(target.subscriber_id, target.list_name,
                                     cause="mailto-unsubscribe",
                                     detail={"report_message_id": report_id}, now=now)
        except SubscriberNotFoundError:
            return outcome("unattributed", "unattributed: unsubscribe for a member who is gone")
        return outcome("unsubscribed" if done else "already-inactive", action.reason, target)
    event_key = hashlib.sha256(message.data).hexdigest()
    result = store.record_bounce(
        event_key, kind=_KIND_OF_RECORD[action.kind], subscriber_id=target.subscriber_id,
        delivery_id=target.delivery_id, status=event.status, reason=action.reason,
        soft_limit=soft_limit, soft_window=soft_window, report_message_id=report_id,
        by_reader=action.kind != "note-complaint", list_name=target.list_name, now=now)
    return outcome(result, action.reason, target)
