"""Clocks for the live loop beyond the wall clock: the exchange's own, and lock-step.

* :class:`ExchangeClock` follows the time the exchange reports (``GET /portfolio/balance``
  stamps its answer), for a loop trading against a replay (`kwx sim serve` at 60×) whose
  minutes are not the wall clock's. Against Kalshi the wall clock is the exchange's.
* :class:`LockstepClock` drives an in-process :class:`~kwx.sim.simulator.Simulator` at
  manual speed: waiting for minute t replays the market up to just before t, then returns.
  Tests and benchmarks use it so that what the loop sees at each minute does not depend on
  thread timing.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["ExchangeClock", "LockstepClock", "StoppableWallClock", "ceil_minute"]

JUST_BEFORE: Final = dt.timedelta(microseconds=1)


def ceil_minute(ts: dt.datetime) -> dt.datetime:
    """The first minute boundary at or after ``ts``."""
    floor = ts.replace(second=0, microsecond=0)
    return floor if floor == ts else floor + dt.timedelta(minutes=1)


class _Replay(Protocol):
    def advance_to(self, when: dt.datetime) -> None: ...


class LockstepClock:
    """Simulated time that moves only when the loop waits (see the module notes)."""

    def __init__(self, sim: _Replay, now: Callable[[], dt.datetime]) -> None:
        self.sim = sim
        self._now = now

    def now(self) -> dt.datetime:
        return self._now()

    def wait_until(self, ts: dt.datetime) -> None:
        target = ts - JUST_BEFORE  # data stamped at t belongs to the minute that starts at t
        if target > self._now():
            self.sim.advance_to(target)


class ExchangeClock:
    """The exchange's time, as its answers stamp it (polled; never extrapolated)."""

    def __init__(
        self,
        probe: Callable[[], dt.datetime | None],
        *,
        poll_s: float = 0.05,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.probe = probe
        self.poll_s = poll_s
        self.stop = stop
        self._sleep = sleep
        self._last: dt.datetime | None = None

    def now(self) -> dt.datetime:
        seen = self.probe()
        if seen is not None and (self._last is None or seen > self._last):
            self._last = seen
        if self._last is None:
            raise RuntimeError("the exchange reported no time (no signed balance endpoint?)")
        return self._last

    def wait_until(self, ts: dt.datetime) -> None:
        while self.now() < ts:
            if self.stop is not None and self.stop.is_set():
                return
            self._sleep(self.poll_s)


class StoppableWallClock:
    """The wall clock whose waits end early when ``stop`` is set (Ctrl-C, a duration)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def wait_until(self, ts: dt.datetime) -> None:
        delay = (ts - self.now()).total_seconds()
        if delay > 0:
            self.stop.wait(delay)
