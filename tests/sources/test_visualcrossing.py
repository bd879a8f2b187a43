"""VisualCrossingClient against the replay server; the API key never shows anywhere."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from kwx.ingest.normalize import VC_ISSUE_HOUR_UTC as NORMALIZE_ISSUE_HOUR
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import PayloadError, RetryPolicy, SourceError
from kwx.sources.visualcrossing import (
    VC_ISSUE_HOUR_UTC,
    QuotaExceededError,
    VisualCrossingClient,
    redact,
    vc_forecast_frame,
    vc_obs_frame,
)
from kwx.store import writers

UTC = dt.UTC
KEY = "SECRETKEY123abc"
DAY = dt.date(2026, 7, 9)
T0 = dt.datetime(2026, 7, 9, 18, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.0)


@pytest.fixture
def server() -> Iterator[WeatherReplayServer]:
    with WeatherReplayServer(vc_api_key=KEY) as srv:
        for i in range(4):
            srv.add_vc_obs(
                "stn:KMDW",
                T0 + dt.timedelta(minutes=5 * i),
                stations=["KMDW"],
                temp=88.0 + i,
                dew=65.0,
                humidity=47.0,
                windspeed=9.2,
                winddir=220.0,
            )
        srv.add_vc_obs("stn:KMDW", T0, level="hour", stations=["KMDW"], temp=88.0)
        issued = dt.datetime(2026, 7, 9, 0, 0, tzinfo=UTC)
        for h in range(24):
            srv.add_vc_forecast(
                "stn:KMDW",
                dt.datetime(2026, 7, 9, h, tzinfo=UTC),
                issued_at=issued,
                temp=70.0 + h / 2,
                precipprob=20.0,
                conditions="Partially cloudy",
            )
        later = dt.datetime(2026, 7, 9, 12, 0, tzinfo=UTC)
        for h in range(12, 24):
            srv.add_vc_forecast(
                "stn:KMDW", dt.datetime(2026, 7, 9, h, tzinfo=UTC), issued_at=later, temp=90.0
            )
        yield srv


def client_for(server: WeatherReplayServer, key: str = KEY) -> VisualCrossingClient:
    return VisualCrossingClient(server.vc_url, SecretStr(key), retry=FAST, sleep=lambda _: None)


def test_station_pinned_minutes(
    server: WeatherReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    vc = client_for(server)
    timeline = vc.timeline(
        "Chicago,IL", DAY, DAY, include=("obs",), minute_interval=5, station="KMDW"
    )
    sent = server.requests[-1]
    assert (
        sent.path
        == "/VisualCrossingWebServices/rest/services/timeline/stn:KMDW/2026-07-09/2026-07-09"
    )
    assert sent.query["include"] == ["obs,minutes"]
    assert sent.query["options"] == ["useobs,minuteinterval_5"]
    assert sent.query["maxStations"] == ["1"] and sent.query["maxDistance"] == ["0"]
    assert sent.query["timezone"] == ["Z"] and sent.query["unitGroup"] == ["us"]
    assert "stations" in sent.query["elements"][0].split(",")
    assert sent.query["key"] == [KEY]

    minutes = timeline.at("minute")
    assert [r.ts for r in minutes] == [T0 + dt.timedelta(minutes=5 * i) for i in range(4)]
    assert minutes[1].temp_f == 89.0 and minutes[1].stations == ("KMDW",)
    assert set(timeline.stations) == {"KMDW"}
    assert "stations ['KMDW']" in caplog.text  # logged for audit

    frame = vc_obs_frame(timeline, "chicago")
    assert tuple(frame.columns) == writers.OBS.column_names
    assert frame["temp_f"].tolist() == [88.0, 89.0, 90.0, 91.0]
    assert set(frame["source"]) == {"vc"} and frame["temp_c"].isna().all()
    assert json.loads(frame["raw"].iloc[0]) == {
        "level": "minute",
        "source": "obs",
        "stations": ["KMDW"],
    }


def test_live_forecast_issued_at_query_time(server: WeatherReplayServer) -> None:
    now = dt.datetime(2026, 7, 9, 15, 30, tzinfo=UTC)
    server.set_clock(now)
    vc = client_for(server)
    timeline = vc.timeline("stn:KMDW", DAY, include=("fcst", "hours"))
    assert server.requests[-1].query["options"] == ["usefcst"]
    assert timeline.queried_at == now  # the answer's Date header
    frame = vc_forecast_frame(timeline, "chicago")
    assert tuple(frame.columns) == writers.FORECAST.column_names
    assert (frame["issued_at"] == now).all()
    assert len(frame) == 12 and set(frame["temp_f"]) == {90.0}  # the 12Z run replaced 00Z
    assert frame["valid_at"].iloc[0] == dt.datetime(2026, 7, 9, 12, tzinfo=UTC)


def test_historical_forecast_by_basis_date(server: WeatherReplayServer) -> None:
    assert VC_ISSUE_HOUR_UTC == NORMALIZE_ISSUE_HOUR
    vc = client_for(server)
    timeline = vc.timeline("stn:KMDW", DAY, DAY, include=("fcst", "hours"), forecast_basis_date=DAY)
    assert server.requests[-1].query["forecastBasisDate"] == ["2026-07-09"]
    frame = vc_forecast_frame(timeline, "chicago")
    assert (frame["issued_at"] == dt.datetime(2026, 7, 9, 12, tzinfo=UTC)).all()
    assert len(frame) == 12  # the latest run of that basis date
    explicit = vc_forecast_frame(timeline, "chicago", issued_at=T0)
    assert (explicit["issued_at"] == T0).all()


def test_retries_503_then_a_concurrency_429(server: WeatherReplayServer) -> None:
    vc = client_for(server)
    server.fail_next(2, status=503)
    server.fail_next(1, status=429)
    timeline = vc.timeline("stn:KMDW", DAY, include=("obs",), minute_interval=5)
    assert len(timeline.at("minute")) == 4
    assert vc.stats.statuses == {503: 2, 429: 1, 200: 1}


def test_second_concurrency_429_gives_up(server: WeatherReplayServer) -> None:
    vc = client_for(server)
    server.fail_next(2, status=429)
    with pytest.raises(SourceError) as info:
        vc.timeline("stn:KMDW", DAY)
    assert info.value.status == 429 and not isinstance(info.value, QuotaExceededError)


def test_daily_quota_429_is_final(server: WeatherReplayServer) -> None:
    vc = client_for(server)
    server.fail_next(
        3,
        status=429,
        body="You have exceeded the maximum number of daily result records for your account. "
        "Please add a credit card to continue retrieving results.",
    )
    with pytest.raises(QuotaExceededError, match="daily result records"):
        vc.timeline("stn:KMDW", DAY)
    assert vc.stats.attempts == 1


def test_key_never_logged_or_raised(
    server: WeatherReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vc = client_for(server)
    server.fail_next(1, status=503)
    vc.timeline("stn:KMDW", DAY)
    assert "HTTP Request" in caplog.text and "key=***" in caplog.text  # httpx's own log line

    wrong = client_for(server, key="WRONG" + KEY)
    with pytest.raises(SourceError) as info:
        wrong.timeline("stn:KMDW", DAY)
    err = info.value
    assert err.status == 401
    assert "No account found with API key '***'" in str(err)  # VC echoes the key back
    for text in (str(err), err.url or "", err.body or "", repr(wrong)):
        assert KEY not in text

    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    offline = VisualCrossingClient(
        dead,
        SecretStr(KEY),
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.0),
        sleep=lambda _: None,
    )
    with pytest.raises(SourceError) as info:
        offline.timeline("stn:KMDW", DAY)
    assert KEY not in str(info.value) and info.value.__suppress_context__
    assert KEY not in caplog.text


def test_malformed_body_is_kept_redacted(server: WeatherReplayServer) -> None:
    vc = client_for(server)
    server.malform_next(body='{"days": [{"datetime": "2026-07-09", "key=' + KEY)
    with pytest.raises(PayloadError) as info:
        vc.timeline("stn:KMDW", DAY)
    assert info.value.body == '{"days": [{"datetime": "2026-07-09", "key=***'
    server.malform_next(body='{"days": [{"hours": [{"temp": 80}]}]}')
    with pytest.raises(PayloadError, match="datetimeEpoch"):
        vc.timeline("stn:KMDW", DAY)


def test_as_of_clock_hides_future_data(server: WeatherReplayServer) -> None:
    server.set_clock(T0 + dt.timedelta(minutes=7))
    vc = client_for(server)
    timeline = vc.timeline("stn:KMDW", DAY, include=("obs", "fcst", "hours"), minute_interval=5)
    assert [r.ts for r in timeline.at("minute")] == [T0, T0 + dt.timedelta(minutes=5)]
    frame = vc_obs_frame(timeline, "chicago")
    assert frame["ts"].max() <= T0 + dt.timedelta(minutes=7)
    server.set_clock(dt.datetime(2026, 7, 9, 6, 0, tzinfo=UTC))
    early = vc.timeline("stn:KMDW", DAY, include=("fcst", "hours"))
    assert {r.temp_f for r in early.at("hour")} != {90.0}  # only the 00Z run existed


def test_arguments_are_checked(server: WeatherReplayServer) -> None:
    vc = client_for(server)
    with pytest.raises(ValueError, match="minute_interval"):
        vc.timeline("stn:KMDW", DAY, minute_interval=7)
    with pytest.raises(ValueError, match="API key"):
        VisualCrossingClient(server.vc_url, SecretStr(""))
    epoch = vc.timeline("stn:KMDW", T0, T0 + dt.timedelta(hours=1))
    assert server.requests[-1].path.endswith(f"/{int(T0.timestamp())}/{int(T0.timestamp()) + 3600}")
    assert epoch.location == "stn:KMDW"


def test_redact() -> None:
    assert redact("GET /t?unitGroup=us&key=abc123&x=1") == "GET /t?unitGroup=us&key=***&x=1"
    assert redact("No account found with API key 'abc123'", "abc123") == (
        "No account found with API key '***'"
    )
