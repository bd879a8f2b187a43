"""What the live loop knows about one city's markets, kept as the backtest's raw arrays.

Trades (from the WebSocket ``trade`` channel, or REST ``GET /markets/trades`` when the stream
missed them), the touch of each book sampled at every minute boundary, and the store's
``pmf.minute`` / ``wx.obs`` rows up to now are kept per market; :meth:`LiveMarketData.raw`
returns them as a :class:`~kwx.backtest.loader.RawData`, the shape
:func:`kwx.backtest.loader.load_raw` gives, so that the panel, the signals and the screens
are the backtest's own functions applied to what was known at the time (DESIGN.md,
principle 1).

Candles: a market's bar for minute m (trade low / high / close / volume) is built from its
prints; its bid/ask close is the book's touch sampled at m + 1 min, which is what Kalshi's own
candle for m says and what the panel reads at row m + 1. An empty side is stored as Kalshi
stores it (bid 0, ask 1: "no quote"); a touch that could not be read at all is NaN, and the
panel carries the previous quote forward.

Times are floored to the millisecond: the stream stamps prints in ms, REST in µs, and the same
print must look the same whichever source delivered it first. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
import numpy.typing as npt

from kwx.backtest.loader import EventMeta, RawData

__all__ = ["LiveMarketData", "LiveTrade", "floor_ms", "us_of"]

US_PER_MIN: Final = 60_000_000
NAN: Final = float("nan")

CANDLE_DTYPE: Final = np.dtype(
    [
        ("tid", np.int64),
        ("minute", np.int64),
        ("bid", np.float64),
        ("ask", np.float64),
        ("low", np.float64),
        ("high", np.float64),
        ("close", np.float64),
        ("volume", np.float64),
        ("has_trade", np.bool_),
    ]
)
TRADE_DTYPE: Final = np.dtype(
    [
        ("tid", np.int64),
        ("ts_us", np.int64),
        ("price", np.int64),
        ("count", np.int64),
        ("taker_yes", np.bool_),
    ]
)
PMF_DTYPE: Final = np.dtype(
    [
        ("tid", np.int64),
        ("minute", np.int64),
        ("p_mkt", np.float64),
        ("p_wx", np.float64),
        ("p_fused_norm", np.float64),
        ("h5", np.float64),
        ("h60", np.float64),
        ("q50", np.float64),
    ]
)
OBS_DTYPE: Final = np.dtype([("rank", np.int32), ("ts_us", np.int64), ("temp", np.float64)])


def us_of(ts: dt.datetime) -> int:
    """A timezone-aware instant as integer microseconds since the epoch (exact)."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: live times are UTC-aware")
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def floor_ms(ts: dt.datetime) -> dt.datetime:
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


@dataclass(frozen=True, slots=True)
class LiveTrade:
    """One public print as the live loop keeps it (exact price and count)."""

    trade_id: str
    ticker: str
    ts: dt.datetime  # floored to the millisecond
    yes_price: Decimal
    count: Decimal
    taker_side: str | None


class LiveMarketData:
    """One city's events (ladder order, as the backtest numbers them) and what is known."""

    def __init__(self, city: str, events: Sequence[EventMeta], mc_version: str) -> None:
        if not events:
            raise ValueError(f"{city}: no events to follow")
        self.city = city
        self.events = sorted(events, key=lambda e: e.day_start)
        self.mc_version = mc_version
        self.tickers = [t for e in self.events for t in e.tickers]
        self.tid_of = {t: i for i, t in enumerate(self.tickers)}
        self.tid_event = np.array(
            [i for i, e in enumerate(self.events) for _ in e.tickers], dtype=np.int64
        )
        self.tid_bracket = np.array(
            [k for e in self.events for k in range(len(e.tickers))], dtype=np.int64
        )
        self.trades: list[LiveTrade] = []
        self._seen: set[str] = set()
        self._rows: list[tuple[int, int, int, int, bool, bool]] = []  # + sided flag
        self._ids: list[str] = []
        self._quotes: dict[tuple[int, int], tuple[float, float]] = {}
        self._pmf: dict[tuple[int, int], tuple[float, ...]] = {}
        self._obs: list[tuple[int, int, float]] = []
        self._obs_seen: set[tuple[int, int]] = set()
        self._cache: RawData | None = None
        self.last_trade_ts: dt.datetime | None = None
        self.trade_sources: dict[str, int] = {}

    # ------------------------------------------------------------------ what arrives

    def add_trade(
        self,
        trade_id: str,
        ticker: str,
        ts: dt.datetime,
        yes_price: Decimal,
        count: Decimal,
        taker_side: str | None,
        *,
        source: str = "ws",
    ) -> bool:
        """Keep a print once (by trade id); False when it was known or is not ours."""
        tid = self.tid_of.get(ticker)
        if tid is None or trade_id in self._seen:
            return False
        if not Decimal(0) < yes_price < Decimal(1) or count <= 0:
            raise ValueError(
                f"trade {trade_id} on {ticker}: impossible price {yes_price} or count {count}"
            )
        ts = floor_ms(ts)
        self._seen.add(trade_id)
        self.trades.append(LiveTrade(trade_id, ticker, ts, yes_price, count, taker_side))
        self._ids.append(trade_id)
        self._rows.append(
            (
                tid,
                us_of(ts),
                int(yes_price * 1_000_000),
                int(count * 100),
                taker_side == "yes",
                taker_side in ("yes", "no"),
            )
        )
        self.trade_sources[source] = self.trade_sources.get(source, 0) + 1
        if self.last_trade_ts is None or ts > self.last_trade_ts:
            self.last_trade_ts = ts
        self._cache = None
        return True

    def set_touch(
        self, ticker: str, boundary: dt.datetime, bid: float | None, ask: float | None
    ) -> None:
        """The touch read at ``boundary`` (a minute start) closes the candle of the minute
        before. ``None`` is an empty side (stored as Kalshi does: bid 0, ask 1); NaN unknown."""
        tid = self.tid_of.get(ticker)
        if tid is None:
            return
        minute = us_of(boundary) // US_PER_MIN - 1
        value = (0.0 if bid is None else bid, 1.0 if ask is None else ask)
        if self._quotes.get((tid, minute)) != value:
            self._quotes[(tid, minute)] = value
            self._cache = None

    def add_pmf(self, rows: Iterable[Sequence[object]]) -> int:
        """pmf.minute rows (ticker, ts, p_mkt, p_wx, p_fused_norm, h5, h60, tmax_q50)."""
        added = 0
        for row in rows:
            ticker, ts, *values = row
            tid = self.tid_of.get(str(ticker))
            if tid is None:
                continue
            if not isinstance(ts, dt.datetime) or len(values) != 6:
                raise ValueError(f"pmf.minute row for {ticker}: bad shape {row!r}")
            key = (tid, us_of(ts) // US_PER_MIN)
            vals = tuple(NAN if v is None else float(str(v)) for v in values)
            if self._pmf.get(key) != vals:
                self._pmf[key] = vals
                added += 1
        if added:
            self._cache = None
        return added

    def add_obs(self, rows: Iterable[tuple[int, int, float]]) -> int:
        """wx.obs readings (source rank, ts µs, temp °F), each kept once."""
        added = 0
        for rank, ts_us, temp in rows:
            if (rank, ts_us) in self._obs_seen:
                continue
            self._obs_seen.add((rank, ts_us))
            self._obs.append((rank, ts_us, temp))
            added += 1
        if added:
            self._obs.sort(key=lambda r: (r[1], r[0]))
            self._cache = None
        return added

    # ------------------------------------------------------------------ reads

    def has_pmf(self, ticker: str, boundary: dt.datetime) -> bool:
        tid = self.tid_of.get(ticker)
        return tid is not None and (tid, us_of(boundary) // US_PER_MIN) in self._pmf

    def trades_before(self, ts: dt.datetime) -> list[LiveTrade]:
        cut = floor_ms(ts)
        return [t for t in self.trades if t.ts < cut]

    def raw(self) -> RawData:
        """Everything known, as the backtest's raw arrays (built once per change)."""
        if self._cache is not None:
            return self._cache
        rows = np.array(self._rows, dtype=np.int64).reshape(-1, 6)
        sided = rows[:, 5] == 1
        trades = np.empty(int(sided.sum()), dtype=TRADE_DTYPE)
        for j, name in enumerate(("tid", "ts_us", "price", "count")):
            trades[name] = rows[sided, j]
        trades["taker_yes"] = rows[sided, 4] == 1
        trades = trades[
            np.lexsort(
                (
                    trades["taker_yes"],
                    trades["count"],
                    trades["price"],
                    trades["ts_us"],
                    trades["tid"],
                )
            )
        ]
        self._cache = RawData(
            city=self.city,
            mc_version=self.mc_version,
            events=self.events,
            tickers=self.tickers,
            tid_event=self.tid_event,
            tid_bracket=self.tid_bracket,
            candles=self._candles(rows),
            trades=trades,
            pmf=self._pmf_array(),
            obs=np.array(self._obs, dtype=OBS_DTYPE),
        )
        return self._cache

    def _candles(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.void]:
        """Bars of the prints joined with the sampled quotes, one row per (market, minute)
        that has either. Prints are taken in time order, ties by trade id, as the store's
        candle builder takes them (`kwx.ingest.candles`): the close is the last of them."""
        shift = np.int64(1 << 32)
        if len(rows):
            rank = np.unique(np.array(self._ids, dtype=object), return_inverse=True)[1]
            r = rows[np.lexsort((rank, rows[:, 1], rows[:, 0]))]
            key = r[:, 0] * shift + r[:, 1] // US_PER_MIN
            bar_keys, first = np.unique(key, return_index=True)
            last = np.r_[first[1:], len(key)] - 1
            price = r[:, 2].astype(np.float64) / 1e6
            low = np.minimum.reduceat(price, first)
            high = np.maximum.reduceat(price, first)
            close = price[last]
            volume = np.add.reduceat(r[:, 3].astype(np.float64), first) / 100.0
        else:
            bar_keys = np.zeros(0, np.int64)
            low = high = close = volume = np.zeros(0)
        q_items = sorted(self._quotes.items())
        q_keys = np.array([t * int(shift) + m for (t, m), _ in q_items], dtype=np.int64)
        q_vals = np.array([v for _, v in q_items], dtype=np.float64).reshape(-1, 2)
        keys = np.union1d(bar_keys, q_keys)
        out = np.empty(len(keys), dtype=CANDLE_DTYPE)
        out["tid"] = keys // shift
        out["minute"] = keys % shift
        for name in ("bid", "ask", "low", "high", "close"):
            out[name] = NAN
        out["volume"] = 0.0
        out["has_trade"] = False
        if len(bar_keys):
            at_bar = np.searchsorted(keys, bar_keys)
            out["low"][at_bar], out["high"][at_bar], out["close"][at_bar] = low, high, close
            out["volume"][at_bar] = volume
            out["has_trade"][at_bar] = True
        if len(q_keys):
            at_q = np.searchsorted(keys, q_keys)
            out["bid"][at_q], out["ask"][at_q] = q_vals[:, 0], q_vals[:, 1]
        return out

    def _pmf_array(self) -> npt.NDArray[np.void]:
        out = np.empty(len(self._pmf), dtype=PMF_DTYPE)
        for i, ((tid, minute), vals) in enumerate(sorted(self._pmf.items())):
            out[i] = (tid, minute, *vals)
        return out

    def minute_index(self, e: int, ts: dt.datetime) -> int:
        """Row of ``ts`` in event ``e``'s climate-day grid (may fall outside [0, 1440))."""
        return math.floor((ts - self.events[e].day_start).total_seconds() / 60.0)
