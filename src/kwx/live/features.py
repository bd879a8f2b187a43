"""The backtest's feature arithmetic on what the live loop knows: snapshots for minute t.

Each call takes a :class:`~kwx.backtest.loader.RawData` holding only what was known at t
(:class:`kwx.live.market_data.LiveMarketData`) and computes, with the backtest's functions
(`build_panel`, `executable_quotes`, `pooled_probability`, the signal terms, the strategy's
screens), the same :class:`~kwx.backtest.feed.FeedArrays` that
:func:`kwx.backtest.runner.prepare` computes for a stored day. Every column is causal, so row t
computed now equals row t of a backtest over the same data; the snapshot is then built by the
backtest feed's own :meth:`~kwx.backtest.feed.HistoricalFeed.snapshot`.

What differs from `prepare`, and why:

* the signal terms that look back across days (the z-scores' rolling window, the flow
  percentile's reference days) take the previous days from a :class:`SignalHistory` loaded
  once at start from the store, instead of from earlier rows of the same grid;
* the move classifier (the ε term of S) is loaded once and asked only about the current row.

``prepare`` builds the same arrays inline; if it grows a reusable core, this module should
call it instead of mirroring its twenty lines of glue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from kwx.backtest.assemble import feed_arrays
from kwx.backtest.feed import FeedArrays, HistoricalFeed
from kwx.backtest.loader import MINUTES_PER_DAY, RawData, load_raw
from kwx.backtest.panel import Panel, build_panel, executable_quotes
from kwx.engine.ports import EventSnapshot
from kwx.live.fusion import fuse_panel
from kwx.pmf.fusion import FusionConfig
from kwx.predict.features import NUMERIC_COLUMNS
from kwx.registry import City
from kwx.strategy.config import SignalConfig
from kwx.strategy.signals import (
    SignalTerms,
    hazard_score,
    neighbour_relative,
    pooled_probability,
    rolling_z,
)
from kwx.strategy.value import ValueStrategy

__all__ = ["LiveFeatures", "SignalHistory", "load_history"]

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]
T: Final = MINUTES_PER_DAY
FLOW_SAMPLE_EVERY: Final = 5  # kwx.strategy.signals.flow_percentile's reference thinning


@dataclass(frozen=True)
class SignalHistory:
    """What the cross-day signal terms need from the days before the first live day.

    ``ras`` and ``velocity`` are the last ``window_min`` rows (K columns, NaN-padded) of the
    previous days' grid; ``flow_days`` the flows of each previous climate day (ordinal →
    every ``FLOW_SAMPLE_EVERY``-th row, flattened), as `flow_percentile` samples them.
    """

    ras: FloatArray
    velocity: FloatArray
    flow_days: dict[int, FloatArray]

    @classmethod
    def empty(cls, width: int) -> SignalHistory:
        return cls(np.zeros((0, width)), np.zeros((0, width)), {})

    def widened(self, width: int) -> SignalHistory:
        def pad(x: FloatArray) -> FloatArray:
            if x.shape[1] >= width:
                return x[:, :width]
            return np.hstack([x, np.full((x.shape[0], width - x.shape[1]), np.nan)])

        return SignalHistory(pad(self.ras), pad(self.velocity), self.flow_days)


def load_history(
    conn: Conn, city: City, first_day: dt.date, config: SignalConfig, mc_version: str | None
) -> SignalHistory:
    """The previous ``flow_lookback_days`` climate days from the store (empty if none)."""
    start = first_day - dt.timedelta(days=config.flow_lookback_days)
    try:
        raw = load_raw(conn, city, start, first_day - dt.timedelta(days=1), mc_version=mc_version)
    except ValueError:
        return SignalHistory.empty(1)
    panel = build_panel(raw)
    e_n, _, k_n = panel.shape
    ras = panel.cols["ras"].reshape(e_n * T, k_n)[-config.window_min :]
    vel = panel.cols["velocity"].reshape(e_n * T, k_n)[-config.window_min :]
    flow = panel.cols["flow_20m"]
    days = {
        ev.climate_date.toordinal(): flow[e][::FLOW_SAMPLE_EVERY].ravel()
        for e, ev in enumerate(panel.events)
    }
    return SignalHistory(ras, vel, days)


class ClassifierTerm:
    """The default calibrated move classifier, asked about the current row only."""

    def __init__(self, predictor: Any, city: City) -> None:
        self.predictor = predictor
        self.city = city

    def __call__(self, panel: Panel, rows: npt.NDArray[np.bool_]) -> FloatArray:
        c = panel.cols
        sel = rows & ~np.isnan(c["mid"])
        out = np.full(sel.shape, np.nan)
        e_idx, t_idx, k_idx = np.nonzero(sel)
        if len(e_idx) == 0:
            return out
        starts = [ev.day_start for ev in panel.events]
        ts = pd.DatetimeIndex(
            [starts[e] + dt.timedelta(minutes=int(t)) for e, t in zip(e_idx, t_idx, strict=True)]
        )
        frame = pd.DataFrame(
            {
                "city": self.city.key,
                "ts": ts,
                "ts_local": ts.tz_convert(self.city.timezone).tz_localize(None),
                "strike_type": [
                    str(panel.events[e].brackets[k].strike_type)
                    for e, k in zip(e_idx, k_idx, strict=True)
                ],
                "has_trade": c["has_trade"][sel] == 1.0,
                "floor_strike": [
                    _strike(panel.events[e].brackets[k].floor)
                    for e, k in zip(e_idx, k_idx, strict=True)
                ],
                "cap_strike": [
                    _strike(panel.events[e].brackets[k].cap)
                    for e, k in zip(e_idx, k_idx, strict=True)
                ],
            }
        )
        # Exactly the panel columns the classifier was trained on (the strikes are above).
        for name in NUMERIC_COLUMNS:
            if name not in ("floor_strike", "cap_strike"):
                frame[name] = c[name][sel]
        out[sel] = self.predictor.predict_up(frame)
        return out


def _strike(value: object) -> float:
    return float("nan") if value is None else float(str(value))


class LiveFeatures:
    """FeedArrays for the rows the live loop is at, from the backtest's functions."""

    def __init__(
        self,
        strategy: ValueStrategy,
        *,
        history: SignalHistory | None = None,
        classifier: ClassifierTerm | None = None,
        fusion: FusionConfig | None = None,
    ) -> None:
        self.strategy = strategy
        self.history = history
        self.classifier = classifier
        # The fitted pool for minutes pmf.minute has not been fused for (a live day's).
        self.fusion = fusion
        self._pool = None if fusion is None else fusion.estimator()
        self.arrays: FeedArrays | None = None
        self.panel: Panel | None = None
        self.p_cal: FloatArray | None = None  # the classifier's P(up) where it was asked
        self._feed: HistoricalFeed | None = None

    def compute(self, raw: RawData, rows: dict[int, int]) -> FeedArrays:
        """Every feed column for the whole grid; the classifier only at ``rows`` (event →
        minute index), the only rows the live loop reads."""
        cfg = self.strategy.config
        panel = build_panel(raw)
        e_n, _, k_n = panel.shape
        c = panel.cols
        if self._pool is not None:
            stored = c["p_fused_norm"]
            c["p_fused_norm"] = np.where(np.isnan(stored), fuse_panel(self._pool, panel), stored)
        exists = np.broadcast_to((panel.tid_grid >= 0)[:, None, :], (e_n, T, k_n))
        bid, ask, source = executable_quotes(panel, cfg.signals.quote_max_age_min)

        def flat(x: FloatArray) -> FloatArray:
            return x.reshape(e_n * T, k_n)

        def grid(x: FloatArray) -> FloatArray:
            return x.reshape(e_n, T, k_n)

        p, _ = pooled_probability(
            flat(c["p_fused_norm"]), flat(c["p_mkt"]), flat(c["p_wx"]), cfg.signals.fallback_w_wx
        )
        p = grid(p)
        p[~exists] = np.nan
        p_cal: FloatArray | None = None
        if self.classifier is not None:
            gates = self.strategy.screen(
                p=p, yes_bid=bid, yes_ask=ask, volume_20m=c["volume_20m"], signal=None
            )
            at = np.zeros((e_n, T, k_n), dtype=bool)
            for e, t in rows.items():
                if 0 <= t < T:
                    at[e, t] = True
            p_cal = self.classifier(panel, gates & exists & at)
        self.p_cal = p_cal
        terms = self._signals(panel, exists, p_cal)
        arrays = feed_arrays(
            panel, self.strategy, p=p, bid=bid, ask=ask, quote_source=source, terms=terms
        )
        self.arrays, self.panel = arrays, panel
        self._feed = HistoricalFeed(arrays, dense=True)
        return arrays

    def model_probabilities(self, event_ticker: str, t: int) -> dict[str, float]:
        """The move classifier's calibrated P(up) per bracket at row t (where it was asked)."""
        if self.p_cal is None or self.arrays is None:
            return {}
        for e, ev in enumerate(self.arrays.events):
            if ev.event_ticker == event_ticker and 0 <= t < T:
                row = self.p_cal[e, t]
                return {tk: float(row[k]) for k, tk in enumerate(ev.tickers) if row[k] == row[k]}
        return {}

    def snapshot(self, e: int, t: int) -> EventSnapshot:
        """Event ``e`` at minute ``t`` of its climate day, from the last :meth:`compute`."""
        if self._feed is None:
            raise RuntimeError("LiveFeatures.snapshot before compute")
        return self._feed.snapshot(e, t)

    def _signals(
        self, panel: Panel, exists: npt.NDArray[np.bool_], p_cal: FloatArray | None
    ) -> SignalTerms:
        """S_j(t) as :func:`kwx.strategy.signals.compute_signals` computes it over a grid
        that starts with the history's days."""
        cfg = self.strategy.config.signals
        e_n, _, k_n = panel.shape
        c = panel.cols
        hist = (self.history or SignalHistory.empty(k_n)).widened(k_n)
        h = hist.ras.shape[0]

        def flat(x: FloatArray) -> FloatArray:
            return x.reshape(e_n * T, k_n)

        ras_z = rolling_z(
            np.vstack([hist.ras, flat(c["ras"])]), cfg.window_min, cfg.min_obs, cfg.z_clip
        )[h:]
        vel_z = rolling_z(
            np.vstack([hist.velocity, flat(c["velocity"])]),
            cfg.window_min,
            cfg.min_obs,
            cfg.z_clip,
        )[h:]
        flow = c["flow_20m"]
        flow_pct = np.full((e_n, T, k_n), np.nan)
        own = {
            ev.climate_date.toordinal(): flow[e][::FLOW_SAMPLE_EVERY].ravel()
            for e, ev in enumerate(panel.events)
        }
        days = {**hist.flow_days, **own}
        for e, ev in enumerate(panel.events):
            d = ev.climate_date.toordinal()
            ref_days = [r for r in sorted(days) if d - cfg.flow_lookback_days <= r < d]
            if not ref_days:
                continue
            ref = np.concatenate([days[r] for r in ref_days])
            ref = np.sort(ref[~np.isnan(ref)])
            if len(ref) == 0:
                continue
            x = flow[e]
            lo = np.searchsorted(ref, x, side="left")
            hi = np.searchsorted(ref, x, side="right")
            pct = (lo + hi) / (2.0 * len(ref))
            flow_pct[e] = np.where(np.isnan(x), np.nan, 2.0 * pct - 1.0)
        haz = hazard_score(flat(c["hazard_next_60m"]), flat(c["p_wx"]))
        rel = neighbour_relative(flat(p_cal)) if p_cal is not None else np.zeros((e_n * T, k_n))
        fp = flow_pct.reshape(e_n * T, k_n)
        total = (
            cfg.alpha * np.nan_to_num(ras_z)
            + cfg.beta * np.nan_to_num(vel_z)
            + cfg.gamma * np.nan_to_num(fp)
            + cfg.delta * np.nan_to_num(haz)
            + cfg.epsilon * np.nan_to_num(rel)
        )
        missing = ~exists.reshape(e_n * T, k_n)
        for arr in (total, ras_z, vel_z, fp, haz, rel):
            arr[missing] = np.nan
        return SignalTerms(total, ras_z, vel_z, fp, haz, rel)
