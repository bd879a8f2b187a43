"""A thread-safe token bucket: the client-side twin of Kalshi's (and any polite) rate limit.

Sized from the server's own numbers (refill rate and capacity), it makes the client wait
before the server would answer 429, so a backfill runs at the allowed rate without errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def acquire(self, cost: float = 1.0) -> float:
        """Take `cost` tokens, waiting as long as needed; returns the seconds waited."""
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds the bucket capacity {self.capacity}")
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= cost:
                    self._tokens -= cost
                    return waited
                wait = (cost - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens
