"""The historical feed: a run's minutes as :class:`~kwx.engine.ports.EventSnapshot` s.

Built once per run from bulk-loaded arrays (:mod:`kwx.backtest.loader`, :mod:`kwx.backtest.panel`)
— no per-event SQL — then replayed in time order. Events are merged by minute, so several
cities' days interleave exactly as they happened.

Skipping (what makes a city-year fast): an event's minute is yielded when the strategy's
vectorised entry screen passes there, when its exit screen passes for a bracket we hold, or
while we have resting orders in the event. At any other minute the strategy has nothing to do
and risk nothing to decide, so leaving it out changes no decision; a test runs a backtest both
ways (``dense=True`` yields every minute) and compares the fills.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Final

import numpy as np
import numpy.typing as npt

from kwx.backtest.loader import MINUTES_PER_DAY, EventMeta
from kwx.engine.ports import BracketView, Demand, EventSnapshot, MarketStep

__all__ = ["FEATURE_COLUMNS", "FEED_COLUMNS", "FeedArrays", "HistoricalFeed"]

FloatArray = npt.NDArray[np.float64]
T: Final = MINUTES_PER_DAY
_CENTS: Final = tuple(Decimal(i).scaleb(-2) for i in range(101))
# Where a bracket's executable touch came from (issue 13): the exchange's bid/ask (``real``),
# the quote model from the prints (``rebuilt``), or one side of each (``mixed``).
_SOURCES: Final = ("none", "real", "rebuilt", "mixed")

# Panel columns carried in every BracketView.features (and logged with each decision).
FEATURE_COLUMNS: Final = (
    "mid",
    "last_price",
    "spread",
    "velocity",
    "acceleration",
    "ras",
    "clv",
    "volume_1m",
    "volume_5m",
    "flow_20m",
    "left_mid",
    "right_mid",
    "triad_mass",
    "tmax_q50",
    "ras_z",
    "velocity_z",
    "flow_pct",
    "hazard_score",
    "relative_cal",
    "p_mkt_real",
)
_VIEW_COLUMNS: Final = (
    "p",
    "p_mkt",
    "p_wx",
    "p_fused_norm",
    "hazard_next_5m",
    "hazard_next_60m",
    "signal",
    "volume_20m",
    "minutes_to_close",
)
# Every column FeedArrays must carry.
FEED_COLUMNS: Final = (*_VIEW_COLUMNS, *FEATURE_COLUMNS)


class _Features(Mapping[str, float | None]):
    """A bracket's feature values, read lazily (most minutes nobody looks)."""

    __slots__ = ("_values",)

    def __init__(self, values: list[float]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> float | None:
        v = self._values[FEATURE_COLUMNS.index(key)]
        return None if v != v else v

    def __iter__(self) -> Iterator[str]:
        return iter(FEATURE_COLUMNS)

    def __len__(self) -> int:
        return len(FEATURE_COLUMNS)


@dataclass
class FeedArrays:
    """What the feed replays: (E, T, K) float columns, the touch, and the screen (E, T)."""

    events: list[EventMeta]
    columns: dict[str, FloatArray]  # every name in FEED_COLUMNS
    yes_bid: FloatArray
    yes_ask: FloatArray
    quote_source: npt.NDArray[np.int8]
    screen: npt.NDArray[np.bool_]  # (E, T): an entry may pass (or a wake-up minute)
    exit_yes: npt.NDArray[np.bool_]  # (E, T, K): a YES holding may be exited
    exit_no: npt.NDArray[np.bool_]  # (E, T, K): a NO holding may be exited

    def __post_init__(self) -> None:
        missing = [c for c in FEED_COLUMNS if c not in self.columns]
        if missing:
            raise ValueError(f"FeedArrays: missing columns {missing}")


def _opt(v: float) -> float | None:
    return None if v != v else v


def _cents(v: float) -> Decimal | None:
    if v != v:
        return None
    return _CENTS[round(v * 100)]


class HistoricalFeed:
    """Replays :class:`FeedArrays` minute by minute (see the module docstring)."""

    def __init__(self, arrays: FeedArrays, *, dense: bool = False) -> None:
        self.a = arrays
        self.dense = dense
        self._screened = [np.flatnonzero(row) for row in arrays.screen]
        self._exit: dict[tuple[int, int, bool], npt.NDArray[np.int64]] = {}
        self._view = np.stack([arrays.columns[c] for c in _VIEW_COLUMNS], axis=-1)
        self._feat = np.stack([arrays.columns[c] for c in FEATURE_COLUMNS], axis=-1)
        self.snapshots = 0

    def snapshot(self, e: int, t: int) -> EventSnapshot:
        """The state of event ``e`` at minute ``t`` of its climate day (brackets built lazily)."""
        ev = self.a.events[e]
        self.snapshots += 1
        return EventSnapshot(
            ts=ev.day_start + timedelta(minutes=t),
            event_ticker=ev.event_ticker,
            city=ev.city,
            climate_date=ev.climate_date,
            series_ticker=ev.series_ticker,
            fee_type=ev.fee_type,
            close_time=ev.close_time,
            tickers=ev.tickers,
            loader=partial(self.bracket_view, e, t),
            screened=bool(self.a.screen[e, t]),
        )

    def bracket_view(self, e: int, t: int, k: int) -> BracketView:
        """Bracket k of event e at minute t."""
        p, p_mkt, p_wx, p_fn, h5, h60, signal, vol20, mtc = self._view[e, t, k].tolist()
        return BracketView(
            ticker=self.a.events[e].tickers[k],
            index=k,
            yes_bid=_cents(float(self.a.yes_bid[e, t, k])),
            yes_ask=_cents(float(self.a.yes_ask[e, t, k])),
            quote_source=_SOURCES[int(self.a.quote_source[e, t, k])],
            p=_opt(p),
            p_mkt=_opt(p_mkt),
            p_wx=_opt(p_wx),
            p_fused_norm=_opt(p_fn),
            hazard_next_5m=_opt(h5),
            hazard_next_60m=_opt(h60),
            signal=_opt(signal),
            volume_20m=0.0 if vol20 != vol20 else vol20,
            minutes_to_close=_opt(mtc),
            features=_Features(self._feat[e, t, k].tolist()),
        )

    def _exit_minutes(self, e: int, k: int, yes: bool) -> npt.NDArray[np.int64]:
        key = (e, k, yes)
        found = self._exit.get(key)
        if found is None:
            found = np.flatnonzero((self.a.exit_yes if yes else self.a.exit_no)[e, :, k])
            self._exit[key] = found
        return found

    @staticmethod
    def _after(idx: npt.NDArray[np.int64], after: int) -> int:
        i = int(np.searchsorted(idx, after, side="right"))
        return int(idx[i]) if i < len(idx) else T

    def _next(self, e: int, after: int, demand: Demand) -> int:
        """The next minute index of event e worth yielding (T when none)."""
        ev = self.a.events[e]
        if self.dense or demand.needs_every_minute(ev.event_ticker):
            return after + 1
        nxt = self._after(self._screened[e], after)
        for ticker, count in demand.holdings(ev.event_ticker).items():
            if count == 0:
                continue
            k = ev.tickers.index(ticker)
            nxt = min(nxt, self._after(self._exit_minutes(e, k, count > 0), after))
        return nxt

    def steps(self, demand: Demand) -> Iterator[MarketStep]:
        events = self.a.events
        starts = [int(ev.day_start.timestamp()) // 60 for ev in events]
        heap: list[tuple[int, int, int]] = []
        for e in range(len(events)):
            t = self._next(e, -1, demand)
            if t < T:
                heap.append((starts[e] + t, e, t))
        heapq.heapify(heap)
        while heap:
            minute = heap[0][0]
            due: list[tuple[int, int]] = []
            while heap and heap[0][0] == minute:
                _, e, t = heapq.heappop(heap)
                due.append((e, t))
            ts = datetime.fromtimestamp(minute * 60, tz=UTC)
            yield MarketStep(ts, tuple(self.snapshot(e, t) for e, t in due))
            for e, t in due:
                nxt = self._next(e, t, demand)
                if nxt < T:
                    heapq.heappush(heap, (starts[e] + nxt, e, nxt))
