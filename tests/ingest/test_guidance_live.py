"""Live station guidance (IEM MOS archive) from the replay server into wx.guidance."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from kwx.ingest.backfill import backfill_guidance
from kwx.ingest.continuous import ContinuousIngest
from kwx.ingest.guidance import maxima_frame
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import RetryPolicy
from kwx.sources.iem import IemClient
from kwx.sources.nbm_text import DailyMax
from kwx.sources.ratelimit import TokenBucket
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
NEW_YORK = default_registry().by_key("new_york")
NBS_CSV = DATA / "api-shapes" / "eucalyptus5_nbs_knyc_20250128_01z.csv"
# A GFS run the day before, in IEM's CSV shape: the max for Jan 28 (valid 00Z Jan 29).
GFS_CSV = (
    "runtime,ftime,model,station,n_x\n"
    "2025-01-27 12:00:00,2025-01-28 00:00:00,GFS,KNYC,36\n"
    "2025-01-27 12:00:00,2025-01-28 12:00:00,GFS,KNYC,22\n"
    "2025-01-27 12:00:00,2025-01-29 00:00:00,GFS,KNYC,39\n"
)


@pytest.fixture
def server() -> Iterator[WeatherReplayServer]:
    with WeatherReplayServer() as srv:
        srv.add_mos_csv(NBS_CSV.read_text())
        srv.add_mos_csv(GFS_CSV)
        yield srv


@pytest.fixture
def iem(server: WeatherReplayServer) -> Iterator[IemClient]:
    with IemClient(
        server.url, retry=RetryPolicy(base_delay_s=0.001), bucket=TokenBucket(1000, 1000)
    ) as client:
        yield client


def _rows(conn: Conn) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT model, issued_at, target_date, tmax_f, spread_f, source, station, "
        "extra->>'run_at' FROM wx.guidance ORDER BY model, issued_at"
    ).fetchall()


@needs_data()
def test_backfill_stores_each_run_by_issue_time_and_resumes(conn: Conn, iem: IemClient) -> None:
    day = dt.date(2025, 1, 28)
    now = dt.datetime(2025, 2, 5, tzinfo=UTC)
    outcomes = backfill_guidance(conn, iem, NEW_YORK, [day, dt.date(2025, 1, 29)], now=now)
    assert [(o.unit, o.status, o.rows) for o in outcomes] == [
        ("2025-01-28", "done", 2),
        ("2025-01-29", "done", 0),
    ]
    assert _rows(conn) == [
        # GFS MOS 12Z Jan 27, usable from 16Z (run + 4 h); the 00Z Jan 28 value is Jan 27's.
        (
            "gfs_mos",
            dt.datetime(2025, 1, 27, 16, tzinfo=UTC),
            day,
            39.0,
            None,
            "iem_mos",
            "KNYC",
            "2025-01-27T12:00:00Z",
        ),
        (
            "nbs",
            dt.datetime(2025, 1, 28, 2, tzinfo=UTC),
            day,
            38.0,
            2.0,
            "iem_mos",
            "KNYC",
            "2025-01-28T01:00:00Z",
        ),
    ]
    again = backfill_guidance(conn, iem, NEW_YORK, [day], now=now)
    assert [(o.status, o.message) for o in again] == [("skipped", "already done")]
    forced = backfill_guidance(conn, iem, NEW_YORK, [day], now=now, force=True)
    assert [(o.status, o.rows) for o in forced] == [("done", 0)]  # nothing changed


@needs_data()
def test_the_hourly_job_sees_only_runs_out_by_now(
    conn: Conn, iem: IemClient, server: WeatherReplayServer
) -> None:
    ingest = ContinuousIngest(conn, [NEW_YORK], ImportContext(default_registry()), iem=iem)
    now = dt.datetime(2025, 1, 28, 0, 30, tzinfo=UTC)
    server.set_clock(now)
    # The GFS 12Z run (maxima for Jan 27 and Jan 28); the NBS 01Z run is not out yet.
    assert ingest._job_guidance(NEW_YORK, now) == 2
    later = dt.datetime(2025, 1, 28, 3, tzinfo=UTC)
    server.set_clock(later)
    assert ingest._job_guidance(NEW_YORK, later) == 1
    assert [r[0] for r in _rows(conn)] == ["gfs_mos", "gfs_mos", "nbs"]
    runs = ingest.run_due(later + dt.timedelta(hours=1))
    assert [(r.job, r.rows, r.error) for r in runs if r.job == "guidance"] == [
        ("guidance", 0, None)
    ]


def test_maxima_frame_prefers_the_received_time() -> None:
    base = DailyMax(
        station="KNYC",
        model="nbs",
        runtime=dt.datetime(2025, 1, 28, 1, tzinfo=UTC),
        valid_at=dt.datetime(2025, 1, 29, 0, tzinfo=UTC),
        target_date=dt.date(2025, 1, 28),
        tmax_f=38.0,
        spread_f=None,
    )
    received = dt.datetime(2025, 1, 28, 1, 12, tzinfo=UTC)
    frame = maxima_frame([base, dataclasses.replace(base, received_at=received)], NEW_YORK, "t")
    assert frame["issued_at"].tolist() == [
        dt.datetime(2025, 1, 28, 2, tzinfo=UTC),
        received,
    ]
    with pytest.raises(ValueError, match="unknown guidance model"):
        maxima_frame([dataclasses.replace(base, model="ecmwf")], NEW_YORK, "t")
