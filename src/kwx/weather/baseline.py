"""Baselines: the expected temperature path for the rest of the climate day, as known at t.

Two kinds. The template holds the last observation (the fallback when no forecast exists).
The forecast timeline takes, for every valid hour, the latest forecast *issued before t* —
never one issued later — and interpolates it to the minute grid, unshifted.

Why unshifted: today's error so far (observation − forecast) is the AR(1) residual the
Monte Carlo starts from, and `kwx weather fit-params` measured how much of it is left L
minutes later (a_H, fitted on raw observation − forecast residuals). Shifting the baseline
by that error as well carried it undecayed to the end of the day, on top of the residual:
a night running 5 °F warm at a coastal grid point made the whole afternoon 5 °F warm
(Miami, December 2024: p_wx's median Tmax at midnight ran +5.4 °F, log-loss 3.2 → 1.8
once removed).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg

MINUTES_PER_DAY = 1440


def minute_grid(start: dt.datetime, minutes: int = MINUTES_PER_DAY) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=minutes, freq="1min")


def latest_forecast_before(
    conn: psycopg.Connection[tuple[object, ...]],
    city: str,
    source: str,
    t: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
) -> pd.Series:
    """valid_at → temp_f from the newest forecast issued strictly before t, per valid time."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (valid_at) valid_at, temp_f
        FROM wx.forecast
        WHERE city = %s AND source = %s AND issued_at < %s
          AND valid_at >= %s - interval '3 hours' AND valid_at <= %s + interval '3 hours'
          AND temp_f IS NOT NULL
        ORDER BY valid_at, issued_at DESC
        """,
        (city, source, t, start, end),
    ).fetchall()
    conn.commit()
    if not rows:
        return pd.Series(dtype=float)
    return pd.Series(
        [float(str(r[1])) for r in rows],
        index=pd.DatetimeIndex([r[0] for r in rows]).tz_convert("UTC"),
    )


def to_grid(series: pd.Series, grid: pd.DatetimeIndex) -> np.ndarray:
    """Linear interpolation onto the grid; values beyond the ends are held, none → NaN."""
    if series.empty:
        return np.full(len(grid), np.nan)
    x = pd.DatetimeIndex(series.index).asi8.astype(float)
    out: np.ndarray = np.interp(grid.asi8.astype(float), x, series.to_numpy(dtype=float))
    return out


def template_baseline(obs: np.ndarray, t: int) -> np.ndarray:
    """Hold the last observation at or before minute t for the whole day (NaN if none)."""
    seen = obs[: t + 1]
    idx = np.flatnonzero(~np.isnan(seen))
    value = seen[idx[-1]] if idx.size else np.nan
    return np.full(len(obs), value)


def baseline_at(forecast: np.ndarray | None, obs: np.ndarray, t: int) -> np.ndarray:
    """The forecast path when there is a forecast (a copy, unshifted: today's error is the
    residual the Monte Carlo decays), else the template."""
    if forecast is None or np.isnan(forecast).all():
        return template_baseline(obs, t)
    return forecast.copy()
