"""``/healthz`` and what ``serve`` tells a service manager.

``/healthz`` answers ``ok`` (200) while the database is readable and the scheduler is
alive (its heartbeat, a lease renewal in the database, is fresh) or none has ever run on
this database; 503 with one sentence when the database is unreachable or the scheduler's
heartbeat is stale or it stopped. The header ``Digest-Scheduler`` says which.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from digest.errors import StoreError
from digest.systemd import Notifier

from .state import state_of

__all__ = ["healthz", "notifying_server"]

log = logging.getLogger("digest.web")


async def healthz(request: Request) -> Response:
    """``ok`` when the database is readable and the scheduler alive, else 503."""
    from digest.pipeline import scheduler_health

    web = state_of(request)
    try:
        health = await run_in_threadpool(lambda: scheduler_health(web.get_store()))
    except StoreError as exc:
        log.warning("health check: %s", exc)
        return PlainTextResponse("database unavailable\n", status_code=503)
    headers = {"Digest-Scheduler": health.state, "Cache-Control": "no-store"}
    if not health.healthy:
        return PlainTextResponse(health.sentence() + "\n", status_code=503, headers=headers)
    return PlainTextResponse("ok\n", headers=headers)


def notifying_server(config: Any, notifier: Notifier) -> Any:
    """A ``uvicorn.Server`` for ``config`` that sends READY once it listens, WATCHDOG while
    its main loop turns, and STOPPING when it shuts down."""
    import time

    import uvicorn

    class Server(uvicorn.Server):
        _pinged = 0.0

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                notifier.ready(f"serving on {config.host}:{config.port}")

        async def on_tick(self, counter: int) -> bool:
            interval = notifier.watchdog_interval
            if interval is not None and time.monotonic() - self._pinged >= interval:
                self._pinged = time.monotonic()
                notifier.watchdog()
            return await super().on_tick(counter)

        async def shutdown(self, sockets: Any = None) -> None:
            notifier.stopping("stopping")
            await super().shutdown(sockets)

    return Server(config)
