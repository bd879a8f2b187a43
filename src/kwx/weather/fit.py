"""`kwx weather fit-params`: the residual process the Monte Carlo simulates.

Residual r(τ) = observation − baseline, where the baseline is a forecast issued at I before τ.
Per lead bucket (τ − I), consecutive residuals of the same forecast give the AR(1) coefficient
at the observation spacing Δ and the innovation sd; both are converted to one minute, the
engine's step, keeping the process's stationary variance: ρ₁ = ρ_Δ^(1/Δ) and
σ₁² = σ_Δ² (1 − ρ₁²) / (1 − ρ_Δ²).
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
