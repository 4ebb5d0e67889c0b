"""Who is claiming: one worker id per process, unique across hosts and restarts."""

from __future__ import annotations

import os
import secrets
import socket

__all__ = ["worker_id"]

_ID: tuple[int, str] | None = None


def worker_id() -> str:
    """This process's id in the ledger and in leases: ``host:pid:random`` (e.g.
    ``mail1:4242:9f3a1c``), the same for every call in one process, new in a forked child.

    Host and pid say where to look; the random part keeps two processes apart when pids
    repeat (containers, restarts). Rows claimed under it are put back by the run that took
    them, or by anyone once their lease runs out, never by another run's recovery.
    """
    global _ID
    pid = os.getpid()
    if _ID is None or _ID[0] != pid:
        _ID = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(3)}")
    return _ID[1]
