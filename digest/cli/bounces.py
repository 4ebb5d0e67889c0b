"""The ``bounces`` commands: process bounces, complaints and mailto unsubscribes from a mailbox."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

import click
from rich.markup import escape

from digest.bounces import ImapSource, MaildirSource, process_bounces
from digest.errors import ConfigError
from digest.store import open_store

from .support import config_option, console, handle_errors, open_settings

__all__ = ["bounces"]

PASSWORD_ENV = "DIGEST_IMAP_PASSWORD"


@click.group("bounces")
def bounces() -> None:
    """Read bounces, complaints and mailto unsubscribes, and update the suppression list.

    \b
    Example:
      python run_digest.py bounces process --maildir /var/mail/bounces
      DIGEST_IMAP_PASSWORD=… python run_digest.py bounces process \\
          --imap imaps://bounces@mail.example.org/INBOX
    """


@bounces.command("process")
@click.option("--maildir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Read the messages of this Maildir (new/ and cur/).")
@click.option("--imap", "imap_url", default=None, metavar="URL",
              help="Read this IMAP folder: imaps://user@host[:port]/FOLDER; the password "
                   f"comes from ${PASSWORD_ENV}.")
@click.option("--dry-run", is_flag=True,
              help="Classify and report, but change nothing and mark nothing processed.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds any IMAP operation may take.")
@config_option
@handle_errors
def process_command(maildir: str | None, imap_url: str | None, dry_run: bool, timeout: float,
                    config_path: str | None) -> None:
    """Process each message once: hard bounces and abuse complaints suppress the address,
    soft bounces of the reader's mailbox suppress after 3 within 14 days, mailto and opt-out
    requests unsubscribe.

    Only reports that name one of our deliveries (its Message-ID) or carry a valid signed
    unsubscribe token change anything; failures about our own mail (policy, spam, DMARC,
    sender), other feedback reports and auto-replies never do. Exit 0 when done, 1 when the
    mailbox cannot be read, 2 for bad usage.
    """
    if (maildir is None) == (imap_url is None):
        raise click.UsageError("Give exactly one of --maildir DIR or --imap URL.")
    settings = open_settings(config_path)
    source: AbstractContextManager[MaildirSource | ImapSource]
    if maildir is not None:
        source = MaildirSource(maildir, state_dir=settings.work_dir / "bounces")
    else:
        assert imap_url is not None
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            raise ConfigError(f"Set {PASSWORD_ENV} to the IMAP password; it is never read "
                              "from the URL or the configuration file.")
        source = ImapSource(imap_url, password=password, timeout=timeout)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with open_store(settings.database_url) as store, source as messages:
        report = process_bounces(settings, store, messages, dry_run=dry_run)
    if dry_run:
        for item in report.outcomes:
            console.print(escape(f"{item.key}\t{item.kind}\t{item.action}\t{item.result}\t"
                                 f"{item.reason}"), highlight=False, soft_wrap=True)
    for line in report.summary():
        console.print(escape(line), highlight=False, soft_wrap=True)
