"""NwsClient against the loopback replay server, in api.weather.gov's real shapes."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kwx.sim.weather_server import WeatherReplayServer, hourly_periods
from kwx.sources.http import PayloadError, RetryPolicy, SourceError
from kwx.sources.nws import (
    GridPoint,
    NwsClient,
    expand_valid_time,
    forecast_frame,
    grid_forecast_frame,
    observations_frame,
    parse_grid,
    parse_hourly_forecast,
    parse_point,
    parse_valid_time,
)
from kwx.store import writers
from tests.conftest import DATA, needs_data

UTC = dt.UTC
UA = "kwx-tests/1.0 (ops@example.com)"
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.0)
SHAPES = DATA / "api-shapes"
NYC = GridPoint("OKX", 34, 45, "", "", "America/New_York", "")
RUN1 = dt.datetime(2026, 7, 9, 12, 0, tzinfo=UTC)
RUN2 = dt.datetime(2026, 7, 9, 18, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[WeatherReplayServer]:
    with WeatherReplayServer() as srv:
        srv.add_point(40.7789, -73.9692, wfo="OKX", x=34, y=45, time_zone="America/New_York")
        srv.add_hourly_forecast(
            "OKX", 34, 45, generated_at=RUN1, periods=hourly_periods(RUN1, [80, 82, 84])
        )
        srv.add_hourly_forecast(
            "OKX",
            34,
            45,
            generated_at=RUN2,
            update_time=RUN2 - dt.timedelta(minutes=40),
            periods=hourly_periods(RUN2, [85, 83], short_forecast="Chance Showers"),
        )
        yield srv


@pytest.fixture
def nws(server: WeatherReplayServer) -> Iterator[NwsClient]:
    with NwsClient(server.url, UA, retry=FAST, sleep=lambda _: None) as client:
        yield client


def test_point_sends_the_user_agent(nws: NwsClient, server: WeatherReplayServer) -> None:
    grid = nws.point(40.77891, -73.96923)  # rounded to the 4 decimals NWS accepts
    assert (grid.wfo, grid.x, grid.y, grid.time_zone) == ("OKX", 34, 45, "America/New_York")
    assert grid.forecast_hourly_url.endswith("/gridpoints/OKX/34,45/forecast/hourly")
    assert server.requests[-1].path == "/points/40.7789,-73.9692"
    assert server.requests[-1].headers["user-agent"] == UA


def test_user_agent_even_on_an_injected_client(server: WeatherReplayServer) -> None:
    with httpx.Client(headers={"User-Agent": ""}) as raw:
        client = NwsClient(server.url, UA, client=raw, retry=FAST, sleep=lambda _: None)
        client.point(40.7789, -73.9692)
    assert server.requests[-1].headers["user-agent"] == UA
    with pytest.raises(ValueError, match="User-Agent"):
        NwsClient(server.url, " ")


def test_missing_user_agent_is_a_problem_json(server: WeatherReplayServer) -> None:
    response = httpx.get(server.url + "/points/40.7789,-73.9692", headers={"User-Agent": ""})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.json()) >= {"type", "title", "status", "detail"}


@needs_data()
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nws_points_nyc.json", ("OKX", 33, 37, "America/New_York")),
        ("points_nyc.json", ("OKX", 34, 45, "America/New_York")),
        ("nws_points_chi.json", ("LOT", 65, 60, "America/Chicago")),
        ("nws_points_mia.json", ("MFL", 74, 52, "America/New_York")),
        ("nws_points_aus.json", ("EWX", 155, 90, "America/Chicago")),
    ],
)
def test_real_point_samples(name: str, expected: tuple[str, int, int, str]) -> None:
    grid = parse_point((SHAPES / name).read_text())
    assert (grid.wfo, grid.x, grid.y, grid.time_zone) == expected
    assert grid.grid_data_url.endswith(f"/gridpoints/{grid.wfo}/{grid.x},{grid.y}")
    assert grid.observation_stations_url.endswith("/stations")


def test_hourly_forecast_and_frame(nws: NwsClient, server: WeatherReplayServer) -> None:
    forecast = nws.hourly_forecast(NYC)
    assert forecast.generated_at == RUN2
    assert forecast.updated_at == RUN2 - dt.timedelta(minutes=40)
    assert forecast.issued_at == RUN2  # when it was certainly available, not updateTime
    assert [p.temp_f for p in forecast.periods] == [85.0, 83.0]
    first = forecast.periods[0]
    assert first.start == RUN2 and first.end == RUN2 + dt.timedelta(hours=1)
    assert first.dewpoint_f == 59.0 and first.rel_humidity == 60.0
    assert first.wind_speed_mph == 10.0 and first.precip_prob == 10.0
    assert server.requests[-1].path == "/gridpoints/OKX/34,45/forecast/hourly"

    frame = forecast_frame(forecast.periods, "new_york", forecast.issued_at)
    assert tuple(frame.columns) == writers.FORECAST.column_names
    assert frame["valid_at"].tolist() == [RUN2, RUN2 + dt.timedelta(hours=1)]
    assert (frame["issued_at"] == RUN2).all() and set(frame["source"]) == {"nws"}
    assert frame["conditions"].tolist() == ["Chance Showers"] * 2
    assert frame["cloud_cover"].isna().all()
    with pytest.raises(ValueError, match="timezone-aware"):
        forecast_frame(forecast.periods, "new_york", dt.datetime(2026, 7, 9))


def test_quantitative_temperature_and_wind_ranges() -> None:
    body = json.dumps(
        {
            "properties": {
                "generatedAt": "2026-07-09T19:10:00+00:00",
                "periods": [
                    {
                        "number": 1,
                        "startTime": "2026-07-09T15:00:00-04:00",
                        "endTime": "2026-07-09T16:00:00-04:00",
                        "temperature": {"unitCode": "wmoUnit:degC", "value": 30.0},
                        "windSpeed": "5 to 15 mph",
                        "probabilityOfPrecipitation": {
                            "unitCode": "wmoUnit:percent",
                            "value": None,
                        },
                    }
                ],
            }
        }
    )
    forecast = parse_hourly_forecast(body)
    period = forecast.periods[0]
    assert period.start == dt.datetime(2026, 7, 9, 19, 0, tzinfo=UTC)
    assert (period.temp_f, period.wind_speed_mph, period.precip_prob) == (86.0, 10.0, None)
    assert forecast.updated_at is None and forecast.issued_at == forecast.generated_at


def test_valid_time_intervals() -> None:
    start = dt.datetime(2026, 7, 9, 13, tzinfo=UTC)
    assert expand_valid_time("2026-07-09T13:00:00+00:00/PT3H") == [
        start,
        start + dt.timedelta(hours=1),
        start + dt.timedelta(hours=2),
    ]
    assert parse_valid_time("2026-07-09T13:00:00+00:00/P1DT6H") == (
        start,
        dt.timedelta(days=1, hours=6),
    )
    assert len(expand_valid_time("2026-07-09T13:00:00+00:00/P1D")) == 24
    for bad in ("2026-07-09T13:00:00+00:00", "2026-07-09T13:00:00+00:00/PT", "x/PT1H"):
        with pytest.raises(ValueError):
            parse_valid_time(bad)


@needs_data()
def test_grid_from_the_real_sample(nws: NwsClient, server: WeatherReplayServer) -> None:
    properties = json.loads((SHAPES / "griddata_nyc_trimmed.json").read_text())["properties"]
    server.add_grid("OKX", 34, 45, properties)
    temps = nws.grid_temperatures(NYC)
    start = dt.datetime(2026, 7, 9, 13, tzinfo=UTC)
    assert [ts for ts, _ in temps] == [start + dt.timedelta(hours=i) for i in range(4)]
    assert [t for _, t in temps] == [76.0, 79.0, 82.0, 83.0]  # 24.44 °C … 28.33 °C

    grid = nws.grid_data(NYC)
    assert grid.updated_at == dt.datetime(2026, 7, 9, 19, 3, 33, tzinfo=UTC)
    dew = dict(grid.hourly("dewpoint", "F"))  # "…15:00/PT3H" covers 15, 16 and 17 h
    assert len(dew) == 7
    assert dew[start + dt.timedelta(hours=2)] == dew[start + dt.timedelta(hours=4)]
    rain = dict(grid.hourly("quantitativePrecipitation", "in"))  # 0.254 mm over 5 h
    assert rain[start] == pytest.approx(0.002, abs=1e-6)
    frame = grid_forecast_frame(grid, "new_york")
    assert tuple(frame.columns) == writers.FORECAST.column_names
    assert len(frame) == 4 and set(frame["source"]) == {"nws_grid"}
    assert (frame["issued_at"] == grid.updated_at).all()
    assert frame["wind_speed_mph"].iloc[0] == pytest.approx(9.21, abs=0.01)  # 14.816 km/h
    assert frame["cloud_cover"].tolist() == [30.0, 34.0, 54.0, 60.0]


def test_station_observations_paged(server: WeatherReplayServer) -> None:
    server.observation_page_size = 2
    base = dt.datetime(2026, 7, 9, 17, 0, tzinfo=UTC)
    server.add_observation(
        "KNYC",
        base + dt.timedelta(minutes=51),
        raw_message="KNYC 091751Z 00000KT 10SM FEW250 29/18 A3001 RMK AO2 SLP162 T02890178 10294",
        temp_c=28.9,
        dewpoint_c=17.8,
        wind_speed_kmh=0.0,
        rel_humidity=51.2,
    )
    server.add_observation(
        "KNYC", base + dt.timedelta(minutes=55), raw_message="", temp_c=29.0, dewpoint_c=18.0
    )
    server.add_observation("KNYC", base + dt.timedelta(minutes=60))  # all nulls
    server.add_observation(
        "KNYC",
        base + dt.timedelta(minutes=65),
        raw_message="KNYC 091805Z 20005KT 10SM 30/18 A3001 RMK AO2",
        temp_c=30.0,
        wind_speed_kmh=9.26,
        wind_dir_deg=200,
    )
    client = NwsClient(server.url, UA, retry=FAST, sleep=lambda _: None)
    obs = client.station_observations("knyc", base, base + dt.timedelta(hours=2))
    assert [o.ts.minute for o in obs] == [51, 55, 0, 5]  # oldest first, across 2 pages
    assert sum(r.path.endswith("/observations") for r in server.requests) == 2
    assert server.requests[-1].query["cursor"] == ["2"]
    assert obs[0].reading is not None and obs[0].reading.temp_from_t_group
    assert obs[2].temp_c is None and obs[2].raw_message is None

    frame = observations_frame(obs, "new_york")
    assert tuple(frame.columns) == writers.OBS.column_names
    assert frame["temp_f"].iloc[0] == 84.02  # 28.9 °C from the T group
    assert frame["temp_c"].iloc[0] == 28.9
    assert frame["max_temp_6h_f"].iloc[0] == 85.0  # 10294: 29.4 °C = 84.92 °F
    assert math.isnan(frame["temp_f"].iloc[2])  # nulls allowed
    assert frame["wind_speed_mph"].iloc[3] == pytest.approx(5.75, abs=0.01)
    assert frame["wind_dir_deg"].iloc[3] == 200.0
    assert set(frame["source"]) == {"nws"}
    assert frame["raw"].iloc[3].startswith("KNYC 091805Z")


@needs_data()
def test_cli_products(nws: NwsClient, server: WeatherReplayServer) -> None:
    meta = json.loads((SHAPES / "cli_meta.json").read_text())["nyc"]
    for entry in meta:
        text = (DATA / "weather" / "products" / f"cli_nyc_{entry['kind']}.txt").read_text()
        server.add_product(
            f"nyc-{entry['kind']}",
            nws_id=entry["id"],
            pil="CLINYC",
            issued_at=dt.datetime.fromisoformat(entry["issuanceTime"]),
            text=text,
            cccc="KOKX",
        )
    refs = nws.cli_product_list("NYC")
    assert [r.id for r in refs] == [
        "c376feda-ac0c-4222-a410-d3b43f4b3c7a",
        "026b4f75-d7b6-43da-8834-e761113268e5",
    ]
    assert refs[0].issuance_time == dt.datetime(2026, 7, 9, 6, 26, tzinfo=UTC)
    assert server.requests[-1].path == "/products/types/CLI/locations/NYC"
    product = nws.product(refs[0].id)
    assert "CLINYC" in product.text
    reports = nws.cli_reports("NYC")
    assert [(r.kind, r.climate_date, r.max_temp_f, r.product_id) for r in reports] == [
        ("final", dt.date(2026, 7, 8), 85, "c376feda-ac0c-4222-a410-d3b43f4b3c7a"),
        ("intermediate", dt.date(2026, 7, 9), 82, "026b4f75-d7b6-43da-8834-e761113268e5"),
    ]
    later = nws.cli_reports("NYC", since=dt.datetime(2026, 7, 9, 12, tzinfo=UTC))
    assert [r.kind for r in later] == ["intermediate"]


def test_problem_json_becomes_source_error(nws: NwsClient) -> None:
    with pytest.raises(SourceError) as info:
        nws.point(10.0, 10.0)
    assert info.value.status == 404
    assert "Data Unavailable For Requested Point: 10.0,10.0" in str(info.value)
    assert info.value.body is not None and '"title"' in info.value.body


def test_retries_503_and_429_then_succeeds(nws: NwsClient, server: WeatherReplayServer) -> None:
    server.fail_next(1, status=503)
    server.fail_next(1, status=429)
    assert nws.hourly_forecast(NYC).generated_at == RUN2
    assert nws.stats.statuses == {503: 1, 429: 1, 200: 1}


def test_malformed_json_keeps_the_body(nws: NwsClient, server: WeatherReplayServer) -> None:
    server.malform_next()
    with pytest.raises(PayloadError, match="invalid JSON") as info:
        nws.hourly_forecast(NYC)
    assert info.value.body and info.value.body.startswith('{"type": "Feature"')


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "properties"),
        ({"properties": {"updateTime": "2026-07-09T19:00:00+00:00"}}, "periods"),
        ({"properties": {"periods": [{"startTime": "soon"}]}}, "unreadable forecast"),
        (
            {"properties": {"periods": [{"startTime": "2026-07-09T19:00:00", "endTime": "x"}]}},
            "unreadable forecast",
        ),
    ],
)
def test_bad_forecast_payloads(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        parse_hourly_forecast(json.dumps(doc))
    assert info.value.body == json.dumps(doc)


def test_bad_grid_payload() -> None:
    body = json.dumps({"properties": {"temperature": {"values": [{"validTime": "x", "value": 1}]}}})
    with pytest.raises(PayloadError, match="unreadable grid"):
        parse_grid(body)


def test_as_of_clock_hides_future_data(nws: NwsClient, server: WeatherReplayServer) -> None:
    server.add_observation("KNYC", RUN1 + dt.timedelta(minutes=51), temp_c=25.0)
    server.add_observation("KNYC", RUN2 + dt.timedelta(minutes=51), temp_c=27.0)
    server.set_clock(RUN1 + dt.timedelta(hours=1))
    forecast = nws.hourly_forecast(NYC)
    assert forecast.generated_at == RUN1  # the 18Z run does not exist yet
    assert [p.temp_f for p in forecast.periods] == [80.0, 82.0, 84.0]
    assert [o.temp_c for o in nws.station_observations("KNYC")] == [25.0]
    server.set_clock(RUN1 - dt.timedelta(hours=1))
    with pytest.raises(SourceError) as info:
        nws.hourly_forecast(NYC)
    assert info.value.status == 503 and "Forecast Grid Expired" in str(info.value)
    server.set_clock(RUN2 + dt.timedelta(hours=1))
    assert nws.hourly_forecast(NYC).generated_at == RUN2
    assert [o.temp_c for o in nws.station_observations("KNYC")] == [25.0, 27.0]
