"""One real day for the exchange-simulator tests: KXHIGHCHI, climate date 2024-12-05 (a Thursday).

Only that event's rows are imported from ../shared/data (markets, trades, the settlement, a
week of ERA5 hours) into a database of their own, once per session; each test then builds its
own simulator from the `ReplayData` read back from that store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from kwx.config import Settings
from kwx.ingest.file_import import import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import City, default_registry
from kwx.sim.replay import ReplayData
from kwx.sim.simulator import SimConfig, Simulator
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.kalshi_ws import KalshiWebSocket, WsEvent
from kwx.sources.ratelimit import TokenBucket
from kwx.store.engine import connect
from tests.conftest import DATA, TEMPLATE_DB, with_db

CITY: City = default_registry().by_key("chicago")
DAY = dt.date(2024, 12, 5)
EVENT = "KXHIGHCHI-24DEC05"
KEY_ID = "sim-test-key"
UTC = dt.UTC
FAST = RetryPolicy(base_delay_s=0.005, max_delay_s=0.05, max_attempts=6)


def _import_day(root: Path) -> None:
    """Write the day's slices of the shared files under ``root`` in their original shapes."""
    markets = pd.read_csv(DATA / "kalshi/markets/KXHIGHCHI.csv")
    markets = markets[markets["event_ticker"] == EVENT]
    (root / "kalshi/markets").mkdir(parents=True)
    markets.to_csv(root / "kalshi/markets/KXHIGHCHI.csv", index=False)
    trades = pd.read_parquet(DATA / "kalshi/trades/KXHIGHCHI.parquet")
    trades = trades[trades["ticker"].isin(set(markets["ticker"]))]
    (root / "kalshi/trades").mkdir(parents=True)
    trades.to_parquet(root / "kalshi/trades/KXHIGHCHI.parquet", index=False)
    settlements = pd.read_csv(DATA / "weather/settlements/chicago.csv")
    settlements = settlements[settlements["date_local"].between("2024-12-01", "2024-12-09")]
    (root / "weather/settlements").mkdir(parents=True)
    settlements.to_csv(root / "weather/settlements/chicago.csv", index=False)
    era5 = pd.read_csv(DATA / "weather/era5_hourly/KXHIGHCHI.csv")
    era5 = era5[era5["datetime"].between("2024-12-02", "2024-12-09")]
    (root / "weather/era5_hourly").mkdir(parents=True)
    era5.to_csv(root / "weather/era5_hourly/KXHIGHCHI.csv", index=False)


@pytest.fixture(scope="session")
def day_settings(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database holding the real day, shared by the simulator tests."""
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    name = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    root = tmp_path_factory.mktemp("simday")
    settings = Settings(kwx_database_url=SecretStr(with_db(pg_admin_url, name)), kwx_data_dir=root)
    _import_day(root / "data")
    with connect(settings) as conn:
        summary = import_directory(conn, root / "data", ImportContext(default_registry()))
        assert not summary.failed, summary.failed
    yield settings
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def day(day_settings: Settings) -> ReplayData:
    with connect(day_settings) as conn:
        return ReplayData.load(conn, CITY, DAY)


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def make_sim(day: ReplayData, private_key: rsa.RSAPrivateKey) -> Iterator[Callable[..., Simulator]]:
    """``make_sim(start=…, **SimConfig fields)``: a started simulator, stopped after the test."""
    started: list[Simulator] = []

    def make(start: dt.datetime, data: ReplayData | None = None, **options: Any) -> Simulator:
        options.setdefault("rate_limit", False)
        config = SimConfig(
            start=start, public_key=private_key.public_key(), key_id=KEY_ID, **options
        )
        sim = Simulator(data or day, config).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def rest_client(
    sim: Simulator, key: rsa.RSAPrivateKey | None, *, timeout_s: float = 5.0
) -> KalshiRest:
    return KalshiRest(
        sim.rest_url,
        signer=KalshiSigner(KEY_ID, key) if key is not None else None,
        timeout_s=timeout_s,
        retry=FAST,
        read_bucket=TokenBucket(100_000, 100_000),
        write_bucket=TokenBucket(100_000, 100_000),
    )


class Stream:
    """Our WebSocket client running against the simulator, with everything it reported."""

    def __init__(self, client: KalshiWebSocket, events: list[WsEvent]) -> None:
        self.client = client
        self.events = events

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def ws_stream(
    sim: Simulator, key: rsa.RSAPrivateKey, tickers: list[str]
) -> AsyncIterator[Stream]:
    events: list[WsEvent] = []

    async def on_event(event: WsEvent) -> None:
        events.append(event)

    client = KalshiWebSocket(
        sim.ws_url,
        tickers,
        signer=KalshiSigner(KEY_ID, key),
        on_event=on_event,
        backoff=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        await until(lambda: all(t in client.books for t in tickers), "initial snapshots")
        yield Stream(client, events)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
