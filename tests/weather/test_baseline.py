"""Baselines: hand-computed values and the no-look-ahead rule for forecasts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
import pytest

from kwx.weather.baseline import (
    baseline_at,
    forecast_baseline,
    latest_forecast_before,
    minute_grid,
    template_baseline,
    to_grid,
)

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
START = dt.datetime(2024, 7, 1, 6, tzinfo=UTC)


def test_template_holds_the_last_observation() -> None:
    obs = np.full(1440, np.nan)
    obs[10], obs[20] = 70.0, 72.0
    assert np.all(template_baseline(obs, 15) == 70.0)
    assert np.all(template_baseline(obs, 25) == 72.0)
    assert np.isnan(template_baseline(obs, 5)).all()


def test_forecast_bias_uses_only_minutes_seen() -> None:
    forecast = np.full(1440, 80.0)
    obs = np.full(1440, np.nan)
    obs[:100] = 83.0  # running 3 °F warm all morning
    obs[100:] = 0.0  # the future, which must not matter at t = 99
    out = forecast_baseline(forecast, obs, 99)
    assert out == pytest.approx(np.full(1440, 83.0))
    assert np.array_equal(baseline_at(forecast, obs, 99), out)
    assert np.array_equal(baseline_at(None, obs, 99), template_baseline(obs, 99))


def test_recent_errors_weigh_more() -> None:
    forecast = np.zeros(1440)
    obs = np.full(1440, np.nan)
    obs[0], obs[180] = 0.0, 2.0  # one half-life apart: weights 0.5 and 1
    assert forecast_baseline(forecast, obs, 180)[0] == pytest.approx(2.0 / 1.5)


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
