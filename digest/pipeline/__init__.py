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
from digest.pipeline.drafts import (
    Drafted,
    Shown,
    draft_edition,
    edition_to_show,
    variant_audience,
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
from digest.pipeline.notices import draft_preview_url, read_draft_token
from digest.pipeline.scheduled import DueOutcome, run_due
from digest.pipeline.send import (
    SendOutcome,
    deliver_record,
    send_edition,
    send_single_message,
    stored_edition,
    sync_subscriber_files,
)

__all__ = [
    "SCHEDULER_LOCK_KEY",
    "BuildOutcome",
    "Drafted",
    "DueOutcome",
    "Links",
    "MessageFactory",
    "PreviewFiles",
    "SendOutcome",
    "Shown",
    "build_edition",
    "deliver_record",
    "dkim_sign_if_configured",
    "draft_edition",
    "draft_preview_url",
    "edition_to_show",
    "gather",
    "links_for",
    "new_message_id",
    "open_store_for",
    "parse_as_of",
    "read_draft_token",
    "run_due",
    "run_open_deliveries",
    "run_scheduled",
    "run_worker",
    "scheduler_lock",
    "section_map_for",
    "send_edition",
    "send_lock",
    "send_single_message",
    "stored_edition",
    "sync_subscriber_files",
    "variant_audience",
    "worker_id",
    "write_preview",
]
