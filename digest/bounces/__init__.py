"""Bounce processing: classify DSNs, feedback reports, mailto unsubscribes and auto-replies
from a Maildir or an IMAP folder, and keep the store's suppression list right.

:func:`process_bounces` applies what :func:`classify` and :func:`decide` find, and only
for reports that name one of our deliveries (a ledger Message-ID) or carry a valid signed
unsubscribe token: a bounce naming just an address changes nothing. Only evidence about the
reader removes a reader: a permanent failure of their address (:mod:`.status`), their abuse
or fraud complaint (:mod:`.feedback`) or their own unsubscribe request.
"""

from __future__ import annotations

from .classify import Action, classify, decide
from .errors import BounceSourceError
from .events import EVENT_KINDS, BounceEvent
from .process import BounceReport, MessageOutcome, process_bounces
from .sources import ImapSource, MaildirSource, RawMessage, parse_imap_url

__all__ = [
    "EVENT_KINDS",
    "Action",
    "BounceEvent",
    "BounceReport",
    "BounceSourceError",
    "ImapSource",
    "MaildirSource",
    "MessageOutcome",
    "RawMessage",
    "classify",
    "decide",
    "parse_imap_url",
    "process_bounces",
]
