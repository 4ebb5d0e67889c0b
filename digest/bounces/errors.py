"""The bounce sources' error: a Maildir or IMAP folder that cannot be read (exit code 1)."""

from __future__ import annotations

from digest.errors import DigestError

__all__ = ["BounceSourceError"]


class BounceSourceError(DigestError):
    """Raised when a Maildir or IMAP mailbox cannot be read or updated; one sentence."""
