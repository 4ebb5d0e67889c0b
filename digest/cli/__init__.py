"""The command line (``python run_digest.py …`` and the ``digest`` console script).

One module per command group; each command parses its options, calls the pipeline, and
prints. A :class:`~digest.errors.DigestError` becomes one sentence on stderr with exit code 1
(2 for bad usage or configuration), see :mod:`digest.cli.support`.

- :mod:`digest.cli.edition` — ``build``, ``preview``, ``draft``, ``send``
- :mod:`digest.cli.editions` — ``editions list|show|hold|approve|cancel``
- :mod:`digest.cli.service` — ``schedule``, ``worker``, ``serve``
- :mod:`digest.cli.status` — ``status``
- :mod:`digest.cli.subscribers` — ``subscribers …``
- :mod:`digest.cli.bounces` — ``bounces …``
- :mod:`digest.cli.editors` — ``editors …`` (who may sign in to the desk)
"""

from __future__ import annotations

import click

from digest import __version__
from digest.logs import configure_logging

from . import bounces, edition, editions, editors, service, status, subscribers

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="digest")
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="How much to log on stderr, one line per event (default: INFO for "
                   "schedule, worker and serve, WARNING for the others).")
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """digest: turn a newsroom's lead story and teasers into a daily email and deliver it.

    \b
    Example:
      python run_digest.py build --json
      python run_digest.py preview --out preview/
      python run_digest.py send
    """
    default = "INFO" if ctx.invoked_subcommand in SERVICES else "WARNING"
    configure_logging(log_level or default)


#: The long-running commands, which log each event at INFO by default.
SERVICES = frozenset({"schedule", "worker", "serve"})

for _command in (edition.build, edition.preview, edition.draft, edition.send,
                 editions.editions, service.schedule, service.worker, service.serve,
                 status.status, subscribers.subscribers, bounces.bounces, editors.editors):
    main.add_command(_command)
