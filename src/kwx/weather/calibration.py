"""The weather model's calibration by hour of day: one shift of the official-value pmf per
local hour, fitted on settled days by maximum likelihood (model output statistics).

Why: the pmf the Monte Carlo gives at hour h is systematically off by an amount that depends
on h. With the ERA5 proxy its median ran 2 °F warm at midnight in Chicago and 3 °F in Miami,
shrinking towards 0 as the day's maximum is observed: the maximum of the simulated paths over
the hours still to come picks up upward excursions of a residual that, in the proxy, is
partly a fixed diurnal pattern rather than noise. The AR(1) and the measurement model are each
fitted on their own question and cannot see this; a shift by hour, fitted on what the whole
model says against what settled, can.

How: for every settled day of the fit range the model is run at each whole local hour (at
``FIT_PATHS`` paths, without the shift), and for each hour h the shift s_h on a 0.25 °F grid
that maximises the mean log-probability of the settled value over hours h − 1, h and h + 1
(a little smoothing: neighbouring hours have nearly the same error) is kept. Hours are those
of the climate day (local standard time, minutes from its start). The engine applies s
interpolated to the minute (`shift_by_minute`) through `run_day(row_shift=…)`. The fit
range is the parameters' own: like them, the shifts are out of sample only on later days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.registry import City

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]

SHIFT_GRID = np.round(np.arange(-5.0, 5.0001, 0.25), 2)
FIT_PATHS = 1000
SMOOTH_HOURS = 1  # neighbours on each side whose likelihood also counts
P_FLOOR = 1e-4  # a settled value the model gave no mass still costs a finite amount
HOURS = np.arange(24)

__all__ = [
    "FIT_PATHS",
    "SHIFT_GRID",
    "HourShifts",
    "fit_hour_shifts",
    "fit_tmax_shift",
    "load_tmax_shift",
    "shift_by_minute",
    "shifted_probability",
    "store_tmax_shift",
]


@dataclass(frozen=True)
class HourShifts:
    """The fitted shift per local hour (°F) and the mean log-loss of the settled value before
    and after it, per hour, over ``n_days`` days."""

    shift: FloatArray  # (24,)
    log_loss_before: FloatArray  # (24,)
    log_loss_after: FloatArray  # (24,)
    n_days: int


def shifted_probability(
    support_lo: int, pmf: FloatArray, value: int, shift: FloatArray
) -> FloatArray:
    """P(official = value) under the pmf moved by each of ``shift`` (°F, fractional: a
    fraction f of a degree moves f of each degree's mass one degree further, as the engine
    does)."""
    whole = np.floor(shift).astype(np.int64)
    frac = shift - whole

    def mass(index: npt.NDArray[np.int64]) -> FloatArray:
        inside = (index >= 0) & (index < pmf.size)
        out: FloatArray = np.where(inside, pmf[np.clip(index, 0, pmf.size - 1)], 0.0)
        return out

    at = value - whole - support_lo
    return (1.0 - frac) * mass(at) + frac * mass(at - 1)


def fit_hour_shifts(
    samples: list[tuple[int, FloatArray, int]],
    *,
    grid: FloatArray = SHIFT_GRID,
    smooth: int = SMOOTH_HOURS,
) -> HourShifts:
    """Per-hour shifts from one (support_lo, pmf rows (24, W), settled value) per day."""
    if not samples:
        raise ValueError("no settled days to fit the calibration by hour on")
    loss = np.zeros((24, grid.size))
    for support_lo, rows, value in samples:
        if rows.shape[0] != 24:
            raise ValueError(f"need the pmf at 24 hours, got {rows.shape[0]}")
        for h in range(24):
            p = shifted_probability(support_lo, rows[h], value, grid)
            loss[h] -= np.log(np.maximum(p, P_FLOOR))
    loss /= len(samples)
    zero = int(np.flatnonzero(np.isclose(grid, 0.0))[0])
    shift = np.empty(24)
    after = np.empty(24)
    for h in range(24):
        near = [(h + d) % 24 for d in range(-smooth, smooth + 1)]
        best = int(np.argmin(loss[near].sum(axis=0)))
        shift[h], after[h] = grid[best], loss[h, best]
    return HourShifts(shift, loss[:, zero].copy(), after, len(samples))


def fit_tmax_shift(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    *,
    params_version: str,
    obs_source: str,
    forecast_source: str,
    paths: int = FIT_PATHS,
    seed: int = 0,
    on_day: Callable[[dt.date], None] | None = None,
) -> HourShifts:
    """Run the model (uncalibrated) at every whole hour of each settled day in the range and
    fit the shifts; days the model cannot run (no forecast, no observations) are skipped."""
    from kwx.weather.mc import run_day
    from kwx.weather.measurement import daily_pairs
    from kwx.weather.run_day import day_rng, load_day

    samples: list[tuple[int, FloatArray, int]] = []
    times = HOURS * 60
    for day, settled, _ in daily_pairs(conn, city, obs_source, date_from, date_to):
        try:
            inputs = load_day(
                conn,
                city,
                day,
                obs_source=obs_source,
                forecast_source=forecast_source,
                version=params_version,
                brackets=False,
                calibrated=False,
            )
        except ValueError:
            conn.rollback()
            continue
        result = run_day(
            inputs.baseline[times],
            inputs.obs,
            inputs.params,
            inputs.measurement,
            [],
            paths=paths,
            rng=day_rng(seed, day, city),
            times=times,
        )
        samples.append((result.support_lo, result.pmf, settled))
        if on_day is not None:
            on_day(day)
    return fit_hour_shifts(samples)


def store_tmax_shift(
    conn: Conn,
    city: City,
    version: str,
    fit: HourShifts | None,
    date_from: dt.date,
    date_to: dt.date,
) -> None:
    """wx.tmax_shift rows for one (city, version), replacing what was there (None: none)."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM wx.tmax_shift WHERE city = %s AND version = %s", (city.key, version)
        )
        if fit is None:
            return
        for h in range(24):
            conn.execute(
                "INSERT INTO wx.tmax_shift (city, version, local_hour, shift_f, "
                "log_loss_before, log_loss_after, n_days, date_from, date_to) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    city.key,
                    version,
                    h,
                    float(fit.shift[h]),
                    float(fit.log_loss_before[h]),
                    float(fit.log_loss_after[h]),
                    fit.n_days,
                    date_from,
                    date_to,
                ),
            )


def load_tmax_shift(conn: Conn, city: City, version: str) -> FloatArray | None:
    """The 24 fitted shifts, or None for parameters fitted without them."""
    rows = conn.execute(
        "SELECT local_hour, shift_f FROM wx.tmax_shift WHERE city = %s AND version = %s "
        "ORDER BY local_hour",
        (city.key, version),
    ).fetchall()
    conn.commit()
    if len(rows) != 24:
        return None
    return np.array([float(str(r[1])) for r in rows])


def shift_by_minute(shift: FloatArray) -> FloatArray:
    """The hourly shifts on the climate day's minute grid (minutes from its start, local
    standard time, as they were fitted), each at its whole hour and linearly interpolated
    between them around the clock."""
    nodes = np.arange(25, dtype=float)
    values = np.concatenate([shift, shift[:1]])
    out: FloatArray = np.interp(np.arange(1440) / 60.0, nodes, values)
    return out
