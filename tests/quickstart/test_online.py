"""`kwx quickstart` without --from-files: it fetches public data and runs end to end.

The "internet" is two loopback servers speaking the real wire formats: the Kalshi REST
simulator serving real Denver markets and trades, and the weather replay server serving IEM
one-minute observations (the ERA5 proxy, as offline) and CLI reports. No keys, no forecasts:
the weather model forecasts from the fetched observations themselves.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.ingest.file_import import import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sim.kalshi_rest_server import KalshiDataset, KalshiRestServer
from kwx.sim.weather_replay import load_weather
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.kalshi_models import HistoricalCutoff
from kwx.store.engine import _embedded_server_url, connect
from tests.conftest import DATA, TEMPLATE_DB, needs_data, with_db

DENVER = default_registry().by_key("denver")
FIRST, LAST = dt.date(2024, 11, 20), dt.date(2024, 12, 31)
SOURCE_FILES = (
    "kalshi/markets/KXHIGHDEN.csv",
    "kalshi/trades/KXHIGHDEN.parquet",
    "weather/era5_hourly/KXHIGHDEN.csv",
    "weather/settlements_acis/KXHIGHDEN.csv",
)


@pytest.fixture
def public_services(pg_admin_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(Kalshi URL, IEM URL) serving the real Denver data from a store of their own."""
    name = f"src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    source = Settings(kwx_database_url=SecretStr(with_db(pg_admin_url, name)))
    files = tmp_path / "public"
    for rel in SOURCE_FILES:
        (files / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / rel, files / rel)
    start = dt.datetime(2024, 10, 20, tzinfo=dt.UTC)
    end = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
    weather = WeatherReplayServer()
    with connect(source) as conn:
        import_directory(conn, files, ImportContext(default_registry()))
        dataset = KalshiDataset.from_store(conn, DENVER.series, FIRST, LAST)
        load_weather(conn, weather, DENVER, start, end)
    cutoff = dt.datetime(2024, 12, 15, 12, tzinfo=dt.UTC)
    try:
        with (
            KalshiRestServer(
                dataset,
                cutoff=HistoricalCutoff(cutoff, cutoff, cutoff),
                read_rate=5000,
                read_capacity=5000,
            ) as kalshi,
            weather,
        ):
            yield kalshi.url, weather.url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@needs_data()
def test_quickstart_fetches_public_data_and_backtests(
    settings: Settings,
    public_services: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kalshi_url, iem_url = public_services
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    monkeypatch.setenv("KWX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KALSHI_REST_BASE_URL", kalshi_url)
    monkeypatch.setenv("IEM_BASE_URL", iem_url)
    monkeypatch.setenv("IEM_REQUESTS_PER_S", "1000")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    report = tmp_path / "report.html"
    try:
        args = ["quickstart", "--city", "denver", "--to", LAST.isoformat(), "--days", "60"]
        result = CliRunner().invoke(app, [*args, "--out", str(report)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert report.is_file() and "<html" in report.read_text()[:500].lower()
    flat = " ".join(result.output.split())
    assert "forecasts climo" in flat  # no forecast archive: forecast from observations
    with connect(settings) as conn:
        runs = conn.execute("SELECT city, date_from, date_to FROM backtest.runs").fetchall()
        fetched = conn.execute(
            "SELECT count(DISTINCT climate_date) FROM kalshi.markets WHERE settled_tmax IS NOT NULL"
        ).fetchone()
        settled = conn.execute("SELECT count(*) FROM wx.settlement").fetchone()
    assert fetched is not None and settled is not None
    assert int(str(fetched[0])) >= (LAST - FIRST).days  # the last day may still be open
    assert int(str(settled[0])) >= 40
    # Fitted on the first 70% of the settled days, backtested on the rest, up to the last.
    assert len(runs) == 1 and runs[0][0] == "denver"
    date_from, date_to = runs[0][1], runs[0][2]
    assert isinstance(date_from, dt.date) and isinstance(date_to, dt.date)
    assert date_to >= LAST - dt.timedelta(days=1) and date_from > FIRST
