"""In-memory token buckets that slow down abuse of the actions that send email."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """One token bucket per key (a client IP, a hashed address): ``capacity`` actions at
    once, refilled at ``per_second``; the least recently used keys are forgotten beyond
    ``max_keys`` so memory stays bounded whatever the traffic.

    Per process and lost on restart: enough to stop a script from turning the subscribe
    form into a mail cannon, not a substitute for a proxy's limits.
    """

    def __init__(self, capacity: float, per_second: float, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError("capacity must be at least 1 and per_second positive")
        self.capacity = float(capacity)
        self.per_second = float(per_second)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False (and nothing taken) when its bucket is empty."""
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.per_second)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may act again (0 when it may now)."""
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.per_second)
        if tokens >= 1.0:
            return 0
        return max(1, int((1.0 - tokens) / self.per_second + 0.999))
