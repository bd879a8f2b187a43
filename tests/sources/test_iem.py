"""IemClient against the loopback weather replay server, in IEM's real wire shapes."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import pytest

from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import PayloadError, RetryPolicy, SourceError
from kwx.sources.iem import (
    IemClient,
    asos1min_obs_frame,
    obs_frame,
    parse_afos_list,
    parse_asos1min_csv,
    parse_asos_csv,
)
from kwx.sources.metar_obs import MetarParseError
from kwx.sources.ratelimit import TokenBucket
from kwx.store import writers
from tests.conftest import DATA, needs_data

UTC = dt.UTC
T0 = dt.datetime(2026, 7, 9, 18, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.0)


def fast_bucket() -> TokenBucket:
    return TokenBucket(rate=1e6, capacity=1e6)


@pytest.fixture
def server() -> Iterator[WeatherReplayServer]:
    with WeatherReplayServer() as srv:
        for i in range(5):
            srv.add_asos1min(
                "MDW",
                T0 + dt.timedelta(minutes=i),
                {"tmpf": 88.0 + i if i != 2 else None, "dwpf": 65.0, "sknt": 10.0, "drct": 220.0},
                station_name="CHICAGO/MIDWAY",
            )
        srv.add_metar(
            "MDW",
            T0 - dt.timedelta(minutes=7),
            "KMDW 091753Z 22010KT 10SM FEW050 31/18 A2990 RMK AO2 SLP120 T03110183 10317 20244",
            tmpf=87.98,
        )
        srv.add_metar(
            "MDW",
            T0 + dt.timedelta(minutes=5),
            "KMDW 091805Z 22012KT 10SM FEW050 32/18 A2990 RMK AO2",
            tmpf=89.6,
            report_type=4,
        )
        srv.add_metar("MDW", T0 + dt.timedelta(minutes=9), "KMDW 09180", tmpf=None, report_type=4)
        yield srv


@pytest.fixture
def iem(server: WeatherReplayServer) -> Iterator[IemClient]:
    with IemClient(server.url, retry=FAST, bucket=fast_bucket(), sleep=lambda _: None) as client:
        yield client


def test_asos_1min_rows_and_request(iem: IemClient, server: WeatherReplayServer) -> None:
    frame = iem.asos_1min("KMDW", T0, T0 + dt.timedelta(hours=1))
    assert list(frame.columns) == ["station", "ts", "tmpf", "dwpf", "sknt", "drct", "raw"]
    assert frame["ts"].tolist() == [T0 + dt.timedelta(minutes=i) for i in range(5)]
    assert frame["tmpf"].isna().tolist() == [False, False, True, False, False]  # "M"
    assert frame["raw"].iloc[0] == "MDW,CHICAGO/MIDWAY,2026-07-09 18:00,88,65,10,220"
    sent = server.requests[-1]
    assert sent.path == "/cgi-bin/request/asos1min.py"
    assert sent.query["station"] == ["MDW"]  # the ICAO K is dropped
    assert sent.query["vars"] == ["tmpf", "dwpf", "sknt", "drct"]
    assert sent.query["sts"] == ["2026-07-09T18:00Z"] and sent.query["tz"] == ["UTC"]

    obs = obs_frame(frame, "chicago", "asos1min")
    assert tuple(obs.columns) == writers.OBS.column_names
    assert obs["temp_f"].iloc[0] == 88.0 and obs["temp_c"].isna().all()
    assert obs["wind_speed_mph"].iloc[0] == pytest.approx(11.51, abs=0.01)
    assert set(obs["source"]) == {"asos1min"}
    assert obs["raw"].iloc[1].startswith("MDW,CHICAGO/MIDWAY,2026-07-09 18:01")


def test_metar_archive_reparses_the_raw_text(iem: IemClient, server: WeatherReplayServer) -> None:
    errors: list[MetarParseError] = []
    readings = iem.metar_archive(
        "MDW", T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1), errors=errors
    )
    assert [r.ts for r in readings] == [
        dt.datetime(2026, 7, 9, 17, 53, tzinfo=UTC),
        dt.datetime(2026, 7, 9, 18, 5, tzinfo=UTC),
    ]
    assert [e.raw for e in errors] == ["KMDW 09180"]  # kept, not stored
    sent = server.requests[-1]
    assert sent.query["data"] == ["tmpf", "metar"]
    assert sent.query["report_type"] == ["3", "4"] and sent.query["format"] == ["onlycomma"]

    frame = obs_frame(readings, "chicago", "metar")
    assert tuple(frame.columns) == writers.OBS.column_names
    assert frame["temp_f"].tolist() == [87.98, 89.6]  # T-group tenths, then whole-°C body
    assert frame["temp_c"].tolist() == [31.1, 32.0]
    assert frame["max_temp_6h_f"].iloc[0] == 89.0  # 10317: 31.7 °C = 89.06 °F
    assert math.isnan(frame["max_temp_6h_f"].iloc[1])
    assert frame["raw"].iloc[0].endswith("10317 20244")


def test_routine_only(iem: IemClient) -> None:
    readings = iem.metar_archive(
        "MDW", T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1), report_types=(3,)
    )
    assert len(readings) == 1


@needs_data()
def test_cli_listing_and_text(iem: IemClient, server: WeatherReplayServer) -> None:
    text = (DATA / "weather" / "products" / "iem_text_clinyc_202607100625.txt").read_text()
    server.add_product(
        "202607100625-KOKX-CDUS41-CLINYC",
        pil="CLINYC",
        issued_at=dt.datetime(2026, 7, 10, 6, 25, tzinfo=UTC),
        text=text,
        cccc="KOKX",
    )
    products = iem.cli_product_list("CLINYC", dt.date(2026, 7, 9), dt.date(2026, 7, 10))
    assert [p.product_id for p in products] == ["202607100625-KOKX-CDUS41-CLINYC"]
    assert products[0].entered == dt.datetime(2026, 7, 10, 6, 25, tzinfo=UTC)
    assert [r.query["date"] for r in server.requests[-2:]] == [["2026-07-09"], ["2026-07-10"]]
    assert iem.product_text(products[0].product_id) == text
    reports = iem.cli_reports("CLINYC", dt.date(2026, 7, 10), dt.date(2026, 7, 10))
    assert [(r.climate_date, r.max_temp_f, r.kind) for r in reports] == [
        (dt.date(2026, 7, 9), 82, "final")
    ]
    assert reports[0].product_id == "202607100625-KOKX-CDUS41-CLINYC"


@needs_data()
def test_real_listing_and_csv_samples_parse() -> None:
    body = (DATA / "api-shapes" / "iem_list_clinyc_20260710.json").read_text()
    products = parse_afos_list(body)
    assert [p.product_id for p in products] == [
        "202607100625-KOKX-CDUS41-CLINYC",
        "202607102035-KOKX-CDUS41-CLINYC",
    ]
    assert products[1].entered == dt.datetime(2026, 7, 10, 20, 35, tzinfo=UTC)
    assert products[0].cccc == "KOKX" and products[0].pil == "CLINYC"
    csv = parse_asos_csv((DATA / "api-shapes" / "wcm_asos_nyc_sample.csv").read_text())
    assert csv["tmpf"].tolist() == [72.0, 78.0, 81.0, 70.0]
    assert csv["ts"].iloc[0] == dt.datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def test_retries_503_and_429_then_succeeds(iem: IemClient, server: WeatherReplayServer) -> None:
    server.fail_next(2, status=503)
    server.fail_next(1, status=429)
    frame = iem.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))
    assert len(frame) == 5
    assert iem.stats.statuses == {503: 2, 429: 1, 200: 1}
    assert iem.stats.retries == 3


def test_gives_up_with_the_server_message(server: WeatherReplayServer) -> None:
    client = IemClient(
        server.url,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.0),
        bucket=fast_bucket(),
        sleep=lambda _: None,
    )
    server.fail_next(2, status=503)
    with pytest.raises(SourceError) as info:
        client.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))
    assert info.value.status == 503
    assert "server over capacity" in str(info.value)
    server.fail_next(1, status=422, body="Unknown station provided: XXX")
    with pytest.raises(SourceError, match="Unknown station") as info:
        client.asos_1min("XXX", T0, T0 + dt.timedelta(hours=1))
    assert info.value.status == 422 and not isinstance(info.value, PayloadError)


def test_slow_answer_times_out_and_is_retried(server: WeatherReplayServer) -> None:
    client = IemClient(
        server.url, retry=FAST, bucket=fast_bucket(), timeout_s=0.2, sleep=lambda _: None
    )
    server.slow_next(0.6)
    assert len(client.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))) == 5
    assert client.stats.transport_errors == 1


def test_malformed_csv_keeps_the_body(iem: IemClient, server: WeatherReplayServer) -> None:
    server.malform_next()
    with pytest.raises(PayloadError) as info:
        iem.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))
    assert info.value.body is not None and info.value.body.startswith("<html>")
    assert "asos1min" in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty CSV"),
        ("station,station_name,valid(UTC),tmpf\nMDW,X,2026-07-09 18:00\n", "fields"),
        ("station,station_name,valid(UTC),tmpf\nMDW,X,2026-07-09 18:00,hot\n", "not a number"),
        ("station,station_name,valid(UTC),tmpf\nMDW,X,yesterday,80\n", "not a timestamp"),
        ("station,station_name,valid(Mars/Olympus),tmpf\nMDW,X,2026-07-09 18:00,80\n", "zone"),
    ],
)
def test_bad_1min_payloads(body: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        parse_asos1min_csv(body)
    assert info.value.body == body


def test_1min_local_time_header_is_converted() -> None:
    body = "station,station_name,valid(America/Chicago),tmpf\nMDW,X,2026-07-09 13:00,80\n"
    frame = parse_asos1min_csv(body)
    assert frame["ts"].iloc[0] == dt.datetime(2026, 7, 9, 18, 0, tzinfo=UTC)


def test_malformed_listing_json(iem: IemClient, server: WeatherReplayServer) -> None:
    server.malform_next(path_contains="list.json")
    with pytest.raises(PayloadError, match="invalid JSON") as info:
        iem.cli_product_list("CLINYC", dt.date(2026, 7, 10), dt.date(2026, 7, 10))
    assert info.value.body and '{"data": []}'.startswith(info.value.body)  # the raw half
    with pytest.raises(PayloadError, match="no 'data'"):
        parse_afos_list('{"rows": []}')
    with pytest.raises(PayloadError, match="product_id"):
        parse_afos_list('{"data": [{"entered": "2026-07-10T06:25:00Z"}]}')


def test_as_of_clock_hides_future_data(iem: IemClient, server: WeatherReplayServer) -> None:
    server.add_product(
        "202607092035-KOKX-CDUS41-CLINYC",
        pil="CLINYC",
        issued_at=dt.datetime(2026, 7, 9, 20, 35, tzinfo=UTC),
        text="not needed here",
    )
    server.set_clock(T0 + dt.timedelta(minutes=2))
    frame = iem.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))
    assert frame["ts"].max() == T0 + dt.timedelta(minutes=2)
    assert (
        len(iem.metar_archive("MDW", T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))) == 1
    )
    assert iem.cli_product_list("CLINYC", dt.date(2026, 7, 9), dt.date(2026, 7, 9)) == []
    with pytest.raises(SourceError) as info:
        iem.product_text("202607092035-KOKX-CDUS41-CLINYC")
    assert info.value.status == 404
    server.advance(dt.timedelta(hours=3))
    assert len(iem.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))) == 5
    assert len(iem.cli_product_list("CLINYC", dt.date(2026, 7, 9), dt.date(2026, 7, 9))) == 1


def test_every_request_takes_a_token(server: WeatherReplayServer) -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=1.0, capacity=1.0, clock=lambda: now[0], sleep=sleep)
    client = IemClient(server.url, retry=FAST, bucket=bucket, sleep=lambda _: None)
    for _ in range(3):
        client.asos_1min("MDW", T0, T0 + dt.timedelta(hours=1))
    assert waits == [1.0, 1.0]  # one request per second, as IEM asks


def test_naive_times_are_refused(iem: IemClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        iem.asos_1min("MDW", dt.datetime(2026, 7, 9), T0)


def test_obs_frame_of_nothing() -> None:
    frame = asos1min_obs_frame(parse_asos1min_csv("station,station_name,valid(UTC),tmpf\n"), "x")
    assert frame.empty and tuple(frame.columns) == writers.OBS.column_names
