"""IEM MOS archive and text bulletins against loopback servers, in IEM's real wire shapes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from kwx.registry import default_registry
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import PayloadError, RetryPolicy
from kwx.sources.iem import IemClient
from kwx.sources.mos import bulletin_daily_max, mos_daily_max, parse_mos_csv
from kwx.sources.nbm_text import BulletinError, DailyMax
from kwx.sources.ratelimit import TokenBucket
from tests.conftest import DATA, needs_data

UTC = dt.UTC
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.0)
NBS_CSV = DATA / "api-shapes" / "eucalyptus5_nbs_knyc_20250128_01z.csv"
REGISTRY = default_registry()
NEW_YORK = REGISTRY.by_key("new_york")
CHICAGO = REGISTRY.by_key("chicago")

# GFS MOS for Midway in the same CSV shape (IEM names the MAV X/N row `n_x`), values of a
# real MAV block (MAVWC0.txt, KEED 1/01/2014 00Z: X/N 68 48 68 42 67).
GFS_CSV = "runtime,ftime,model,tmp,dpt,station,n_x\n" + "".join(
    f"2014-01-01 00:00:00,{ftime},GFS,50,20,KMDW,{nx}\n"
    for ftime, nx in (
        ("2014-01-01 18:00:00", ""),
        ("2014-01-02 00:00:00", "68"),
        ("2014-01-02 06:00:00", ""),
        ("2014-01-02 12:00:00", "48"),
        ("2014-01-03 00:00:00", "68"),
        ("2014-01-03 12:00:00", "42"),
        ("2014-01-04 00:00:00", "67"),
    )
)


def _client(url: str) -> IemClient:
    return IemClient(
        url, retry=FAST, bucket=TokenBucket(rate=1e6, capacity=1e6), sleep=lambda _: None
    )


@pytest.fixture
def server() -> Iterator[WeatherReplayServer]:
    with WeatherReplayServer() as srv:
        yield srv


@needs_data()
def test_real_nbs_csv_sample() -> None:
    got = parse_mos_csv(NBS_CSV.read_text(), model="nbs", timezone=NEW_YORK.timezone)
    assert got == [
        DailyMax(
            station="KNYC",
            model="nbs",
            runtime=dt.datetime(2025, 1, 28, 1, tzinfo=UTC),
            valid_at=dt.datetime(2025, 1, 29, 0, tzinfo=UTC),
            target_date=dt.date(2025, 1, 28),
            tmax_f=38.0,
            spread_f=2.0,
        )
    ]


@needs_data()
def test_archive_client_against_the_replay_server(server: WeatherReplayServer) -> None:
    server.add_mos_csv(NBS_CSV.read_text())
    server.add_mos_csv(GFS_CSV)
    with _client(server.url) as iem:
        nbs = mos_daily_max(
            iem,
            NEW_YORK,
            "nbs",
            dt.datetime(2025, 1, 28, 0, tzinfo=UTC),
            dt.datetime(2025, 1, 28, 2, tzinfo=UTC),
        )
        assert [(m.target_date, m.tmax_f, m.spread_f) for m in nbs] == [
            (dt.date(2025, 1, 28), 38.0, 2.0)
        ]
        request = server.requests[-1]
        assert request.path == "/cgi-bin/request/mos.py"
        assert {k: v[0] for k, v in request.query.items()} == {
            "station": "KNYC",
            "model": "NBS",
            "sts": "2025-01-28T00:00Z",
            "ets": "2025-01-28T02:00Z",
            "format": "csv",
        }
        gfs = mos_daily_max(
            iem,
            CHICAGO,
            "gfs_mos",
            dt.datetime(2014, 1, 1, tzinfo=UTC),
            dt.datetime(2014, 1, 1, 6, tzinfo=UTC),
        )
        assert [(m.target_date.isoformat(), m.tmax_f) for m in gfs] == [
            ("2014-01-01", 68.0),
            ("2014-01-02", 68.0),
            ("2014-01-03", 67.0),
        ]
        # A run outside the window, or one the server's clock has not reached, is not served.
        late = dt.datetime(2025, 1, 28, 2, tzinfo=UTC)
        assert mos_daily_max(iem, NEW_YORK, "nbs", late, late + dt.timedelta(hours=5)) == []
        server.set_clock(dt.datetime(2025, 1, 28, 0, 59, tzinfo=UTC))
        early = dt.datetime(2025, 1, 28, 0, tzinfo=UTC)
        assert mos_daily_max(iem, NEW_YORK, "nbs", early, early + dt.timedelta(hours=5)) == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("runtime,ftime,model,station\n", "column 'txn' is missing"),
        (
            "runtime,ftime,model,station,txn\n2025-01-28 01:00:00,tomorrow,NBS,KNYC,38\n",
            "data row 1, column 'ftime'",
        ),
        (
            "runtime,ftime,model,station,txn\n2025-01-28 01:00:00,2025-01-29 00:00:00,NBS,KNYC,"
            "warm\n",
            "data row 1: not a number",
        ),
    ],
)
def test_bad_archive_answers_name_row_and_column(
    httpserver: HTTPServer, body: str, words: str
) -> None:
    httpserver.expect_request("/cgi-bin/request/mos.py").respond_with_data(
        body, content_type="text/csv"
    )
    with _client(httpserver.url_for("/").rstrip("/")) as iem, pytest.raises(PayloadError) as err:
        start = dt.datetime(2025, 1, 28, tzinfo=UTC)
        mos_daily_max(iem, NEW_YORK, "nbs", start, start + dt.timedelta(hours=2))
    assert words in str(err.value)
    assert err.value.body == body


def test_missing_code_and_blanks_are_absent_forecasts() -> None:
    body = (
        "runtime,ftime,model,station,n_x\n"
        "2014-01-01 00:00:00,2014-01-02 00:00:00,GFS,KMDW,999\n"
        "2014-01-01 00:00:00,2014-01-03 00:00:00,GFS,KMDW,\n"
        "2014-01-01 00:00:00,2014-01-04 00:00:00,GFS,KMDW,-5\n"
    )
    got = parse_mos_csv(body, model="gfs_mos", timezone="America/Chicago")
    assert [(m.target_date.isoformat(), m.tmax_f) for m in got] == [("2014-01-03", -5.0)]


@needs_data()
def test_text_bulletins_through_the_afos_store(server: WeatherReplayServer) -> None:
    text = (DATA / "weather" / "products" / "MOS__NBS_12Z.txt").read_bytes().decode("latin-1")
    entered = dt.datetime(2021, 4, 7, 13, 7, tzinfo=UTC)
    server.add_product(
        "202104071200-KWNO-FOUS16-NBSUSA", pil="NBSUSA", issued_at=entered, text=text
    )
    bad = (DATA / "weather" / "products" / "MOS__NBS_badtime.txt").read_bytes().decode("latin-1")
    server.add_product(
        "202104071500-KWNO-FOUS16-NBSUSA",
        pil="NBSUSA",
        issued_at=entered + dt.timedelta(hours=3),
        text=bad,
    )
    # Des Moines is not a Kalshi city: a registry entry pointed at KDSM stands in for one.
    des_moines = dataclasses.replace(CHICAGO, station_icao="KDSM")
    errors: list[BulletinError] = []
    with _client(server.url) as iem:
        got = bulletin_daily_max(
            iem,
            "nbs",
            [des_moines, NEW_YORK],
            dt.date(2021, 4, 7),
            dt.date(2021, 4, 7),
            errors=errors,
        )
    assert [(m.station, m.target_date.isoformat(), m.tmax_f, m.spread_f) for m in got] == [
        ("KDSM", "2021-04-07", 72.0, 2.0),
        ("KDSM", "2021-04-08", 59.0, 4.0),
        ("KDSM", "2021-04-09", 61.0, 3.0),
    ]
    assert {m.received_at for m in got} == {entered}
    assert [(e.source, e.line, e.field) for e in errors] == [
        ("202104071500-KWNO-FOUS16-NBSUSA", 7, "FHR")
    ]
