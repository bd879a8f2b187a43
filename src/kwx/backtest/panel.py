"""The feature panel of a whole run in numpy: ``feat.minute_panel_neighbors`` + ``pmf.minute``.

Arrays are (E, T, K): E events (climate days, in date order), T = 1440 minutes from the climate
day's start (local standard midnight), K brackets in ladder order (NaN beyond an event's own).
The arithmetic is the views' (migrations 0004/0007), so a row at ``ts`` holds only what was
known at ``ts``: the candle that closed at ts is the one that started at ts − 1 minute; quotes
and the last trade price carry forward over quiet minutes and from before the day began; an
empty book's bid 0 / ask 1 is no quote; volumes sum the day's own rows. The equality with the
view is a test (``tests/backtest/test_panel.py``).

Beyond the view, from the trade prints (``created_time < ts``): the signed taker flow of the
last 20 minutes and the last price each taker side paid (the touch it lifted), with its age —
the executable quote where the data has no bid/ask (see :func:`executable_quotes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from kwx.backtest.loader import MINUTES_PER_DAY, EventMeta, RawData
from kwx.backtest.quote_model import QuoteInputs, QuoteModel
from kwx.pmf.market import bracket_prices, implied_pmf

__all__ = ["Panel", "build_panel", "executable_quotes"]

FloatArray = npt.NDArray[np.float64]
T: Final = MINUTES_PER_DAY
_SHIFT: Final = np.int64(1 << 32)
FLOW_WINDOW: Final = 20


@dataclass
class Panel:
    """A run's minute × bracket arrays and the events they belong to."""

    events: list[EventMeta]
    tid_grid: npt.NDArray[np.int64]  # (E, K): market number, −1 where the event has no bracket
    cols: dict[str, FloatArray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        e, k = self.tid_grid.shape
        return e, T, k

    @property
    def exists(self) -> npt.NDArray[np.bool_]:
        """(E, T, K) mask of real brackets."""
        e, t, k = self.shape
        return np.broadcast_to((self.tid_grid >= 0)[:, None, :], (e, t, k))

    def flat(self, name: str) -> FloatArray:
        """A column as (E·T, K): the run's minutes back to back."""
        e, t, k = self.shape
        return self.cols[name].reshape(e * t, k)

    def __getitem__(self, name: str) -> FloatArray:
        return self.cols[name]


def _ffill_lookup(
    keys: npt.NDArray[np.int64], values: FloatArray, query: npt.NDArray[np.int64]
) -> FloatArray:
    """For each query key, the value of the last row with key ≤ query of the same market."""
    ok = ~np.isnan(values)
    k, v = keys[ok], values[ok]
    idx = np.searchsorted(k, query, side="right") - 1
    safe = np.clip(idx, 0, max(len(k) - 1, 0))
    same = (idx >= 0) & (len(k) > 0)
    if len(k):
        same &= (k[safe] // _SHIFT) == (query // _SHIFT)
        return np.where(same, v[safe], np.nan)
    return np.full(query.shape, np.nan)


def _exact_lookup(
    keys: npt.NDArray[np.int64], values: FloatArray, query: npt.NDArray[np.int64]
) -> FloatArray:
    idx = np.searchsorted(keys, query, side="left")
    safe = np.clip(idx, 0, max(len(keys) - 1, 0))
    if not len(keys):
        return np.full(query.shape, np.nan)
    return np.where(keys[safe] == query, values[safe], np.nan)


def _lag(x: FloatArray) -> FloatArray:
    """x shifted one minute later along T (NaN at the day's first minute)."""
    out = np.full(x.shape, np.nan)
    out[:, 1:, :] = x[:, :-1, :]
    return out


def _day_window_sum(x: FloatArray, n: int) -> FloatArray:
    """Sum over the last n rows of the day (fewer at the start), along T."""
    c = np.cumsum(x, axis=1)
    out = c.copy()
    out[:, n:, :] = c[:, n:, :] - c[:, :-n, :]
    return out


def build_panel(raw: RawData) -> Panel:
    """Every panel column for the run (see the module docstring)."""
    events = raw.events
    n_e = len(events)
    n_k = max(len(e.tickers) for e in events)
    tid_grid = np.full((n_e, n_k), -1, dtype=np.int64)
    tid_grid[raw.tid_event, raw.tid_bracket] = np.arange(len(raw.tickers))
    exists = tid_grid >= 0
    start = np.array([e.start_minute for e in events], dtype=np.int64)
    minute = start[:, None, None] + np.arange(T, dtype=np.int64)[None, :, None]  # (E, T, 1)
    query = np.where(exists[:, None, :], tid_grid[:, None, :], -1) * _SHIFT + (minute - 1)
    panel = Panel(events, tid_grid)
    cols = panel.cols

    # ---------------------------------------------------------------- candles
    c = raw.candles
    ckeys = c["tid"].astype(np.int64) * _SHIFT + c["minute"].astype(np.int64)
    order = np.argsort(ckeys, kind="stable")
    ckeys = ckeys[order]

    def col(name: str) -> FloatArray:
        return np.asarray(c[name], dtype=np.float64)[order]

    bid_ff = _ffill_lookup(ckeys, col("bid"), query)
    ask_ff = _ffill_lookup(ckeys, col("ask"), query)
    last = _ffill_lookup(ckeys, col("close"), query)
    yes_bid = np.where(bid_ff > 0, bid_ff, np.nan)
    yes_ask = np.where(ask_ff < 1, ask_ff, np.nan)
    mid = np.where(~np.isnan(yes_bid) & ~np.isnan(yes_ask), (yes_bid + yes_ask) / 2, last)
    high = _exact_lookup(ckeys, col("high"), query)
    low = _exact_lookup(ckeys, col("low"), query)
    close = _exact_lookup(ckeys, col("close"), query)
    volume = np.nan_to_num(_exact_lookup(ckeys, col("volume"), query), nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        clv = np.where(high > low, ((close - low) - (high - close)) / (high - low), np.nan)
    velocity = mid - _lag(mid)
    acceleration = velocity - _lag(velocity)
    cols.update(
        yes_bid=yes_bid,
        yes_ask=yes_ask,
        last_price=last,
        mid=mid,
        spread=yes_ask - yes_bid,
        clv=clv,
        velocity=velocity,
        acceleration=acceleration,
        volume_1m=volume,
        volume_delta=volume - _lag(volume),
        volume_5m=_day_window_sum(volume, 5),
        volume_20m=_day_window_sum(volume, 20),
    )
    close_min = np.array([e.close_time.timestamp() / 60.0 for e in events])
    cols["minutes_to_close"] = np.broadcast_to(
        close_min[:, None, None] - minute.astype(np.float64), (n_e, T, n_k)
    ).copy()

    # ---------------------------------------------------------------- neighbours
    def left(x: FloatArray) -> FloatArray:
        out = np.full(x.shape, np.nan)
        out[:, :, 1:] = x[:, :, :-1]
        return out

    def right(x: FloatArray) -> FloatArray:
        out = np.full(x.shape, np.nan)
        out[:, :, :-1] = x[:, :, 1:]
        return out

    l_acc, r_acc = left(acceleration), right(acceleration)
    both = ~np.isnan(l_acc) & ~np.isnan(r_acc)
    nbr_acc = np.where(both, (l_acc + r_acc) / 2, np.where(np.isnan(l_acc), r_acc, l_acc))
    cols.update(
        left_mid=left(mid),
        right_mid=right(mid),
        left_velocity=left(velocity),
        right_velocity=right(velocity),
        ras=acceleration - nbr_acc,
        triad_mass=left(mid) + mid + right(mid),
    )

    # ---------------------------------------------------------------- pmf.minute
    p = raw.pmf
    for name in ("p_mkt", "p_wx", "p_fused_norm", "hazard_next_5m", "hazard_next_60m", "tmax_q50"):
        cols[name] = np.full((n_e, T, n_k), np.nan)
    if len(p):
        tid = p["tid"].astype(np.int64)
        ev = raw.tid_event[tid]
        t = p["minute"].astype(np.int64) - start[ev]
        keep = (t >= 0) & (t < T)
        ev, t, k = ev[keep], t[keep], raw.tid_bracket[tid[keep]]
        for name, src in (
            ("p_mkt", "p_mkt"),
            ("p_wx", "p_wx"),
            ("p_fused_norm", "p_fused_norm"),
            ("hazard_next_5m", "h5"),
            ("hazard_next_60m", "h60"),
            ("tmax_q50", "q50"),
        ):
            cols[name][ev, t, k] = np.asarray(p[src], dtype=np.float64)[keep]
    _fill_p_mkt(panel)
    # p_mkt's quote source per bracket: 1 where its price is the mid of the exchange's own
    # bid/ask, 0 where it came from the last trade print (pmf.market's fallback).
    cols["p_mkt_real"] = (~np.isnan(yes_bid) & ~np.isnan(yes_ask)).astype(np.float64)

    # ---------------------------------------------------------------- trade prints, weather
    cols["has_trade"] = (
        _exact_lookup(ckeys, np.asarray(c["has_trade"], dtype=np.float64)[order], query) == 1.0
    ).astype(np.float64)
    _trade_columns(panel, raw, start)
    _weather_columns(panel, raw, start)
    for name in cols:
        cols[name][~np.broadcast_to(exists[:, None, :], (n_e, T, n_k))] = np.nan
    return panel


def _fill_p_mkt(panel: Panel) -> None:
    """Where pmf.minute has no p_mkt for a minute, compute it from the panel the way
    :mod:`kwx.pmf.market` does (mid, else clipped last trade, normalised)."""
    cols = panel.cols
    stored = cols["p_mkt"]
    widths = (panel.tid_grid >= 0).sum(axis=1)
    missing_rows = 0
    for width in np.unique(widths):
        ev = np.flatnonzero(widths == width)
        w = int(width)
        sl = (ev, slice(None), slice(0, w))
        prices = bracket_prices(
            cols["yes_bid"][sl].reshape(-1, w),
            cols["yes_ask"][sl].reshape(-1, w),
            cols["last_price"][sl].reshape(-1, w),
        )
        computed = implied_pmf(prices).reshape(len(ev), T, w)
        have = stored[sl]
        row_missing = np.isnan(have).any(axis=2, keepdims=True)
        missing_rows += int(row_missing.sum())
        stored[sl] = np.where(row_missing, computed, have)
    if missing_rows:
        panel.notes.append(
            f"pmf.minute had no p_mkt for {missing_rows:,} event-minutes: computed from the "
            "panel quotes with kwx.pmf.market's rules."
        )


def _trade_columns(panel: Panel, raw: RawData, start: npt.NDArray[np.int64]) -> None:
    n_e, _, n_k = panel.shape
    tr = raw.trades
    cols = panel.cols
    tid = tr["tid"].astype(np.int64)
    ts_us = tr["ts_us"].astype(np.int64)
    price = tr["price"].astype(np.int64)
    count = tr["count"].astype(np.float64) / 100.0
    taker_yes = tr["taker_yes"].astype(bool)
    pminute = ts_us // 60_000_000

    # Signed flow of the last 20 minutes: prints in minutes [m − 20, m − 1].
    ev = raw.tid_event[tid] if len(tid) else np.zeros(0, np.int64)
    b = pminute - (start[ev] - FLOW_WINDOW) if len(tid) else np.zeros(0, np.int64)
    keep = (b >= 0) & (b < T + FLOW_WINDOW)
    buckets = np.zeros((n_e, T + FLOW_WINDOW, n_k))
    signed = np.where(taker_yes, count, -count)
    np.add.at(buckets, (ev[keep], b[keep], raw.tid_bracket[tid[keep]]), signed[keep])
    cum = np.concatenate([np.zeros((n_e, 1, n_k)), np.cumsum(buckets, axis=1)], axis=1)
    t = np.arange(T)
    cols["flow_20m"] = cum[:, t + FLOW_WINDOW, :] - cum[:, t, :]

    # The last price each taker side paid before ts (ties at one instant: the deepest print).
    minute = start[:, None, None] + np.arange(T, dtype=np.int64)[None, :, None]
    query = np.where(panel.tid_grid >= 0, panel.tid_grid, -1)[:, None, :] * _SHIFT + (minute - 1)
    for side, name, sign in ((True, "tb_ask", 1), (False, "tb_bid", -1)):
        m = taker_yes == side
        order = np.lexsort((sign * price[m], ts_us[m], tid[m]))
        keys = (tid[m] * _SHIFT + pminute[m])[order]
        cols[name] = _ffill_lookup(keys, price[m][order].astype(np.float64) / 1e6, query)
        cols[name + "_age"] = minute - _ffill_lookup(
            keys, pminute[m][order].astype(np.float64), query
        )


def _weather_columns(panel: Panel, raw: RawData, start: npt.NDArray[np.int64]) -> None:
    """temp_1m, temp_5m and running_max_f exactly as feat.minute_panel_with_weather picks
    them: the best-ranked source with a reading in the last 20 minutes, else the freshest
    reading of the last 3 hours; that source's reading at the last 5-minute mark of the day,
    and its maximum since the day began."""
    n_e, _, n_k = panel.shape
    shape = (n_e, T)
    temp_1m = np.full(shape, np.nan)
    temp_5m = np.full(shape, np.nan)
    running = np.full(shape, np.nan)
    obs = raw.obs
    if len(obs):
        minute_us = 60_000_000
        t_us = (start[:, None] + np.arange(T)[None, :]) * minute_us
        day_us = start[:, None] * minute_us
        bin5_us = t_us - ((t_us - day_us) % (5 * minute_us))
        ranks = np.unique(obs["rank"])
        best_rank = np.full(shape, np.iinfo(np.int64).max)
        best_ts = np.full(shape, np.iinfo(np.int64).min)
        chosen = np.full(shape, -1)
        per_source = []
        for j, rank in enumerate(ranks):
            o = obs[obs["rank"] == rank]
            ts = o["ts_us"].astype(np.int64)
            temp = o["temp"].astype(np.float64)
            idx = np.searchsorted(ts, t_us, side="right") - 1
            safe = np.clip(idx, 0, len(ts) - 1)
            last = np.where(idx >= 0, ts[safe], np.iinfo(np.int64).min)
            valid = (idx >= 0) & (last > t_us - 180 * minute_us)
            fresh = valid & (last > t_us - 20 * minute_us)
            per_source.append((ts, temp, idx, safe, valid))
            # Fresh readings: lowest rank wins (ranks ascend, so the first fresh one sticks).
            take_fresh = fresh & (best_rank == np.iinfo(np.int64).max)
            best_rank = np.where(take_fresh, rank, best_rank)
            chosen = np.where(take_fresh, j, chosen)
        none_fresh = best_rank == np.iinfo(np.int64).max
        for j, (ts, _, _, safe, valid) in enumerate(per_source):
            last = np.where(valid, ts[safe], np.iinfo(np.int64).min)
            better = none_fresh & valid & (last > best_ts)
            best_ts = np.where(better, last, best_ts)
            chosen = np.where(better, j, chosen)
        for j, (ts, temp, idx, safe, _valid) in enumerate(per_source):
            mine = chosen == j
            if not mine.any():
                continue
            temp_1m = np.where(mine, temp[safe], temp_1m)
            i5 = np.searchsorted(ts, bin5_us, side="right") - 1
            s5 = np.clip(i5, 0, len(ts) - 1)
            ok5 = (i5 >= 0) & (ts[s5] >= day_us)
            temp_5m = np.where(mine & ok5, temp[s5], temp_5m)
            day_of = np.searchsorted(start * minute_us, ts, side="right") - 1
            cummax = _group_cummax(temp, day_of)
            okm = (idx >= 0) & (ts[safe] >= day_us)
            running = np.where(mine & okm, cummax[safe], running)
    for name, values in (("temp_1m", temp_1m), ("temp_5m", temp_5m), ("running_max_f", running)):
        panel.cols[name] = np.broadcast_to(values[:, :, None], (n_e, T, n_k)).copy()


def _group_cummax(x: FloatArray, group: npt.NDArray[np.int64]) -> FloatArray:
    """Running maximum of x restarting where ``group`` (non-decreasing) changes."""
    out = x.copy()
    for i in range(1, len(x)):
        if group[i] == group[i - 1] and out[i - 1] > out[i]:
            out[i] = out[i - 1]
    return out


def executable_quotes(
    panel: Panel, max_age_min: float, model: QuoteModel | None = None
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int8]]:
    """The touch the strategy and the venue use: the quoted bid/ask where the data has them,
    else each side rebuilt from the prints.

    With a fitted ``model`` (:class:`~kwx.backtest.quote_model.QuoteModel`, fitted on real
    quotes) the rebuilt side is that model's conservative quantile of the real touch given the
    prints. Without one, the legacy rule: the last print of the taker who lifted it (a YES
    taker paid the ask, a NO taker sold at the bid) when at most ``max_age_min`` old, a crossed
    pair keeping the fresher side and putting the other one tick away — kinder than the real
    book (issue 13), kept only for stores where no model has been fitted. Returns (bid, ask,
    source) with source 0 none, 1 book, 2 trades, 3 mixed (per side)."""
    c = panel.cols
    book_bid, book_ask = c["yes_bid"], c["yes_ask"]
    if model is not None:
        tb_bid, tb_ask = model.predict(QuoteInputs.from_panel_cols(c))
        bid = np.where(np.isnan(book_bid), tb_bid, book_bid)
        ask = np.where(np.isnan(book_ask), tb_ask, book_ask)
        with np.errstate(invalid="ignore"):
            # One side real, the other rebuilt: a rebuilt side never crosses the real one.
            bad = bid >= ask
        bid = np.where(bad & np.isnan(book_bid), np.nan, bid)
        ask = np.where(bad & np.isnan(book_ask), np.nan, ask)
    else:
        bid, ask = _legacy_rebuilt(c, book_bid, book_ask, max_age_min)
    bid = np.round(bid, 2).astype(np.float64)
    ask = np.round(ask, 2).astype(np.float64)
    from_book = (~np.isnan(book_bid)).astype(np.int8) + (~np.isnan(book_ask)).astype(np.int8)
    have = (~np.isnan(bid)).astype(np.int8) + (~np.isnan(ask)).astype(np.int8)
    source = np.where(
        have == 0, 0, np.where(from_book == have, 1, np.where(from_book == 0, 2, 3))
    ).astype(np.int8)
    return bid, ask, source


def _legacy_rebuilt(
    c: dict[str, FloatArray], book_bid: FloatArray, book_ask: FloatArray, max_age_min: float
) -> tuple[FloatArray, FloatArray]:
    tb_bid = np.where(c["tb_bid_age"] <= max_age_min, c["tb_bid"], np.nan)
    tb_ask = np.where(c["tb_ask_age"] <= max_age_min, c["tb_ask"], np.nan)
    bid = np.where(np.isnan(book_bid), tb_bid, book_bid)
    ask = np.where(np.isnan(book_ask), tb_ask, book_ask)
    bid_age = np.where(np.isnan(book_bid), c["tb_bid_age"], 0.0)
    ask_age = np.where(np.isnan(book_ask), c["tb_ask_age"], 0.0)
    with np.errstate(invalid="ignore"):
        crossed = bid >= ask
        ask_fresher = ask_age <= bid_age
        bid = np.where(crossed & ask_fresher, ask - 0.01, bid)
        ask = np.where(crossed & ~ask_fresher, bid + 0.01, ask)
        bid = np.where((bid < 0.01) | (bid > 0.99), np.nan, bid)
        ask = np.where((ask < 0.01) | (ask > 0.99), np.nan, ask)
    return bid, ask
