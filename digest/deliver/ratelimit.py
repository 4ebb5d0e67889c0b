"""Send-time rate limits for one relay: messages per second and a sliding-window cap."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Spaces sends ``1/per_second`` apart and allows at most ``per_window`` in any
    ``window`` seconds (one hour by default, listmonk's sliding-window model).

    Each :meth:`acquire` reserves the earliest slot that satisfies both limits *before*
    sleeping, so concurrent workers never share a slot. Limits are per process.
    """

    def __init__(self, per_second: float | None = None, per_window: int | None = None, *,
                 window: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("per_second must be positive")
        if per_window is not None and per_window < 1:
            raise ValueError("per_window must be at least 1")
        self.per_second = per_second
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._recent: deque[float] = deque()

    @property
    def enabled(self) -> bool:
        return self.per_second is not None or self.per_window is not None

    def _slot(self, now: float) -> float:
        t = max(now, self._next)
        if self.per_window is not None:
            while self._recent and self._recent[0] <= t - self.window:
                self._recent.popleft()
            if len(self._recent) >= self.per_window:
                t = max(t, self._recent[-self.per_window] + self.window)
        return t

    def delay(self) -> float:
        """Seconds until a send would be allowed (0 when one may go now)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        return max(0.0, self._slot(now) - now)

    async def acquire(self) -> None:
        """Wait for and take the next send slot."""
        if not self.enabled:
            return
        now = self._clock()
        t = self._slot(now)
        if self.per_second is not None:
            self._next = t + 1.0 / self.per_second
        if self.per_window is not None:
            self._recent.append(t)
            while len(self._recent) > self.per_window:
                self._recent.popleft()
        if t > now:
            await self._sleep(t - now)
