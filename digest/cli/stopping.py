"""SIGTERM and SIGINT as a clean stop for ``send``, ``schedule`` and ``worker``.

The first signal sets the process's :class:`~digest.deliver.StopRequest` (see
:mod:`digest.deliver.stop` for what a delivery run then does); the command finishes, logs
one line and exits 0. A second SIGINT (Ctrl-C twice) stops at once, as a
``KeyboardInterrupt``: messages in flight may then go out again on the next run.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from digest.deliver import StopRequest

__all__ = ["stop_on_signals"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: StopRequest | None = None) -> Iterator[StopRequest]:
    """Turn SIGTERM and SIGINT into ``stop.request("SIGTERM")`` (or "SIGINT") for the
    ``with`` block, then restore the previous handlers. Main thread only."""
    stop = stop or StopRequest()

    def handler(signum: int, frame: FrameType | None) -> None:
        # Only what StopRequest.request does (no lock, no I/O): safe in a handler.
        if not stop.request(signal.Signals(signum).name) and signum == signal.SIGINT:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
