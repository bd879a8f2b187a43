"""Stored station guidance served back by the weather replay server as of its clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import psycopg

from kwx.ingest.file_import import import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sim.weather_replay import load_weather
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import RetryPolicy
from kwx.sources.iem import IemClient
from kwx.sources.mos import mos_daily_max
from kwx.sources.ratelimit import TokenBucket

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CHICAGO = default_registry().by_key("chicago")


def test_imported_mos_round_trips_through_the_replay_server(conn: Conn, tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "station_id": ["KMDW", "KMDW"],
            "target_date_local": ["2024-07-04", "2024-07-05"],
            "asof_utc": ["2024-07-03T12:00:00Z", "2024-07-04T12:00:00Z"],
            "gfs_n_x_max": [89.0, 91.0],
            "actual_tmax_f": [90.0, 92.0],
        }
    ).to_csv(tmp_path / "mos_kmdw.csv", index=False)
    assert not import_directory(
        conn, tmp_path, ImportContext(default_registry()), derive=False
    ).failed
    start = dt.datetime(2024, 7, 4, 6, tzinfo=UTC)
    with WeatherReplayServer(clock=dt.datetime(2024, 7, 4, 15, 59, tzinfo=UTC)) as server:
        summary = load_weather(conn, server, CHICAGO, start, start + dt.timedelta(days=1))
        assert summary.guidance == 2
        with IemClient(
            server.url, retry=RetryPolicy(base_delay_s=0.0), bucket=TokenBucket(1e6, 1e6)
        ) as iem:
            runs = (dt.datetime(2024, 7, 3, tzinfo=UTC), dt.datetime(2024, 7, 5, tzinfo=UTC))
            got = mos_daily_max(iem, CHICAGO, "gfs_mos", *runs)
            # At 15:59Z on Jul 4 the 12Z run of Jul 4 (out at 16Z) is not served yet.
            assert [(m.runtime, m.target_date, m.tmax_f) for m in got] == [
                (dt.datetime(2024, 7, 3, 12, tzinfo=UTC), dt.date(2024, 7, 4), 89.0)
            ]
            server.set_clock(dt.datetime(2024, 7, 4, 16, tzinfo=UTC))
            got = mos_daily_max(iem, CHICAGO, "gfs_mos", *runs)
            assert [(m.target_date, m.tmax_f) for m in got] == [
                (dt.date(2024, 7, 4), 89.0),
                (dt.date(2024, 7, 5), 91.0),
            ]
