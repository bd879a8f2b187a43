"""Weather backfill (IEM observations, CLI reports) from the replay server into PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from pydantic import SecretStr

from kwx.ingest.backfill import backfill_cli, backfill_iem, backfill_nws, backfill_vc
from kwx.registry import default_registry
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import RetryPolicy
from kwx.sources.iem import IemClient
from kwx.sources.nws import NwsClient
from kwx.sources.ratelimit import TokenBucket
from kwx.sources.visualcrossing import VisualCrossingClient
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CHICAGO = default_registry().by_key("chicago")
DAY = dt.date(2026, 7, 8)  # the climate day of the real CLIMDW final in the shared data
NOW = dt.datetime(2026, 7, 20, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[WeatherReplayServer]:
    with WeatherReplayServer() as srv:
        # Climate day 2026-07-08 in Chicago runs 06:00Z → 06:00Z (CST all year).
        srv.add_metar(
            "MDW",
            dt.datetime(2026, 7, 8, 5, 53, tzinfo=UTC),
            "KMDW 080553Z 20005KT 10SM CLR 24/18 A2990 RMK AO2 T02440178",
        )
        srv.add_metar(
            "MDW",
            dt.datetime(2026, 7, 8, 20, 53, tzinfo=UTC),
            "KMDW 082053Z 21010KT 10SM FEW050 31/19 A2985 RMK AO2 T03110189 10317 20244",
        )
        srv.add_metar(
            "MDW",
            dt.datetime(2026, 7, 9, 5, 53, tzinfo=UTC),
            "KMDW 090553Z 19006KT 10SM CLR 25/19 A2988 RMK AO2 T02500194",
        )
        srv.add_asos1min(
            "MDW", dt.datetime(2026, 7, 8, 20, 0, tzinfo=UTC), {"tmpf": 88.0, "dwpf": 66.0}
        )
        yield srv


@pytest.fixture
def iem(server: WeatherReplayServer) -> Iterator[IemClient]:
    with IemClient(
        server.url, retry=RetryPolicy(base_delay_s=0.001), bucket=TokenBucket(1000, 1000)
    ) as client:
        yield client


def test_iem_day_lands_in_wx_obs_and_is_not_fetched_twice(
    conn: Conn, iem: IemClient, server: WeatherReplayServer
) -> None:
    outcomes = backfill_iem(conn, iem, CHICAGO, [DAY], now=NOW)
    assert [(o.status, o.rows) for o in outcomes] == [("done", 3)]
    rows = conn.execute(
        "SELECT source, ts, temp_f, temp_c, max_temp_6h_f FROM wx.obs ORDER BY source, ts"
    ).fetchall()
    # Only the METARs inside the climate day: 05:53Z belongs to 07-07, 05:53Z on 07-09 to 07-08.
    assert [(r[0], r[1]) for r in rows] == [
        ("asos1min", dt.datetime(2026, 7, 8, 20, 0, tzinfo=UTC)),
        ("metar", dt.datetime(2026, 7, 8, 20, 53, tzinfo=UTC)),
        ("metar", dt.datetime(2026, 7, 9, 5, 53, tzinfo=UTC)),
    ]
    metar = rows[1]
    assert metar[3] == pytest.approx(31.1)  # the T group's tenths, not the body's 31
    assert metar[2] == pytest.approx(31.1 * 9 / 5 + 32)
    assert metar[4] == pytest.approx(31.7 * 9 / 5 + 32, abs=0.5)
    requests = len(server.requests)
    again = backfill_iem(conn, iem, CHICAGO, [DAY], now=NOW)
    assert [o.status for o in again] == ["skipped"]
    assert len(server.requests) == requests  # resumable: nothing fetched again


def test_a_day_not_over_is_partial_and_refetched(conn: Conn, iem: IemClient) -> None:
    during = dt.datetime(2026, 7, 8, 21, 0, tzinfo=UTC)
    assert [o.status for o in backfill_iem(conn, iem, CHICAGO, [DAY], now=during)] == ["partial"]
    assert [o.status for o in backfill_iem(conn, iem, CHICAGO, [DAY], now=NOW)] == ["done"]


def test_source_failure_is_kept_and_the_unit_retried(
    conn: Conn, iem: IemClient, server: WeatherReplayServer
) -> None:
    server.fail_next(RetryPolicy().max_attempts, status=503)  # one request exhausts its retries
    outcomes = backfill_iem(conn, iem, CHICAGO, [DAY], now=NOW)
    assert [o.status for o in outcomes] == ["failed"]
    assert conn.execute("SELECT count(*) FROM wx.obs").fetchone() == (0,)
    kept = conn.execute("SELECT location FROM meta.bad_input").fetchall()
    assert kept == [("iem:chicago/2026-07-08",)]
    assert [o.status for o in backfill_iem(conn, iem, CHICAGO, [DAY], now=NOW)] == ["done"]


@needs_data()
def test_cli_reports_settle_with_first_published_value(
    conn: Conn, iem: IemClient, server: WeatherReplayServer
) -> None:
    products = DATA / "weather" / "products"
    final = (products / "cli_chi_final.txt").read_text()
    server.add_product(
        "202607090634-KLOT-CDUS43-CLIMDW",
        pil="CLIMDW",
        issued_at=dt.datetime(2026, 7, 9, 6, 34, tzinfo=UTC),
        text=final,
    )
    server.add_product(
        "202607092134-KLOT-CDUS43-CLIMDW",
        pil="CLIMDW",
        issued_at=dt.datetime(2026, 7, 9, 21, 34, tzinfo=UTC),
        text=(products / "cli_chi_intermediate.txt").read_text(),
    )
    # A later correction of the final (same day, one degree higher).
    corrected = final.replace("MAXIMUM         89", "MAXIMUM         90")
    assert corrected != final
    server.add_product(
        "202607111200-KLOT-CDUS43-CLIMDW-CCA",
        pil="CLIMDW",
        issued_at=dt.datetime(2026, 7, 11, 12, 0, tzinfo=UTC),
        text=corrected,
    )
    outcomes = backfill_cli(conn, iem, CHICAGO, [DAY, DAY + dt.timedelta(days=1)], now=NOW)
    assert [(o.unit, o.status) for o in outcomes] == [
        ("2026-07-08", "done"),
        ("2026-07-09", "partial"),
    ]
    settlement = conn.execute(
        "SELECT climate_date, source, tmax_first, tmax_final, first_published_at FROM wx.settlement"
    ).fetchall()
    assert settlement == [(DAY, "cli", 89, 90, dt.datetime(2026, 7, 9, 6, 34, tzinfo=UTC))]
    kinds = conn.execute("SELECT kind, count(*) FROM wx.product GROUP BY 1 ORDER BY 1").fetchall()
    assert kinds == [("final", 2), ("intermediate", 1)]


def test_nws_observations_of_the_last_week_only(conn: Conn) -> None:
    with WeatherReplayServer() as srv:
        srv.add_observation(
            "KMDW",
            dt.datetime(2026, 7, 8, 20, 53, tzinfo=UTC),
            raw_message="KMDW 082053Z 21010KT 10SM FEW050 31/19 A2985 RMK AO2 T03110189",
            temp_c=31.0,
            dewpoint_c=19.0,
        )
        with NwsClient(
            srv.url, "kwx-tests (ops@example.com)", retry=RetryPolicy(base_delay_s=0.001)
        ) as nws:
            now = dt.datetime(2026, 7, 10, tzinfo=UTC)
            old = dt.date(2026, 6, 1)
            outcomes = backfill_nws(conn, nws, CHICAGO, [old, DAY], now=now)
    assert [(o.unit, o.status) for o in outcomes] == [
        ("2026-06-01", "skipped"),
        ("2026-07-08", "done"),
    ]
    row = conn.execute("SELECT source, temp_c FROM wx.obs").fetchone()
    assert row == ("nws", pytest.approx(31.1))  # the raw message's T group, not the 31.0


def test_visual_crossing_pinned_obs_and_basis_date_forecast(conn: Conn) -> None:
    key = "vc-test-key-0123"
    issued = dt.datetime(2026, 7, 8, 0, tzinfo=UTC)
    with WeatherReplayServer(vc_api_key=key) as srv:
        srv.add_vc_obs(
            "stn:KMDW",
            dt.datetime(2026, 7, 8, 20, 0, tzinfo=UTC),
            stations=["KMDW"],
            temp=88.0,
            dew=66.0,
        )
        point = f"{CHICAGO.lat},{CHICAGO.lon}"
        for h in (18, 19):
            srv.add_vc_forecast(
                point,
                dt.datetime(2026, 7, 8, h, tzinfo=UTC),
                issued_at=issued,
                basis_date=DAY,
                temp=85.0 + h - 18,
            )
        with VisualCrossingClient(
            srv.vc_url, SecretStr(key), retry=RetryPolicy(base_delay_s=0.001)
        ) as vc:
            outcomes = backfill_vc(conn, vc, CHICAGO, [DAY], now=NOW)
    assert [o.status for o in outcomes] == ["done"]
    assert conn.execute("SELECT source, temp_f FROM wx.obs").fetchall() == [("vc", 88.0)]
    forecast = conn.execute(
        "SELECT issued_at, valid_at, temp_f FROM wx.forecast ORDER BY 2"
    ).fetchall()
    noon = dt.datetime(2026, 7, 8, 12, tzinfo=UTC)  # basis date 12:00 UTC: never early
    assert forecast == [
        (noon, dt.datetime(2026, 7, 8, 18, tzinfo=UTC), 85.0),
        (noon, dt.datetime(2026, 7, 8, 19, tzinfo=UTC), 86.0),
    ]
