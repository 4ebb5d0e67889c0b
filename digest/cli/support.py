"""What every command shares: the ``--config`` option, loading settings, and turning errors
into one sentence on stderr with the documented exit code (0 done, 1 failed, 2 bad usage or
configuration)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from digest.config import Settings, load_settings
from digest.errors import ConfigError, DigestError, EmptyEditionError
from digest.store.engine import MAX_ROW_ID

__all__ = ["ROW_ID", "config_option", "console", "editor_option", "fail", "handle_errors",
           "list_option", "open_settings", "source_options", "stderr", "warn"]

F = TypeVar("F", bound=Callable[..., Any])

#: An edition's (or any row's) id as an argument: 1 to the largest id the store holds, so a
#: mistyped number is one usage sentence (exit 2), not a database error.
ROW_ID = click.IntRange(1, MAX_ROW_ID)

console = Console()
stderr = Console(stderr=True)
log = logging.getLogger("digest")


def config_option(func: F) -> F:
    """Add ``--config FILE`` (default ``$DIGEST_CONFIG`` or ``./digest.toml``)."""
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), default=None,
        envvar="DIGEST_CONFIG", show_envvar=True,
        help="Configuration file (TOML). Default: ./digest.toml.",
    )(func)


def list_option(func: F) -> F:
    """Add ``--list L`` (default: the first list in the configuration)."""
    return click.option("--list", "list_name", metavar="L",
                        help="Which list (default: the first in the configuration).")(func)


def _default_editor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "unknown"


def _check_editor(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    name = (value or _default_editor()).strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise click.BadParameter("give a name of 1 to 64 printable characters, e.g. --editor "
                                 "ana", ctx=ctx, param=param)
    return name


def editor_option(func: F) -> F:
    """Add ``--editor NAME`` (default ``$DIGEST_EDITOR`` or the OS user): who an edition's
    events name as the actor ("editor:NAME")."""
    return click.option("--editor", "editor", metavar="NAME", envvar="DIGEST_EDITOR",
                        callback=_check_editor, show_envvar=True,
                        help="Your name in the edition's events (default: your OS user).")(func)


def source_options(func: F) -> F:
    """Add ``--source PATH_OR_URL`` (repeatable), ``--as-of ISO`` and ``--force``."""
    func = click.option("--source", "sources", multiple=True, metavar="PATH_OR_URL",
                        help="Read this source instead of the list's (repeatable).")(func)
    func = click.option("--as-of", "as_of", metavar="ISO",
                        help="'Now' for relative ages and the edition's date.")(func)
    return click.option("--force", is_flag=True,
                        help="Build even when the edition has nothing new.")(func)


def open_settings(config_path: str | None) -> Settings:
    """Load settings, or print the one-sentence reason and exit 2."""
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        fail(str(exc), code=2)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def warn(message: str) -> None:
    """Print ``message`` (plain text, never markup) as one warning line on stderr."""
    stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def handle_errors(func: F) -> F:
    """Turn a :class:`DigestError` into one sentence and exit 1 (2 for configuration)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), code=2)
        except EmptyEditionError as exc:
            for line in exc.warnings:  # what the sources skipped: often the reason
                warn(line)
            fail(str(exc), code=1)
        except DigestError as exc:
            fail(str(exc), code=1)
        except KeyboardInterrupt:
            fail("Interrupted; work already recorded is kept, run the command again to resume.",
                 code=1)

    return wrapper  # type: ignore[return-value]
