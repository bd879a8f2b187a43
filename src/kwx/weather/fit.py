"""`kwx weather fit-params`: the residual process the Monte Carlo simulates.

Residual r(τ) = observation − baseline, where the baseline is a forecast issued at I before τ.

Two things are fitted, both the way the engine uses them:

- Optionally, the **diurnal bias** μ(h): the mean residual by local hour of τ, which the engine
  then adds to the forecast so that its bias correction by today's errors only carries today's
  anomaly. Off by default: for the ERA5 proxy in Chicago (night −1.5 °F, afternoon +0.4 °F
  against Visual Crossing) it made the morning forecasts of the maximum worse, not better.
- The **AR(1) by lead from the anchor**: the engine starts each path at the last observation
  and lets the residual decay over the lead L = minutes after that observation, with ρ and σ
  per lead bucket. So the fit buckets by the same L: for each bucket end H, the regression of
  r(τ + H) on r(τ) (same forecast issue, de-meaned by μ) gives a_H and the residual variance
  v_H; bucket by bucket, the per-minute ρ and σ are solved so that the engine's L-step
  coefficient and variance match a_H and v_H exactly at every bucket end.

(`fit_ar1`, the earlier fit by lead from the forecast issue with consecutive pairs, is kept as
a reference: it measured something the engine does not use.)
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from kwx.domain.climate_day import climate_day_window
from kwx.registry import City

# Lead-time bucket edges in minutes (the last bucket is open-ended).
LEAD_EDGES_MIN = (0, 60, 180, 360, 720, 1440, 2880)
MIN_PAIRS = 30
# An anchor observation further than this after the forecast's issue is not one the engine
# would pair with that forecast: a newer one is issued every day.
MAX_ANCHOR_AGE_MIN = 1440
_RHO_MAX = 0.999999
MINUTES_PER_DAY = 1440
_SIGMA_MIN = 1e-4


@dataclass(frozen=True)
class LeadFit:
    bucket: str
    lead_from_min: int
    lead_to_min: int | None
    rho: float  # per minute
    sigma: float  # per-minute innovation sd, °F
    n_obs: int
    rho_step: float  # at the observation spacing
    step_min: float


def bucket_label(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}m" if hi is not None else f"{lo}m+"


def load_residuals(
    conn: psycopg.Connection[tuple[object, ...]],
    city: City,
    obs_source: str,
    forecast_source: str,
    date_from: dt.date,
    date_to: dt.date,
) -> pd.DataFrame:
    """One row per (forecast issue, observation time) pair with a forecast valid then."""
    first, _ = climate_day_window(city.timezone, date_from)
    _, last = climate_day_window(city.timezone, date_to)
    rows = conn.execute(
        """
        SELECT f.issued_at, o.ts, o.temp_f - f.temp_f AS residual
        FROM wx.obs o
        JOIN wx.forecast f ON f.city = o.city AND f.valid_at = o.ts
        WHERE o.city = %(city)s AND o.source = %(obs)s AND f.source = %(fc)s
          AND o.ts >= %(first)s AND o.ts < %(last)s AND f.issued_at < o.ts
          AND o.temp_f IS NOT NULL AND f.temp_f IS NOT NULL
        ORDER BY f.issued_at, o.ts
        """,
        {"city": city.key, "obs": obs_source, "fc": forecast_source, "first": first, "last": last},
    ).fetchall()
    conn.commit()
    return pd.DataFrame(rows, columns=["issued_at", "ts", "residual"])


def fit_ar1(residuals: pd.DataFrame, *, edges: tuple[int, ...] = LEAD_EDGES_MIN) -> list[LeadFit]:
    """AR(1) per lead bucket from consecutive residuals of the same forecast issue."""
    if residuals.empty:
        raise ValueError("no residuals: observations and forecasts do not overlap")
    frame = residuals.sort_values(["issued_at", "ts"]).reset_index(drop=True)
    frame["lead_min"] = (frame["ts"] - frame["issued_at"]).dt.total_seconds() / 60
    nxt = frame.groupby("issued_at")[["ts", "residual"]].shift(-1)
    frame["step_min"] = (nxt["ts"] - frame["ts"]).dt.total_seconds() / 60
    frame["next"] = nxt["residual"]
    pairs = frame.dropna(subset=["next"])
    step = float(pairs["step_min"].mode().iloc[0])
    pairs = pairs[pairs["step_min"] == step]
    fits = []
    bounds = [*edges, None]
    for lo, hi in itertools.pairwise(bounds):
        assert lo is not None
        mask = pairs["lead_min"] >= lo
        if hi is not None:
            mask &= pairs["lead_min"] < hi
        chunk = pairs[mask]
        if len(chunk) < MIN_PAIRS:
            continue
        x, y = chunk["residual"].to_numpy(), chunk["next"].to_numpy()
        rho_step = float(np.clip(np.dot(x, y) / np.dot(x, x), 1e-6, 0.999999))
        sigma_step = float(np.std(y - rho_step * x, ddof=1))
        rho = rho_step ** (1.0 / step)
        sigma = sigma_step * math.sqrt((1 - rho**2) / (1 - rho_step**2))
        fits.append(LeadFit(bucket_label(lo, hi), lo, hi, rho, sigma, len(chunk), rho_step, step))
    if not fits:
        raise ValueError(f"fewer than {MIN_PAIRS} residual pairs in every lead bucket")
    return fits


def store_fits(
    conn: psycopg.Connection[tuple[object, ...]],
    city: City,
    version: str,
    fits: list[LeadFit],
    date_from: dt.date,
    date_to: dt.date,
) -> None:
    with conn.transaction():
        conn.execute(
            "DELETE FROM wx.mc_params WHERE city = %s AND version = %s", (city.key, version)
        )
        for fit in fits:
            conn.execute(
                "INSERT INTO wx.mc_params (city, version, lead_bucket, rho, sigma, n_obs, "
                "date_from, date_to) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (city.key, version, fit.bucket, fit.rho, fit.sigma, fit.n_obs, date_from, date_to),
            )


def fit_diurnal_bias(residuals: pd.DataFrame, timezone: str) -> np.ndarray:
    """Mean residual by local hour (24 values; hours without data get the overall mean)."""
    if residuals.empty:
        raise ValueError("no residuals: observations and forecasts do not overlap")
    frame = _recent(residuals)
    hours = pd.DatetimeIndex(frame["ts"]).tz_convert(timezone).hour
    means = frame.groupby(hours)["residual"].mean()
    out = np.full(24, float(frame["residual"].mean()))
    out[means.index.to_numpy(dtype=int)] = means.to_numpy(dtype=float)
    return out


def _recent(residuals: pd.DataFrame) -> pd.DataFrame:
    lead = (residuals["ts"] - residuals["issued_at"]).dt.total_seconds() / 60
    return residuals[(lead > 0) & (lead <= MAX_ANCHOR_AGE_MIN)]


def fit_anchor_ar1(
    residuals: pd.DataFrame,
    timezone: str,
    bias: np.ndarray,
    *,
    edges: tuple[int, ...] = LEAD_EDGES_MIN,
) -> list[LeadFit]:
    """Per-minute ρ, σ by lead from the anchor observation, matched at each bucket's end.

    With a = ∏ρ over a bucket's n minutes and the variance recursion
    v_end = ρ^{2n} v_start + σ² (1 − ρ^{2n}) / (1 − ρ²), the bucket's ρ and σ are the ones that
    reproduce the measured coefficient a_H and residual variance v_H at its end. A bucket whose
    horizon has too few pairs, or that lies beyond a day, repeats the previous one.
    """
    if residuals.empty:
        raise ValueError("no residuals: observations and forecasts do not overlap")
    frame = residuals.copy()
    hours = pd.DatetimeIndex(frame["ts"]).tz_convert(timezone).hour.to_numpy()
    frame["r"] = frame["residual"].to_numpy(dtype=float) - bias[hours]
    anchors = _recent(frame)[["issued_at", "ts", "r"]]
    targets = frame[["issued_at", "ts", "r"]]
    fits: list[LeadFit] = []
    a_prev, v_prev, h_prev = 1.0, 0.0, 0
    bounds = [*edges, None]
    for lo, hi in itertools.pairwise(bounds):
        assert lo is not None
        horizon = hi if hi is not None and hi <= MINUTES_PER_DAY else None
        pairs = _pairs_at(anchors, targets, horizon) if horizon is not None else None
        fit: LeadFit | None = None
        if horizon is not None and pairs is not None and len(pairs) >= MIN_PAIRS:
            x, y = pairs[:, 0], pairs[:, 1]
            a = float(np.clip(np.dot(x, y) / np.dot(x, x), 1e-6, 1.0))
            v = float(np.var(y - a * x, ddof=1))
            n = horizon - h_prev
            # A coefficient that does not fall with the lead (a residual that keeps growing,
            # as against a forecast blind to the day's anomaly) is the random-walk limit.
            ratio = min(a / a_prev, 1.0)
            rho = float(np.clip(ratio ** (1.0 / n), 1e-6, _RHO_MAX))
            rho_n2 = rho ** (2 * n)
            sigma2 = (v - rho_n2 * v_prev) * (1 - rho**2) / (1 - rho_n2)
            # Variance shrinking with the lead (the day's cycle): no AR(1) bucket reproduces
            # that, so the process goes on as in the bucket before.
            if sigma2 > 0.0:
                sigma = math.sqrt(max(sigma2, _SIGMA_MIN**2))
                fit = LeadFit(bucket_label(lo, hi), lo, hi, rho, sigma, len(pairs), a, horizon)
        if fit is None:
            why = "too few pairs or a lead structure no AR(1) bucket reproduces"
            fit = _repeat(fits, lo, hi, why)
        fits.append(fit)
        # Carry what the engine will actually produce at this bucket's end.
        n = (hi if hi is not None else h_prev) - h_prev
        rho_n2 = fit.rho ** (2 * n)
        a_prev = a_prev * fit.rho**n
        v_prev = rho_n2 * v_prev + fit.sigma**2 * (1 - rho_n2) / (1 - fit.rho**2)
        h_prev += n
    return fits


def _repeat(fits: list[LeadFit], lo: int, hi: int | None, why: str) -> LeadFit:
    """The previous bucket's ρ and σ for a bucket that cannot be fitted (n_obs = 0)."""
    if not fits:
        raise ValueError(f"cannot fit the first lead bucket ({bucket_label(lo, hi)}): {why}")
    last = fits[-1]
    return LeadFit(bucket_label(lo, hi), lo, hi, last.rho, last.sigma, 0, 1.0, 0)


def _pairs_at(anchors: pd.DataFrame, targets: pd.DataFrame, horizon: int) -> np.ndarray:
    """(r at the anchor, r `horizon` minutes later) under the same forecast issue."""
    shifted = anchors.assign(ts=anchors["ts"] + pd.Timedelta(minutes=horizon))
    joined = shifted.merge(targets, on=["issued_at", "ts"], suffixes=("_a", "_t"))
    return joined[["r_a", "r_t"]].to_numpy(dtype=float)


def store_bias(
    conn: psycopg.Connection[tuple[object, ...]],
    city: City,
    version: str,
    bias: np.ndarray | None,
    date_from: dt.date,
    date_to: dt.date,
) -> None:
    """wx.baseline_bias rows for one (city, version), replacing what was there (None: none)."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM wx.baseline_bias WHERE city = %s AND version = %s", (city.key, version)
        )
        for hour, mean in enumerate(bias if bias is not None else []):
            conn.execute(
                "INSERT INTO wx.baseline_bias (city, version, local_hour, mean_f, date_from, "
                "date_to) VALUES (%s, %s, %s, %s, %s, %s)",
                (city.key, version, hour, float(mean), date_from, date_to),
            )
