"""Clocks: historical (jumps to each minute the feed yields) and the wall clock (sleeps)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["HistoricalClock", "WallClock"]


class HistoricalClock:
    """Backtest time: set by :meth:`wait_until`, never moving backwards."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("HistoricalClock: start must be timezone-aware")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def wait_until(self, ts: datetime) -> None:
        if ts < self._now:
            raise ValueError(f"HistoricalClock: time cannot go back from {self._now} to {ts}")
        self._now = ts


class WallClock:
    """Real time (paper and live): :meth:`wait_until` sleeps until the instant arrives."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait_until(self, ts: datetime) -> None:
        delay = (ts - self.now()).total_seconds()
        if delay > 0:
            time.sleep(delay)
