"""The weather model's two jobs as library calls: fit every parameter, run every day.

Why here and not in the CLI: `kwx weather fit-params | backfill`, the main job and
`kwx evaluate` all fit and run the same model; one function each keeps them identical (the
evaluation must score exactly what a user would run).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psycopg

from kwx.registry import City
from kwx.weather.calibration import HourShifts, fit_tmax_shift, store_tmax_shift
from kwx.weather.fit import (
    LeadFit,
    fit_anchor_ar1,
    fit_diurnal_bias,
    load_residuals,
    store_bias,
    store_fits,
)
from kwx.weather.measurement import (
    OffsetDistribution,
    daily_pairs,
    fit_offsets,
    fit_seasonal_offsets,
    store_offsets,
)
from kwx.weather.run_day import run_city_day

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class FitSummary:
    """What `fit_all` stored: the AR(1) by lead, the diurnal bias (zeros when off), the
    all-year measurement model and the calibration by hour (None when skipped)."""

    fits: list[LeadFit]
    bias: np.ndarray
    measurement: OffsetDistribution
    shifts: HourShifts | None
    n_calibration_days: int


def fit_all(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    *,
    obs_source: str = "era5",
    forecast_source: str = "vc",
    version: str = "v1",
    diurnal_bias: bool = False,
    tmax_shift: bool = True,
    on_calibration_start: Callable[[int], None] | None = None,
    on_calibration_day: Callable[[dt.date], None] | None = None,
) -> FitSummary:
    """Fit and store the residual AR(1), the (optional) diurnal bias, the measurement model
    and the calibration by hour, all on [date_from, date_to] only, as `version`."""
    residuals = load_residuals(conn, city, obs_source, forecast_source, date_from, date_to)
    bias = fit_diurnal_bias(residuals, city.timezone) if diurnal_bias else np.zeros(24)
    fits = fit_anchor_ar1(residuals, city.timezone, bias)
    store_fits(conn, city, version, fits, date_from, date_to)
    store_bias(conn, city, version, bias if diurnal_bias else None, date_from, date_to)
    pairs = daily_pairs(conn, city, obs_source, date_from, date_to)
    dist = fit_offsets(pairs, city.key, obs_source)
    store_offsets(conn, dist, date_from, date_to)
    for seasonal in fit_seasonal_offsets(pairs, city.key, obs_source):
        store_offsets(conn, seasonal, date_from, date_to)
    shifts: HourShifts | None = None
    if tmax_shift:
        if on_calibration_start is not None:
            on_calibration_start(len(pairs))
        shifts = fit_tmax_shift(
            conn,
            city,
            date_from,
            date_to,
            params_version=version,
            obs_source=obs_source,
            forecast_source=forecast_source,
            on_day=on_calibration_day,
        )
    store_tmax_shift(conn, city, version, shifts, date_from, date_to)
    return FitSummary(fits, bias, dist, shifts, len(pairs))


@dataclass
class BackfillSummary:
    """Days written to pmf.minute and the days skipped, each with its reason."""

    done: int = 0
    skipped: list[str] = field(default_factory=list)


def run_days(
    conn: Conn,
    city: City,
    days: list[dt.date],
    *,
    paths: int = 4000,
    mc_version: str = "v1",
    obs_source: str | None = None,
    forecast_source: str = "vc",
    seed: int = 0,
    params_version: str = "v1",
    on_day: Callable[[dt.date, int | None], None] | None = None,
) -> BackfillSummary:
    """Run the Monte Carlo for each day into pmf.minute; a day the model cannot run (no
    markets, no forecast) is rolled back and reported, and the next goes on."""
    summary = BackfillSummary()
    for day in days:
        rows: int | None
        try:
            rows = run_city_day(
                conn,
                city,
                day,
                paths=paths,
                seed=seed,
                mc_version=mc_version,
                obs_source=obs_source,
                forecast_source=forecast_source,
                params_version=params_version,
            )
            summary.done += 1
        except ValueError as exc:
            conn.rollback()
            summary.skipped.append(f"{day}: {exc}")
            rows = None
        if on_day is not None:
            on_day(day, rows)
    return summary
