"""The live :class:`~kwx.engine.ports.Feed`: one step per minute boundary, every minute.

For minute t (a boundary of the wall clock, the exchange's clock, or a lock-step replay):

1. wait until t (the clock);
2. bring the market data up to t (:meth:`kwx.live.source.MarketSource.sync`: the stream's
   prints, books, fills and order updates, completed over REST; the minute's candle closed
   with the touch read at t, our own orders taken out);
3. read the store's pmf.minute / wx.obs rows stamped at or before t (where pmf.minute lacks
   minute t, :class:`~kwx.live.weather.LiveWeather` runs the weather model for it);
4. compute each city's feed arrays with the backtest's functions
   (:class:`kwx.live.features.LiveFeatures`) and yield the snapshots of the events whose
   climate day contains t — the same :class:`~kwx.engine.ports.EventSnapshot` a backtest
   yields at t from the same data.

Unlike the backtest feed it never skips a minute: the agent decides at every one (as the
Feed protocol says of live feeds); the strategy is still only asked where its screen passes
or we hold or rest something. ``after_step`` runs once the agent has handled the step (the
runner flushes the journal there); ``stop`` ends the feed at the next boundary.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from kwx.engine.ports import Clock, Demand, EventSnapshot, MarketStep
from kwx.live.clocks import ceil_minute
from kwx.live.features import LiveFeatures
from kwx.live.market_data import LiveMarketData
from kwx.live.source import MarketSource
from kwx.live.store_reader import StoreReader
from kwx.live.weather import LiveWeather

__all__ = ["CityFeed", "FeedStats", "LiveFeed"]

log = logging.getLogger(__name__)
MINUTE = dt.timedelta(minutes=1)
T = 1440


@dataclass
class CityFeed:
    """One city's pieces: its market data, store reader and feature computer."""

    market: LiveMarketData
    reader: StoreReader | None
    features: LiveFeatures
    weather: LiveWeather | None = None


@dataclass
class FeedStats:
    steps: int = 0
    snapshots: int = 0
    late_steps: int = 0  # boundaries reached after the next one had passed already
    step_ms: list[float] = field(default_factory=list)  # sync → snapshots, per step


class LiveFeed:
    """See the module notes."""

    def __init__(
        self,
        *,
        clock: Clock,
        source: MarketSource,
        cities: Sequence[CityFeed],
        start: dt.datetime | None = None,
        until: dt.datetime | None = None,
        max_steps: int | None = None,
        stop: threading.Event | None = None,
        after_step: Callable[[dt.datetime], None] | None = None,
    ) -> None:
        self.clock = clock
        self.source = source
        self.cities = list(cities)
        self.start = start
        self.until = until
        self.max_steps = max_steps
        self.stop = stop or threading.Event()
        self.after_step = after_step
        self.stats = FeedStats()

    def steps(self, demand: Demand) -> Iterator[MarketStep]:
        del demand  # a live feed yields every minute
        t = ceil_minute(self.start or self.clock.now())
        while not self.stop.is_set():
            if self.until is not None and t > self.until:
                return
            if self.max_steps is not None and self.stats.steps >= self.max_steps:
                return
            self.clock.wait_until(t)
            if self.stop.is_set():
                return
            yield self.step(t)
            if self.after_step is not None:
                self.after_step(t)
            t += MINUTE
            now = self.clock.now()
            if now - t >= MINUTE:  # fell behind (a slow minute): catch up at the present one
                self.stats.late_steps += 1
                log.warning("live loop is %s behind; skipping to %s", now - t, now)
                t = ceil_minute(now - MINUTE + dt.timedelta(microseconds=1))

    def step(self, t: dt.datetime) -> MarketStep:
        """Everything known at t, as the agent's step for t."""
        began = time.perf_counter()
        self.source.sync(t)
        snaps: list[EventSnapshot] = []
        for city in self.cities:
            if city.reader is not None:
                city.reader.refresh(t)
                if (
                    city.weather is not None
                    and self._weather(city, t)
                    and not (city.weather.background)
                ):
                    city.reader.refresh(t)  # computed in line: read it now
            snaps.extend(self.snapshots(city, t))
        self.stats.steps += 1
        self.stats.snapshots += len(snaps)
        self.stats.step_ms.append((time.perf_counter() - began) * 1000.0)
        return MarketStep(t, tuple(snaps))

    @staticmethod
    def _weather(city: CityFeed, t: dt.datetime) -> bool:
        """Ask the live weather model for minute t where pmf.minute lacks it."""
        assert city.weather is not None
        market = city.market
        asked = False
        for e, event in enumerate(market.events):
            row = market.minute_index(e, t)
            if 0 <= row < T and not market.has_pmf(event.tickers[0], t):
                city.weather.ensure(event, row)
                asked = True
        return asked

    @staticmethod
    def snapshots(city: CityFeed, t: dt.datetime) -> list[EventSnapshot]:
        """The city's events whose climate day contains t, at their row for t."""
        market = city.market
        rows = {e: market.minute_index(e, t) for e in range(len(market.events))}
        active = {e: r for e, r in rows.items() if 0 <= r < T}
        if not active:
            return []
        city.features.compute(market.raw(), active)
        return [city.features.snapshot(e, r) for e, r in sorted(active.items())]
