"""Baselines: hand-computed values and the no-look-ahead rule for forecasts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import psycopg
import pytest

from kwx.domain.brackets import Bracket, StrikeType
from kwx.registry import default_registry
from kwx.weather.baseline import (
    baseline_at,
    latest_forecast_before,
    minute_grid,
    template_baseline,
    to_grid,
)
from kwx.weather.mc import McParams, MeasurementModel, run_day
from kwx.weather.run_day import load_baselines

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
START = dt.datetime(2024, 7, 1, 6, tzinfo=UTC)


def test_template_holds_the_last_observation() -> None:
    obs = np.full(1440, np.nan)
    obs[10], obs[20] = 70.0, 72.0
    assert np.all(template_baseline(obs, 15) == 70.0)
    assert np.all(template_baseline(obs, 25) == 72.0)
    assert np.isnan(template_baseline(obs, 5)).all()


def test_forecast_baseline_is_the_forecast_unshifted() -> None:
    forecast = np.full(1440, 80.0)
    obs = np.full(1440, np.nan)
    obs[:100] = 83.0  # running 3 °F warm all morning: the residual's job, not the baseline's
    out = baseline_at(forecast, obs, 99)
    assert np.array_equal(out, forecast)
    assert out is not forecast  # a copy: masking it to a cadence must not touch the forecast
    assert np.array_equal(baseline_at(None, obs, 99), template_baseline(obs, 99))


def test_a_warm_night_decays_as_fitted_instead_of_warming_the_afternoon(conn: Conn) -> None:
    """Regression: the baseline used to be shifted by today's error so far *and* the AR(1)
    residual started from it, so a 5 °F warm midnight carried undecayed to the afternoon
    maximum. With ρ^720 = 0.1 only half a degree of it may be left at the peak."""
    day_start = START  # Chicago 2024-07-01 00:00 LST
    issued = day_start - dt.timedelta(hours=18)
    for hour in range(-3, 28):
        valid = day_start + dt.timedelta(hours=hour)
        temp = 70.0 + 10.0 * max(0.0, 1.0 - abs(hour - 12) / 6.0)  # 80 °F peak at 12:00
        conn.execute(
            "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
            "VALUES ('chicago', 'vc', %s, %s, %s)",
            (issued, valid, temp),
        )
    conn.commit()
    obs = np.full(1440, np.nan)
    obs[0] = 75.0  # 5 °F above the forecast's 70 at midnight
    city = default_registry().by_key("chicago")
    baseline = load_baselines(conn, city, day_start, obs, "vc")
    assert baseline[0].max() == pytest.approx(80.0)
    rho = 0.1 ** (1.0 / 720.0)
    result = run_day(
        baseline[[0]],
        obs,
        McParams.constant(rho, 1e-6),
        MeasurementModel.exact(),
        [
            Bracket(StrikeType.LESS, None, Decimal(80)),
            Bracket(StrikeType.GREATER, Decimal(79), None),
        ],
        paths=200,
        rng=np.random.default_rng(0),
        times=[0],
    )
    # 80 + 5·ρ^L at the peak (L = 720) is 80.5, which rounds to 80 or 81; the old shift gave 85.
    assert set(result.quantiles[0].tolist()) <= {80.0, 81.0}


def test_grid_interpolates_hourly_forecasts() -> None:
    grid = minute_grid(START, 121)
    import pandas as pd

    series = pd.Series([70.0, 76.0], index=pd.DatetimeIndex([START, START + dt.timedelta(hours=2)]))
    values = to_grid(series, grid)
    assert values[0] == 70.0 and values[60] == pytest.approx(73.0) and values[120] == 76.0
    assert np.isnan(to_grid(pd.Series(dtype=float), grid)).all()


def test_latest_forecast_issued_before_t_only(conn: Conn) -> None:
    valid = START + dt.timedelta(hours=10)
    for issued, temp in (
        (START - dt.timedelta(hours=6), 80.0),
        (START + dt.timedelta(hours=2), 84.0),
        (START + dt.timedelta(hours=5), 90.0),
    ):
        conn.execute(
            "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
            "VALUES ('chicago', 'nws', %s, %s, %s)",
            (issued, valid, temp),
        )
    conn.commit()
    end = START + dt.timedelta(days=1)

    def at(t: dt.datetime) -> list[float]:
        return latest_forecast_before(conn, "chicago", "nws", t, START, end).tolist()

    assert at(START) == [80.0]
    assert at(START + dt.timedelta(hours=2)) == [80.0]  # issued exactly at t: not yet usable
    assert at(START + dt.timedelta(hours=3)) == [84.0]
    assert at(START + dt.timedelta(hours=6)) == [90.0]
