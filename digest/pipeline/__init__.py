"""The one place the stages meet: sources → edition → render → mail → deliver, with the store.

Dependency direction: ``cli``, ``web``, ``schedule`` → ``pipeline`` → the stage modules
(``sources``, ``edition``, ``render``, ``mail``, ``deliver``, ``store``) → ``models``,
``errors``, ``config``. Stages never import each other; they exchange ``models`` objects
and plain values, and this module adapts one stage's output to the next one's input.
"""

from __future__ import annotations

from digest.pipeline.build import (
    BuildOutcome,
    build_edition,
    gather,
    open_store_for,
    parse_as_of,
    section_map_for,
    worker_id,
)
from digest.pipeline.jobs import (
    SCHEDULER_LOCK_KEY,
    run_open_deliveries,
    run_scheduled,
    run_worker,
    scheduler_lock,
    send_lock,
)
from digest.pipeline.messages import (
    Links,
    MessageFactory,
    PreviewFiles,
    dkim_sign_if_configured,
    links_for,
    new_message_id,
    write_preview,
)
from digest.pipeline.send import (
    SendOutcome,
    send_edition,
    send_single_message,
    sync_subscriber_files,
)

__all__ = [
    "SCHEDULER_LOCK_KEY",
    "BuildOutcome",
    "Links",
    "MessageFactory",
    "PreviewFiles",
    "SendOutcome",
    "build_edition",
    "dkim_sign_if_configured",
    "gather",
    "links_for",
    "new_message_id",
    "open_store_for",
    "parse_as_of",
    "run_open_deliveries",
    "run_scheduled",
    "run_worker",
    "scheduler_lock",
    "section_map_for",
    "send_edition",
    "send_lock",
    "send_single_message",
    "sync_subscriber_files",
    "worker_id",
    "write_preview",
]
