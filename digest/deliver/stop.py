"""The stop path: one request, honoured by every delivery loop of the process.

A :class:`StopRequest` is created once per process (a command), handed to
:func:`digest.deliver.deliver_edition` and to anything else that loops, and set once by
whoever decides the process must stop: the SIGTERM/SIGINT handler of a long-running
command, a test. It is never cleared. :meth:`StopRequest.linked` gives one run its own
request that follows the process's but may be set alone (a lost send lock stops that run,
not the process).

What a delivery run does once a stop is requested (see ``Worker``):

1. it takes no new claim and starts no new SMTP transaction (a task waiting for a
   rate-limit slot or a backoff gives its claim back at once);
2. transactions already under way (MAIL, RCPT or DATA sent) finish, each bounded by
   ``delivery.message_timeout``, and their outcome is recorded like any other;
3. the run releases every claim it still holds (back to "queued", untouched) and returns
   a report whose ``interrupted`` names the reason.

So a stopped run repeats nothing: every row is terminal or queued, none "sending".

:meth:`StopRequest.request` only sets an attribute and wakes the registered event loops
through ``call_soon_threadsafe``; it takes no lock, so a signal handler may call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Iterator

__all__ = ["StopRequest"]


class StopRequest:
    """A process-wide request to stop, safe to set from any thread or a signal handler."""

    def __init__(self) -> None:
        self._reason: str | None = None
        self._watchers: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._children: weakref.WeakSet[StopRequest] = weakref.WeakSet()

    @property
    def requested(self) -> bool:
        """True once :meth:`request` was called."""
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """Why the stop was requested (e.g. "SIGTERM"), or None."""
        return self._reason

    def request(self, reason: str) -> bool:
        """Ask every loop to stop; the first reason given is kept.

        :returns: True for the first request, False when a stop was already requested.
        """
        if self._reason is not None:
            return False
        self._reason = reason
        for loop, callback in tuple(self._watchers):
            with contextlib.suppress(RuntimeError):  # that loop has closed meanwhile
                loop.call_soon_threadsafe(callback)
        for child in tuple(self._children):
            child.request(reason)
        return True

    def linked(self) -> StopRequest:
        """A request for one run: set when this one is (with its reason), and settable on
        its own (a lost lock stops that run, not the process)."""
        child = StopRequest()
        self._children.add(child)
        if self._reason is not None:
            child.request(self._reason)
        return child

    @contextlib.contextmanager
    def watch(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` in the running event loop when a stop is requested (at once,
        soon, if it already was) for the duration of the ``with`` block."""
        entry = (asyncio.get_running_loop(), callback)
        self._watchers.append(entry)
        try:
            if self._reason is not None:
                entry[0].call_soon(callback)
            yield
        finally:
            self._watchers.remove(entry)

    async def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless a stop comes first.

        :returns: True when a stop was requested (before or during the sleep).
        """
        if self._reason is not None:
            return True
        woken = asyncio.Event()
        with self.watch(woken.set), contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await woken.wait()
        return self._reason is not None

    def wait(self, seconds: float, *, step: float = 0.1) -> bool:
        """Block the calling thread for ``seconds`` unless a stop comes first (checked every
        ``step`` seconds; no lock is shared with :meth:`request`).

        :returns: True when a stop was requested.
        """
        deadline = time.monotonic() + seconds
        while self._reason is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(step, left))
        return self._reason is not None
