"""The digest exception tree: every failure a user can cause or meet is one of these.

Foreign exceptions (httpx, feedparser, jinja2, premailer, SQLAlchemy, aiosmtplib) are
translated into this tree at the boundary of the stage that calls them, keeping the
cause (``raise ... from exc``). The command line prints ``str(error)`` as one sentence
and exits 2 for :class:`ConfigError`, 1 for every other :class:`DigestError`.

::

    DigestError
    ├── ConfigError                  bad or missing setting; names the setting and the file
    ├── SourceError                  .source
    │   ├── FetchError               the bytes could not be fetched (HTTP, deadline, size cap)
    │   └── ParseError               the bytes are not a page or feed we can read
    ├── EditionError
    │   ├── EmptyEditionError        nothing new to send (``--force`` builds it anyway)
    │   └── EditionStateError        the edition's status forbids the move (e.g. approve a sent one)
    ├── RenderError                  a template or the inliner failed; names the template
    ├── StoreError                   the database refused or is unreachable (no addresses)
    │   ├── SubscriberNotFoundError  (also LookupError)
    │   ├── InvalidSubscriberError   (also ValueError) an address, name or section is refused
    │   └── InvalidTokenError        a signed link is forged, expired or for another list
    ├── BounceSourceError            a Maildir or IMAP folder of bounces cannot be read
    ├── LockHeldError                another process holds the lock (.holder); wait or stop it
    └── DeliveryError                .recipient
        ├── AuthenticationError      the relay refused our credentials: the run stops
        └── RelayUnavailableError    no relay could be reached
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BounceSourceError",
    "ConfigError",
    "DeliveryError",
    "DigestError",
    "EditionError",
    "EditionStateError",
    "EmptyEditionError",
    "FetchError",
    "InvalidSubscriberError",
    "InvalidTokenError",
    "LockHeldError",
    "ParseError",
    "RelayUnavailableError",
    "RenderError",
    "SourceError",
    "StoreError",
    "SubscriberNotFoundError",
]


class DigestError(Exception):
    """Raised for any failure digest reports to its user as one sentence."""


class ConfigError(DigestError, ValueError):
    """Raised when a setting is missing or wrong; the message names the setting and the file."""


class SourceError(DigestError):
    """Raised when a whole source cannot be read; ``source`` names it."""

    def __init__(self, message: str, *, source: str = "") -> None:
        super().__init__(message)
        self.source = source


class FetchError(SourceError):
    """Raised when a source's bytes cannot be fetched (network, status, deadline, size cap)."""


class ParseError(SourceError):
    """Raised when bytes are not an article page or feed that digest can read."""


class EditionError(DigestError):
    """Raised when an edition cannot be assembled."""


class EmptyEditionError(EditionError):
    """Raised when an edition would carry nothing new, or nothing fit to lead; ``--force``
    builds it anyway. ``skipped`` holds what the sources skipped or reported, as
    ``(source, line or None, reason)``, and :attr:`warnings` the same as
    ``source:line: reason`` lines, so a command can print them before the sentence (the
    reason for an empty edition is often among them). ``why`` is the sentence without the
    command line's remedy (for the desk, which offers its own button), and ``forceable``
    says whether forcing the build would give an edition."""

    def __init__(self, message: str, *,
                 skipped: tuple[tuple[str, int | None, str], ...] = (),
                 why: str | None = None, forceable: bool = False) -> None:
        super().__init__(message)
        self.skipped = skipped
        self.why = why or message
        self.forceable = forceable

    @property
    def warnings(self) -> tuple[str, ...]:
        """``source:line: reason`` for each skipped item."""
        return tuple(f"{source}{f':{line}' if line else ''}: {reason}"
                     for source, line, reason in self.skipped)

    @classmethod
    def forceable_because(cls, why: str) -> EmptyEditionError:
        """The error for ``why`` (no final full stop), which ``--force`` overrides."""
        return cls(f"{why}; use --force to build it anyway.", why=f"{why}.", forceable=True)


class EditionStateError(EditionError):
    """Raised when an edition cannot make the move asked for in its current status (approve a
    sent edition, publish a held one without ``--force``); the message says what can."""


class RenderError(DigestError):
    """Raised when a template cannot be rendered or inlined; the message names the template."""


class StoreError(DigestError):
    """Raised when the store refuses an operation or cannot be reached."""


class SubscriberNotFoundError(StoreError, LookupError):
    """Raised when an address is not on the list named."""


class InvalidSubscriberError(StoreError, ValueError):
    """Raised when an address, name or section list is not acceptable for a subscriber."""


class InvalidTokenError(StoreError):
    """Raised when a signed link is forged, expired, or scoped to another list."""


class BounceSourceError(DigestError):
    """Raised when a Maildir or IMAP mailbox of bounces cannot be read or updated."""


class LockHeldError(DigestError):
    """Raised when another process holds a lock this one needs (the scheduler's, or a list's
    send lock); ``holder`` names that process (``host:pid:random``)."""

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class DeliveryError(DigestError):
    """Raised when delivery cannot go on; ``recipient`` names the address when one is at fault."""

    def __init__(self, message: str, *, recipient: str | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient


class AuthenticationError(DeliveryError):
    """Raised when the relay keeps refusing our credentials, so the run stops."""


class RelayUnavailableError(DeliveryError):
    """Raised when no configured relay accepts a connection."""
