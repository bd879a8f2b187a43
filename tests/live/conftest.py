"""One real day for the live-trading tests: KXHIGHCHI, climate date 2024-12-05.

Only what that day needs is imported from ../shared/data into a database of its own (its
markets and trades, the ERA5 proxy and Visual Crossing forecasts of the month before for the
weather fit, the settlements), then weather-modelled by the real commands, once per session:
pmf.minute holds p_wx and hazards for every minute of the day, as the live loop reads them.

Each test builds its own simulator (:class:`kwx.sim.simulator.Simulator`, manual speed) from
that store and drives it in lock-step with the loop (:class:`kwx.live.clocks.LockstepClock`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, TradeMode, get_settings
from kwx.live.clocks import LockstepClock
from kwx.live.runner import LiveOptions, LiveRun
from kwx.registry import City, default_registry
from kwx.sim.faults import FaultConfig
from kwx.sim.replay import ReplayData
from kwx.sim.simulator import SimConfig, Simulator
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.ratelimit import TokenBucket
from kwx.store.engine import _embedded_server_url, connect
from kwx.strategy.config import ExecutionConfig, StrategyConfig
from tests.conftest import DATA, TEMPLATE_DB, with_db

CITY: City = default_registry().by_key("chicago")
DAY = dt.date(2024, 12, 5)
EVENT = "KXHIGHCHI-24DEC05"
FIT_FROM, FIT_TO = dt.date(2024, 11, 4), dt.date(2024, 12, 4)
KEY_ID = "live-test-key"
FAST = RetryPolicy(base_delay_s=0.002, max_delay_s=0.02, max_attempts=8)
WS_BACKOFF = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
FAULTS = "disconnect=0.7,gap=0.05,dup=0.05,429=0.03,5xx=0.02"
runner = CliRunner()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _cut(tmp: Path) -> None:
    kal, wx = DATA / "kalshi", DATA / "weather"
    (tmp / "markets").mkdir(parents=True)
    markets = pd.read_csv(kal / "markets" / "KXHIGHCHI.csv", dtype=str, keep_default_na=False)
    markets[markets["event_ticker"] == EVENT].to_csv(tmp / "markets" / "KXHIGHCHI.csv", index=False)
    (tmp / "trades").mkdir()
    trades = pd.read_parquet(kal / "trades" / "KXHIGHCHI.parquet")
    trades[trades["ticker"].str.startswith(EVENT + "-")].to_parquet(
        tmp / "trades" / "KXHIGHCHI.parquet", index=False
    )
    lo = pd.Timestamp(FIT_FROM) - pd.Timedelta(days=2)
    hi = pd.Timestamp(DAY) + pd.Timedelta(days=3)
    (tmp / "era5").mkdir()
    era5 = pd.read_csv(wx / "era5_hourly" / "KXHIGHCHI.csv", dtype=str)
    stamp = pd.to_datetime(era5["datetime"])
    era5[(stamp >= lo) & (stamp < hi)].to_csv(tmp / "era5" / "KXHIGHCHI.csv", index=False)
    (tmp / "vc").mkdir()
    vc = pd.read_parquet(wx / "vc_forecast_hourly" / "chicago.parquet")
    target = vc["target_datetime_utc"].dt.tz_localize(None)
    vc[(target >= lo) & (target < hi)].to_parquet(tmp / "vc" / "chicago.parquet", index=False)
    (tmp / "settlements").mkdir()
    settle = pd.read_csv(wx / "settlements" / "chicago.csv")
    settle[settle["date_local"].between("2024-10-01", "2024-12-31")].to_csv(
        tmp / "settlements" / "chicago.csv", index=False
    )


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"kwx {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.fixture(scope="session")
def day_settings(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database with the day imported and weather-modelled (pmf.minute p_wx, hazards)."""
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    name = f"live_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    url = with_db(pg_admin_url, name)
    tmp = tmp_path_factory.mktemp("liveday")
    settings = Settings(kwx_database_url=SecretStr(url), kwx_data_dir=tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWX_DATABASE_URL", url)
        mp.chdir(tmp)
        get_settings.cache_clear()
        _embedded_server_url.cache_clear()
        _cut(tmp / "data")
        _ok(["import", "--from-files", str(tmp / "data")])
        _ok(
            [
                "weather",
                "fit-params",
                "--city",
                "chicago",
                "--from",
                str(FIT_FROM),
                "--to",
                str(FIT_TO),
            ]
        )
        _ok(
            [
                "weather",
                "backfill",
                "--city",
                "chicago",
                "--from",
                str(DAY),
                "--to",
                str(DAY),
                "--paths",
                "500",
            ]
        )
    get_settings.cache_clear()
    yield settings
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def replay(day_settings: Settings) -> ReplayData:
    """The day as the simulator replays it, books rebuilt from the prints with 1,000
    contracts at the touch: deep enough that a taker never exhausts a level, which the
    backtest's venue (paper mode) assumes too."""
    with connect(day_settings) as conn:
        return ReplayData.load(conn, CITY, DAY, synthetic_size=Decimal(1000))


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def key_file(private_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "kalshi.pem"
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def trading_config() -> StrategyConfig:
    """The default strategy with takers paying the touch (no assumed slippage), so that paper
    fills (the backtest's venue) and the simulator's fills are priced alike. The edge gate is
    off: these tests are about the live loop's mechanics, which need orders (the gate has
    tests of its own in tests/strategy/test_edge.py and tests/backtest)."""
    return StrategyConfig(execution=ExecutionConfig(taker_slippage=Decimal(0), edge_gate=False))


@pytest.fixture
def make_sim(
    replay: ReplayData, private_key: rsa.RSAPrivateKey
) -> Iterator[Callable[..., Simulator]]:
    """``make_sim(start, faults="")``: a started manual-speed simulator, stopped after."""
    started: list[Simulator] = []

    def make(start: dt.datetime, faults: str = "", **options: Any) -> Simulator:
        options.setdefault("rate_limit", False)
        config = SimConfig(
            start=start,
            public_key=private_key.public_key(),
            key_id=KEY_ID,
            faults=FaultConfig.parse(faults, seed=11),
            **options,
        )
        sim = Simulator(replay, config).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def rest_client(sim: Simulator, key: rsa.RSAPrivateKey) -> KalshiRest:
    return KalshiRest(
        sim.rest_url,
        signer=KalshiSigner(KEY_ID, key),
        timeout_s=5.0,
        retry=FAST,
        read_bucket=TokenBucket(100_000, 100_000),
        write_bucket=TokenBucket(100_000, 100_000),
    )


def live_run(
    conn: psycopg.Connection[tuple[object, ...]],
    settings: Settings,
    sim: Simulator,
    key: rsa.RSAPrivateKey,
    mode: str,
    until: dt.datetime,
    **options: Any,
) -> LiveRun:
    """A built (not yet run) LiveRun against ``sim`` in lock-step."""
    options.setdefault("config", trading_config())
    options.setdefault("fill_model", "maker-b")
    opts = LiveOptions(
        mode="live" if mode == "live" else "paper",
        cities=["chicago"],
        until=until,
        allow_live=True,
        **options,
    )
    return LiveRun(
        conn,
        settings.model_copy(update={"trade_mode": TradeMode.LIVE}),
        opts,
        rest=rest_client(sim, key),
        clock=LockstepClock(sim, sim.clock.now),
        ws_url=sim.ws_url,
        signer=KalshiSigner(KEY_ID, key),
        ws_backoff=WS_BACKOFF,
    )
