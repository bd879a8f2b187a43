"""`kwx bench mc`: the weather Monte Carlo over one city-year on a one-minute grid.

The year is synthetic but shaped like a real one (seasonal mean and diurnal range, a skewed
diurnal curve, AR(1) weather noise with lead-bucketed parameters, noisy minute observations,
a Kalshi-style ladder around each day's expected high), so the figures do not depend on what
happens to be in the shared data. The fast engine runs every one of the 525,600 timestamps; the
naive loop (fresh paths for every timestamp) is timed on a sample and scaled, and the two are
compared on that sample in units of Monte Carlo error.
"""

from __future__ import annotations

import math
import statistics
import time
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kwx.domain.brackets import Bracket, StrikeType
from kwx.weather import mc
from kwx.weather.mc import MINUTES_PER_DAY, McParams, MeasurementModel

TARGET_YEAR_S = 60.0
TARGET_SPEEDUP = 50.0

FloatArray = npt.NDArray[np.float64]


def synthetic_params() -> McParams:
    """ρ ≈ 0.995/min and σ ≈ 0.15 °F, varied by lead so that the buckets are exercised."""
    return McParams(
        np.array([0, 60, 180, 360]),
        np.array([0.993, 0.994, 0.995, 0.996]),
        np.array([0.16, 0.15, 0.15, 0.14]),
    )


def synthetic_measurement() -> MeasurementModel:
    """A plausible official − observed offset pmf for a whole-°C 5-minute source."""
    return MeasurementModel(np.array([-1, 0, 1, 2]), np.array([0.04, 0.72, 0.2, 0.04]))


def synthetic_day(day_of_year: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """(baseline, observations) for one climate day of a mid-latitude continental city."""
    season = math.sin(2 * math.pi * (day_of_year - 105) / 365)
    mean = 55.0 + 22.0 * season
    amplitude = 9.0 + 3.0 * season
    phase = 2 * math.pi * (np.arange(MINUTES_PER_DAY) - 930) / MINUTES_PER_DAY
    shape = np.cos(phase) + 0.25 * np.cos(2 * phase)  # warm afternoon, long cool night
    shape = (shape - shape.min()) / (shape.max() - shape.min()) * 2 - 1
    baseline = mean + amplitude * shape
    params = synthetic_params()
    rho, sigma = params.per_step(MINUTES_PER_DAY)
    resid = np.empty(MINUTES_PER_DAY)
    resid[0] = rng.normal(0.0, 1.5)
    shocks = rng.standard_normal(MINUTES_PER_DAY)
    # The truth evolves with the long-lead parameters (no forecast is fresher than the day).
    r, s = rho[-1], sigma[-1]
    for minute in range(1, MINUTES_PER_DAY):
        resid[minute] = r * resid[minute - 1] + s * shocks[minute]
    obs = np.round(baseline + resid + rng.normal(0.0, 0.1, MINUTES_PER_DAY), 1)
    return baseline, obs


def synthetic_ladder(baseline: FloatArray) -> list[Bracket]:
    """Six brackets around the expected high: two tails and four two-degree middles."""
    c = round(float(baseline.max()))
    return [
        Bracket(StrikeType.LESS, None, Decimal(c - 4)),
        *(
            Bracket(StrikeType.BETWEEN, Decimal(lo), Decimal(lo + 1))
            for lo in range(c - 4, c + 4, 2)
        ),
        Bracket(StrikeType.GREATER, Decimal(c + 3), None),
    ]


def _deviation_units(fast: FloatArray, naive: FloatArray, paths: int) -> FloatArray:
    """|Δp| in units of one N-path estimate's standard error, sqrt(p(1−p)/N)."""
    mean = (fast + naive) / 2
    se = np.sqrt(np.maximum(mean * (1 - mean), 1e-12) / paths)
    units: FloatArray = np.where(mean > 0, np.abs(fast - naive) / se, 0.0)
    return units


def run_mc_benchmark(
    *,
    days: int = 365,
    paths: int = 4000,
    seed: int = 0,
    naive_sample: int = 48,
    console: Console | None = None,
) -> dict[str, Any]:
    """Time the fast engine on every timestamp of ``days`` days and the naive loop on a sample.

    Inputs are generated before the clock starts, and the engine is compiled on a throw-away
    day first, so the year figure is the engine's own steady-state speed.
    """
    root = np.random.default_rng(seed)
    data_rng, fast_rng, naive_rng, sample_rng = root.spawn(4)
    params, measurement = synthetic_params(), synthetic_measurement()
    inputs = [synthetic_day(d, data_rng) for d in range(days)]
    ladders = [synthetic_ladder(baseline) for baseline, _ in inputs]
    n_sample = min(naive_sample, days * MINUTES_PER_DAY)
    picks = sample_rng.choice(days * MINUTES_PER_DAY, size=n_sample, replace=False)
    sample: dict[int, list[int]] = {}
    for flat in sorted(int(p) for p in picks):
        sample.setdefault(flat // MINUTES_PER_DAY, []).append(flat % MINUTES_PER_DAY)

    started = time.perf_counter()
    baseline0, obs0 = inputs[0]
    mc.run_day(baseline0, obs0, params, measurement, ladders[0], paths=paths, rng=root, times=[0])
    compile_s = time.perf_counter() - started

    fast_rows: dict[tuple[int, int], tuple[FloatArray, float, float]] = {}
    day_seconds: list[float] = []
    with _progress(console) as progress:
        task = progress.add_task("fast engine, city-year", total=days)
        started = time.perf_counter()
        for d, ((baseline, obs), ladder) in enumerate(zip(inputs, ladders, strict=True)):
            t0 = time.perf_counter()
            result = mc.run_day(
                baseline, obs, params, measurement, ladder, paths=paths, rng=fast_rng
            )
            day_seconds.append(time.perf_counter() - t0)
            for minute in sample.get(d, []):
                fast_rows[(d, minute)] = (
                    result.p_bracket[minute],
                    float(result.hazard_5m[minute]),
                    float(result.hazard_60m[minute]),
                )
            progress.advance(task)
        fast_s = time.perf_counter() - started

        task = progress.add_task("naive loop, sampled timestamps", total=n_sample)
        naive_s = 0.0
        units: list[float] = []
        hazard_units: list[float] = []
        for d, minutes in sample.items():
            baseline, obs = inputs[d]
            for minute in minutes:
                t0 = time.perf_counter()
                naive = mc.run_day_naive(
                    baseline,
                    obs,
                    params,
                    measurement,
                    ladders[d],
                    paths=paths,
                    rng=naive_rng,
                    times=[minute],
                )
                naive_s += time.perf_counter() - t0
                p_fast, h5, h60 = fast_rows[(d, minute)]
                units.extend(_deviation_units(p_fast, naive.p_bracket[0], paths).tolist())
                hazard_units.extend(
                    _deviation_units(
                        np.array([h5, h60]),
                        np.array([naive.hazard_5m[0], naive.hazard_60m[0]]),
                        paths,
                    ).tolist()
                )
                progress.advance(task)

    timestamps = days * MINUTES_PER_DAY
    naive_per_ts = naive_s / max(n_sample, 1)
    # Both projected to a full year, so that a shortened run still reads against the targets.
    naive_year = naive_per_ts * 365 * MINUTES_PER_DAY
    year_s = fast_s * (365 / days)
    units_arr = np.asarray(units)
    return {
        "benchmark": "mc",
        "days": days,
        "paths": paths,
        "timestamps": timestamps,
        "numba": mc.uses_numba(),
        "compile_s": round(compile_s, 2),
        "fast_s": round(fast_s, 2),
        "fast_year_s": round(year_s, 2),
        "fast_day_median_s": round(statistics.median(day_seconds), 4),
        "fast_us_per_timestamp": round(fast_s / timestamps * 1e6, 2),
        "naive_sample": n_sample,
        "naive_s_per_timestamp": round(naive_per_ts, 4),
        "naive_year_projected_s": round(naive_year, 1),
        "speedup": round(naive_year / year_s, 1) if year_s > 0 else None,
        "max_dev_mc_units": round(float(units_arr.max()), 2) if units else None,
        "mean_dev_mc_units": round(float(units_arr.mean()), 3) if units else None,
        "max_hazard_dev_mc_units": round(max(hazard_units), 2) if hazard_units else None,
        "target_year_s": TARGET_YEAR_S,
        "target_speedup": TARGET_SPEEDUP,
        "meets_targets": bool(year_s <= TARGET_YEAR_S and naive_year / year_s >= TARGET_SPEEDUP),
    }


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
        transient=False,
    )
