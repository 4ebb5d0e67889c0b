"""The event one received message amounts to: the hand-off from classification to the processor."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EVENT_KINDS", "BounceEvent"]

#: hard / soft: a failed or delayed delivery (RFC 3464 DSN or a bounce in prose);
#: complaint: a reader's abuse or fraud report (ARF, JMRP); feedback: any other feedback
#: report (auth-failure, not-spam, virus, other); unsubscribe: a mailto or opt-out request;
#: auto-reply: RFC 3834 replies and vacation notices; unknown: anything else.
EVENT_KINDS = ("hard", "soft", "complaint", "feedback", "unsubscribe", "auto-reply", "unknown")


@dataclass(frozen=True, slots=True)
class BounceEvent:
    """What one received message says.

    ``message_id`` is the Message-ID of our original message when the report carries it
    (attached or quoted headers, an ARF report's original, In-Reply-To/References);
    ``token`` an unsubscribe token (mailto subject, or our List-Unsubscribe URL in an
    attached original); ``recipient`` the address the report is about (a DSN's
    Original-/Final-Recipient, X-Failed-Recipients, the address a bounce in prose names, a
    complaint's Original-Rcpt-To), never trusted on its own; ``recipients`` every address a
    failure report names (empty when it names none), so the processor can check the one it
    is about; ``status`` the RFC 3463 code the report means (see :mod:`.status`); ``about``
    "reader" when a failure concerns the reader's address, mailbox or mail system, "us"
    when it concerns our message, our sender or the receiver's policy towards us;
    ``report_id`` the received report's own Message-ID (for the record of why a reader's
    status changed).
    """

    kind: str
    message_id: str | None = None
    token: str | None = None
    recipient: str | None = None
    status: str | None = None
    reason: str = ""
    about: str = "reader"
    recipients: tuple[str, ...] = ()
    report_id: str | None = None
