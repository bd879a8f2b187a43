"""Signals: the seed's S_j(t), the probability traded on, and the value edge after fees.

Everything here is vectorised over a run's minute grid — arrays of shape (N, K): N minutes in
time order (the climate days of a city back to back), K brackets in ladder order (NaN where an
event has fewer) — and is **causal**: row n uses rows ≤ n only (each input row is itself what
was known at its minute). Live mode applies the same functions to its trailing history, so a
minute's S_j is the same whichever mode computes it; the tests change the future and check that
the past does not move.

S_j(t) = α·z(RAS) + β·z(velocity) + γ·flow percentile + δ·hazard score + ε·(p_cal − neighbours)

* ``z(x)``: x minus the mean, over the standard deviation, of x over the last ``window_min``
  minutes of the grid, pooled over the event's brackets (``min_obs`` values needed; clipped
  at ±``z_clip``).
* flow percentile: the signed taker flow of the last ``flow_window_min`` minutes (contracts
  bought by YES takers minus by NO takers) ranked against every bracket-minute of the previous
  ``flow_lookback_days`` climate days (mid-rank), mapped to [−1, 1]; 0 with no history.
* hazard score: ``hazard_next_60m`` pushes mass from the bracket holding the running maximum
  (the lowest bracket p_wx has not ruled out: −h) to the one above it (+h); 0 elsewhere.
* ``p_cal − neighbours``: a calibrated move classifier's P(up) for the bracket minus the mean
  of its neighbours'; 0 when no classifier is available.

A term whose input is missing contributes 0, so S is defined wherever the bracket exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from kwx.domain import fees
from kwx.strategy.config import SignalConfig

__all__ = [
    "SignalTerms",
    "compute_signals",
    "flow_percentile",
    "hazard_score",
    "neighbour_relative",
    "pooled_probability",
    "rolling_z",
    "value_edge",
]

FloatArray = npt.NDArray[np.float64]


def _window_sum(x: FloatArray, window: int) -> FloatArray:
    """Sum of x over the last ``window`` rows, this row included (x 1-d, NaN-free)."""
    c = np.cumsum(x)
    out = c.copy()
    out[window:] = c[window:] - c[:-window]
    return out


def rolling_z(x: FloatArray, window: int, min_obs: int, clip: float) -> FloatArray:
    """Causal z-score of x (N, K) against its last ``window`` rows pooled over columns."""
    ok = ~np.isnan(x)
    v = np.where(ok, x, 0.0)
    n = _window_sum(ok.sum(axis=1).astype(np.float64), window)
    s1 = _window_sum(v.sum(axis=1), window)
    s2 = _window_sum((v * v).sum(axis=1), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = s2 / n - mean * mean
        sd = np.sqrt(np.where(var > 1e-18, var, np.nan))
        z = (x - mean[:, None]) / sd[:, None]
    z[(n < min_obs)[:, None] | np.isnan(z)] = np.nan
    return np.clip(z, -clip, clip)


def flow_percentile(
    flow: FloatArray, day_of_row: npt.NDArray[np.int64], lookback_days: int, sample_every: int = 5
) -> FloatArray:
    """Mid-rank percentile of each row's flow against the previous ``lookback_days`` days,
    mapped to [−1, 1] (NaN where there is no history). ``day_of_row`` numbers the climate
    days 0, 1, 2 … in row order; the reference takes every ``sample_every``-th minute."""
    out = np.full(flow.shape, np.nan)
    days = np.unique(day_of_row)
    bounds = {int(d): np.flatnonzero(day_of_row == d) for d in days}
    for d in days:
        rows = bounds[int(d)]
        ref_days = [int(r) for r in days if int(d) - lookback_days <= int(r) < int(d)]
        if not ref_days:
            continue
        ref = np.concatenate([flow[bounds[r][::sample_every]].ravel() for r in ref_days])
        ref = np.sort(ref[~np.isnan(ref)])
        if len(ref) == 0:
            continue
        x = flow[rows]
        lo = np.searchsorted(ref, x, side="left")
        hi = np.searchsorted(ref, x, side="right")
        pct = (lo + hi) / (2.0 * len(ref))
        out[rows] = np.where(np.isnan(x), np.nan, 2.0 * pct - 1.0)
    return out


def hazard_score(hazard_60m: FloatArray, p_wx: FloatArray) -> FloatArray:
    """−h at the lowest bracket p_wx leaves alive, +h at the next one up, 0 elsewhere."""
    n, k = p_wx.shape
    alive = np.nan_to_num(p_wx, nan=0.0) > 0
    any_alive = alive.any(axis=1)
    first = np.argmax(alive, axis=1)
    out = np.zeros((n, k))
    rows = np.flatnonzero(any_alive)
    h = hazard_60m[rows, first[rows]]
    h = np.nan_to_num(h, nan=0.0)
    out[rows, first[rows]] = -h
    up = first[rows] + 1
    has_up = up < k
    out[rows[has_up], up[has_up]] = h[has_up]
    return np.where(np.isnan(p_wx), 0.0, out)


def neighbour_relative(p: FloatArray) -> FloatArray:
    """p_j minus the mean of the neighbours it has (NaN without neighbours or p)."""
    left = np.full(p.shape, np.nan)
    right = np.full(p.shape, np.nan)
    left[:, 1:] = p[:, :-1]
    right[:, :-1] = p[:, 1:]
    both = ~np.isnan(left) & ~np.isnan(right)
    nbr = np.where(both, (left + right) / 2.0, np.where(np.isnan(left), right, left))
    return p - nbr


@dataclass(frozen=True)
class SignalTerms:
    """S_j(t) and its terms (each (N, K), NaN where the bracket does not exist)."""

    signal: FloatArray
    ras_z: FloatArray
    velocity_z: FloatArray
    flow_pct: FloatArray
    hazard: FloatArray
    relative_cal: FloatArray


def compute_signals(
    *,
    ras: FloatArray,
    velocity: FloatArray,
    flow: FloatArray,
    hazard_60m: FloatArray,
    p_wx: FloatArray,
    p_cal: FloatArray | None,
    exists: npt.NDArray[np.bool_],
    day_of_row: npt.NDArray[np.int64],
    config: SignalConfig,
) -> SignalTerms:
    """S_j(t) over a run's grid; every input is (N, K) and causal, so the output is too."""
    c = config
    ras_z = rolling_z(ras, c.window_min, c.min_obs, c.z_clip)
    vel_z = rolling_z(velocity, c.window_min, c.min_obs, c.z_clip)
    flow_pct = flow_percentile(flow, day_of_row, c.flow_lookback_days)
    haz = hazard_score(hazard_60m, p_wx)
    rel = neighbour_relative(p_cal) if p_cal is not None else np.zeros(ras.shape)
    total = (
        c.alpha * np.nan_to_num(ras_z)
        + c.beta * np.nan_to_num(vel_z)
        + c.gamma * np.nan_to_num(flow_pct)
        + c.delta * np.nan_to_num(haz)
        + c.epsilon * np.nan_to_num(rel)
    )
    nan = ~exists
    for arr in (total, ras_z, vel_z, flow_pct, haz, rel):
        arr[nan] = np.nan
    return SignalTerms(total, ras_z, vel_z, flow_pct, haz, rel)


def pooled_probability(
    p_fused_norm: FloatArray, p_mkt: FloatArray, p_wx: FloatArray, w_wx: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The probability traded on: p_fused_norm where the fusion stored it, else the linear
    pool w·p_wx + (1 − w)·p_mkt renormalised over the event (NaN without p_wx or p_mkt).
    Returns (p, used_fallback mask)."""
    pool = w_wx * p_wx + (1.0 - w_wx) * p_mkt
    total = np.nansum(pool, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pool = np.where(total > 0, pool / total, np.nan)
    fallback = np.isnan(p_fused_norm) & ~np.isnan(pool)
    return np.where(np.isnan(p_fused_norm), pool, p_fused_norm), fallback


def value_edge(
    p_yes: float, side: str, price: Decimal, count: Decimal, *, is_taker: bool, fee_type: str
) -> Decimal:
    """Expected profit per contract of buying ``side`` at ``price`` (dollars), after the fee.

    Buy YES at the ask: p − ask − fee/C; buy NO at 1 − bid: (1 − p) − (1 − bid) − fee/C. The
    probability is rounded to 1e-6 (floats stay out of the money arithmetic beyond that).
    """
    p = Decimal(repr(round(p_yes, 6)))
    p_side = p if side == "yes" else Decimal(1) - p
    fee = fees.fee(count, price, is_taker=is_taker, fee_type=fee_type)
    return p_side - price - fee / count
