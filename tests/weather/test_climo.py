"""The climatological forecast: the station's recent hours, issued the day before."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from kwx.registry import default_registry
from kwx.weather.climo import climo_forecast_frame

CHICAGO = default_registry().by_key("chicago")


def _obs(days: int, end: dt.datetime) -> pd.DataFrame:
    ts = pd.date_range(end - dt.timedelta(days=days), end, freq="1h", inclusive="left")
    local_hour = ts.tz_convert("America/Chicago").hour
    return pd.DataFrame({"ts": ts, "temp_f": 50.0 + local_hour})


def test_each_hour_is_the_mean_of_that_local_hour() -> None:
    day = dt.date(2024, 10, 10)
    frame = climo_forecast_frame(_obs(30, dt.datetime(2024, 10, 12, tzinfo=dt.UTC)), CHICAGO, day)
    assert set(frame["issued_at"]) == {dt.datetime(2024, 10, 9, 12, tzinfo=dt.UTC)}
    local = pd.DatetimeIndex(frame["valid_at"]).tz_convert("America/Chicago").hour
    assert frame["temp_f"].tolist() == pytest.approx((50.0 + local).tolist())
    # The climate day (midnight to midnight CST) plus three hours either side.
    assert len(frame) == 24 + 7


def test_only_observations_before_the_issue_are_used() -> None:
    day = dt.date(2024, 10, 10)
    obs = _obs(30, dt.datetime(2024, 10, 12, tzinfo=dt.UTC))
    before = climo_forecast_frame(obs, CHICAGO, day)
    changed = obs.copy()
    later = changed["ts"] >= dt.datetime(2024, 10, 9, 12, tzinfo=dt.UTC)
    changed.loc[later, "temp_f"] += 30
    assert climo_forecast_frame(changed, CHICAGO, day).equals(before)
    # ... and the window does move it when the past changes (the test can fail).
    changed.loc[~later, "temp_f"] += 5
    assert not climo_forecast_frame(changed, CHICAGO, day).equals(before)


def test_too_little_history_gives_no_forecast() -> None:
    obs = _obs(2, dt.datetime(2024, 10, 9, tzinfo=dt.UTC))
    assert climo_forecast_frame(obs, CHICAGO, dt.date(2024, 10, 10)).empty
