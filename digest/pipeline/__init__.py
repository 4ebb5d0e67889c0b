"""The one place the stages meet: sources → edition → render → mail → deliver, with the store.

Dependency direction: ``cli``, ``web`` → ``pipeline`` → the stage modules (``sources``,
``edition``, ``render``, ``mail``, ``deliver``, ``store``, and ``schedule``'s triggers) →
``models``, ``errors``, ``config``, ``logs``. Stages never import each other; they exchange
``models`` objects and plain values, and this module adapts one stage's output to the next
one's input. ``pipeline.scheduler`` runs the ``schedule`` process (lock, heartbeat, jobs,
clean stop) and ``pipeline.status`` answers ``status`` and ``/healthz``.
"""

from __future__ import annotations

from digest.deliver import StopRequest, worker_id
from digest.pipeline.build import (
    BuildOutcome,
    build_edition,
    gather,
    open_store_for,
    parse_as_of,
    section_map_for,
)
from digest.pipeline.drafts import (
    Drafted,
    Shown,
    approve_edition,
    draft_edition,
    edition_to_show,
    variant_audience,
)
from digest.pipeline.jobs import EditionPass, run_open_deliveries, run_scheduled, run_worker
from digest.pipeline.locks import SCHEDULER_LEASE, LeaseLock, describe_lease, send_lock
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
from digest.pipeline.scheduler import SchedulerExit, run_scheduler
from digest.pipeline.send import (
    SendOutcome,
    deliver_record,
    send_edition,
    send_single_message,
    stored_edition,
    sync_subscriber_files,
)
from digest.pipeline.status import (
    NextRun,
    SchedulerHealth,
    ServiceStatus,
    next_runs,
    scheduler_health,
    service_status,
)

__all__ = [
    "SCHEDULER_LEASE",
    "BuildOutcome",
    "Drafted",
    "DueOutcome",
    "EditionPass",
    "LeaseLock",
    "Links",
    "MessageFactory",
    "NextRun",
    "PreviewFiles",
    "SchedulerExit",
    "SchedulerHealth",
    "SendOutcome",
    "ServiceStatus",
    "Shown",
    "StopRequest",
    "approve_edition",
    "build_edition",
    "deliver_record",
    "describe_lease",
    "dkim_sign_if_configured",
    "draft_edition",
    "draft_preview_url",
    "edition_to_show",
    "gather",
    "links_for",
    "new_message_id",
    "next_runs",
    "open_store_for",
    "parse_as_of",
    "read_draft_token",
    "run_due",
    "run_open_deliveries",
    "run_scheduled",
    "run_scheduler",
    "run_worker",
    "scheduler_health",
    "section_map_for",
    "send_edition",
    "send_lock",
    "send_single_message",
    "service_status",
    "stored_edition",
    "sync_subscriber_files",
    "variant_audience",
    "worker_id",
    "write_preview",
]
