"""The simulated clock every part of the simulator reads: exchange, REST, WebSocket, weather.

One clock, so that an order stamped at t, the trades served at t and the observations served
at t all agree on what "now" is, and nothing stamped after it is visible anywhere.

The clock shows the time up to which replayed data has been *applied*, not a free-running
projection of wall time: the replay driver moves it forward only after the events before it
took effect, so a REST call never sees a clock that is ahead of the book it reads.

Speeds: a multiplier of wall time (``1`` … ``1000``), ``"max"`` (advance event by event as fast
as the WebSocket clients consume the frames), or ``"manual"`` (tests move it explicitly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["SimClock", "Speed", "parse_speed"]

Speed = float | Literal["max", "manual"]


def parse_speed(text: str) -> Speed:
    """``"60"``, ``"60x"``, ``"max"`` or ``"manual"``; multipliers must lie in (0, 100000]."""
    value = text.strip().lower()
    if value in ("max", "manual"):
        return "max" if value == "max" else "manual"
    value = value.removesuffix("x")
    try:
        speed = float(value)
    except ValueError:
        raise ValueError(
            f"speed: expected a multiplier such as 1, 60 or 1000, or 'max'/'manual'; got {text!r}"
        ) from None
    if not 0 < speed <= 100_000:
        raise ValueError(f"speed: multiplier must be in (0, 100000], got {text!r}")
    return speed


class SimClock:
    """Thread-safe simulated time (UTC). ``now()`` never goes backwards."""

    def __init__(
        self,
        start: datetime,
        speed: Speed = "manual",
        *,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError(f"clock start must be timezone-aware, got {start!r}")
        self._lock = threading.Lock()
        self._now = start.astimezone(UTC)
        self._wall = wall
        self.speed: Speed = speed
        self._anchor_sim = self._now
        self._anchor_wall = wall()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    def set(self, when: datetime) -> None:
        """Move the clock to ``when`` (the driver calls this once events before it applied)."""
        when = when.astimezone(UTC)
        with self._lock:
            if when < self._now:
                raise ValueError(f"the clock cannot go back from {self._now} to {when}")
            self._now = when

    def reanchor(self) -> None:
        """Start counting wall time from now (at start-up, after a pause or a speed change)."""
        with self._lock:
            self._anchor_sim = self._now
            self._anchor_wall = self._wall()

    def set_speed(self, speed: Speed) -> None:
        with self._lock:
            self.speed = speed
        self.reanchor()

    def target(self) -> datetime | None:
        """Where wall time says the clock should be (multiplier speeds only), else None."""
        with self._lock:
            if not isinstance(self.speed, float | int):
                return None
            elapsed = (self._wall() - self._anchor_wall) * float(self.speed)
            return max(self._now, self._anchor_sim + timedelta(seconds=elapsed))

    def wall_seconds_until(self, when: datetime) -> float:
        """Wall seconds before the clock reaches ``when`` at the current multiplier."""
        with self._lock:
            if not isinstance(self.speed, float | int):
                return 0.0
            ahead = (when - self._anchor_sim).total_seconds() / float(self.speed)
            return max(0.0, self._anchor_wall + ahead - self._wall())
