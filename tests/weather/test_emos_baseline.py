"""The EMOS baseline: the shift, the offset's past-only window, issue times, and New York end to
end on the real shared data (guidance at KNYC, ACIS settlements, ERA5, KXHIGHNY markets)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.registry import default_registry
from kwx.store.engine import _embedded_server_url
from kwx.weather.emos_baseline import shifted_path, trailing_offset
from kwx.weather.emos_data import load_guidance_frame
from kwx.weather.measurement import daily_pairs
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
runner = CliRunner()
WIDE = {"COLUMNS": "250"}
NY_FILES = (
    "weather/guidance/gribstream_knyc.csv",
    "weather/settlements_acis/KXHIGHNY.csv",
    "weather/era5_hourly/KXHIGHNY.csv",
    "kalshi/markets/KXHIGHNY.csv",
)


def test_shifted_path_puts_the_day_s_maximum_at_the_peak() -> None:
    start = dt.datetime(2024, 7, 1, 5, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    index = pd.date_range(start - dt.timedelta(hours=3), end + dt.timedelta(hours=3), freq="1h")
    hours = np.arange(len(index))
    shape = pd.Series(70 + 10 * np.sin((hours - 9) / 24 * 2 * np.pi), index=index)
    shape.iloc[-1] = 99.0  # outside the climate day: must not set the maximum
    path = shifted_path(shape, start, end, 88.0)
    inside = path[(path.index >= start) & (path.index < end)]
    assert inside.max() == pytest.approx(88.0)
    np.testing.assert_allclose(np.diff(path.to_numpy()), np.diff(shape.to_numpy()))


def test_trailing_offset_sees_only_days_settled_before() -> None:
    days = [dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(60)]
    pairs = pd.DataFrame({"date": days, "official": 80.0, "observed": 77.0})
    day = dt.date(2024, 6, 20)
    assert trailing_offset(pairs, day) == pytest.approx(3.0)
    later = pairs["date"] >= day - dt.timedelta(days=1)
    pairs.loc[later, "observed"] = 50.0
    assert trailing_offset(pairs, day) == pytest.approx(3.0)
    pairs.loc[pairs["date"] == day - dt.timedelta(days=2), "observed"] = 50.0
    assert trailing_offset(pairs, day) != pytest.approx(3.0)


def test_guidance_issued_after_the_day_starts_is_not_seen(conn: Conn) -> None:
    city = default_registry().resolve("new_york")
    day = dt.date(2024, 3, 5)
    rows = [
        ("nbm", dt.datetime(2024, 3, 4, 13, tzinfo=dt.UTC), 51.0),
        # 05:00 UTC = 00:00 EST: exactly at the start is allowed, one minute later is not.
        ("gfs", dt.datetime(2024, 3, 5, 5, tzinfo=dt.UTC), 52.0),
        ("nbm", dt.datetime(2024, 3, 5, 5, 1, tzinfo=dt.UTC), 70.0),
        ("hrrr", dt.datetime(2024, 3, 5, 12, tzinfo=dt.UTC), 71.0),
    ]
    with conn.transaction():
        for model, issued, value in rows:
            conn.execute(
                "INSERT INTO wx.guidance (city, station, model, issued_at, target_date, tmax_f, "
                "source) VALUES ('new_york', 'KNYC', %s, %s, %s, %s, 'test')",
                (model, issued, day, value),
            )
    frame = load_guidance_frame(conn, city, day, day)
    assert list(frame.index) == [day]
    assert frame["nbm"].iloc[0] == 51.0
    assert frame["gfs"].iloc[0] == 52.0
    assert "hrrr" not in frame.columns


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    yield settings
    get_settings.cache_clear()


def _run(args: list[str]) -> str:
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


@needs_data()
def test_new_york_runs_end_to_end(env: Settings, conn: Conn, tmp_path: Path) -> None:
    """No VC forecasts in New York: guidance + climatological shape → fit → a few days of p_wx."""
    for rel in NY_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(DATA / rel)
    _run(["import", "--from-files", str(tmp_path)])
    city = default_registry().resolve("new_york")
    out = _run(
        [
            "weather",
            "emos-baseline",
            "--city",
            "new_york",
            "--from",
            "2024-09-01",
            "--to",
            "2024-11-03",
        ]
    )
    assert "0 shaped by vc" in out
    _run(
        [
            "weather",
            "fit-params",
            "--city",
            "new_york",
            "--from",
            "2024-09-01",
            "--to",
            "2024-10-31",
            "--forecast-source",
            "emos",
            "--version",
            "t1",
            "--no-tmax-shift",
        ]
    )
    out = _run(
        [
            "weather",
            "backfill",
            "--city",
            "new_york",
            "--from",
            "2024-11-03",
            "--to",
            "2024-11-03",
            "--forecast-source",
            "emos",
            "--params-version",
            "t1",
            "--paths",
            "200",
            "--mc-version",
            "t1",
        ]
    )
    assert "1 day(s) written" in " ".join(out.split())
    sums = conn.execute(
        "SELECT ts, sum(p_wx) FROM pmf.minute WHERE city = 'new_york' AND mc_version = 't1' "
        "GROUP BY ts"
    ).fetchall()
    assert len(sums) == 1440
    assert all(abs(float(str(s)) - 1.0) < 1e-9 for _, s in sums)
    # The baseline's peak sits at the EMOS mean less the trailing official − ERA5 offset.
    peak = conn.execute(
        "SELECT f.issued_at, max(f.temp_f), d.tmax_f FROM wx.forecast f JOIN wx.forecast_daily d "
        "ON d.city = f.city AND d.source = f.source AND d.issued_at = f.issued_at "
        "WHERE f.city = 'new_york' AND f.source = 'emos' AND d.target_date = '2024-11-03' "
        "AND f.valid_at >= '2024-11-03 05:00+00' AND f.valid_at < '2024-11-04 05:00+00' "
        "GROUP BY 1, 3"
    ).fetchall()
    assert len(peak) == 1
    issued, top, mu = peak[0]
    assert issued == dt.datetime(2024, 11, 3, 4, 59, tzinfo=dt.UTC)
    pairs = pd.DataFrame(
        daily_pairs(conn, city, "era5", dt.date(2024, 1, 1), dt.date(2024, 11, 3)),
        columns=["date", "official", "observed"],
    )
    offset = trailing_offset(pairs, dt.date(2024, 11, 3))
    assert offset is not None
    assert float(str(mu)) - float(str(top)) == pytest.approx(offset, abs=0.02)
    result = json.loads(
        _run(
            [
                "weather",
                "emos-eval",
                "--city",
                "new_york",
                "--from",
                "2024-10-01",
                "--to",
                "2024-10-31",
                "--window",
                "seasonal",
                "--json",
            ]
        )
        .strip()
        .splitlines()[-1]
    )
    row = result["emos_eval"][0]["configs"][0]
    best_raw = min(m["crps"] for m in result["emos_eval"][0]["raw"])
    assert row["n"] == 31
    assert row["crps"] < best_raw
