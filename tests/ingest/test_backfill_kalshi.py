"""Kalshi backfill from the loopback Kalshi server (real recorded data) into PostgreSQL."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kwx.config import Settings
from kwx.ingest.backfill import backfill_kalshi, dates_between
from kwx.ingest.file_import import import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sim.kalshi_rest_server import KalshiDataset, KalshiRestServer
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_models import HistoricalCutoff
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.ratelimit import TokenBucket
from kwx.store.status import table_row_counts
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CTX = ImportContext(default_registry())
DENVER = default_registry().by_key("denver")
DAYS = dates_between(dt.date(2024, 12, 1), dt.date(2024, 12, 3))
MARKET_TABLES = ("kalshi.markets", "md.trades", "md.candles_1m")


@pytest.fixture
def dataset(conn: Conn, tmp_path: Path) -> KalshiDataset:
    """Three real Denver days, read back from a store that imported the shared files."""
    for rel in ("kalshi/markets/KXHIGHDEN.csv", "kalshi/trades/KXHIGHDEN.parquet"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / rel, tmp_path / rel)
    import_directory(conn, tmp_path, CTX)
    data = KalshiDataset.from_store(conn, DENVER.series, DAYS[0], DAYS[-1])
    conn.execute(
        "TRUNCATE kalshi.series, kalshi.events, kalshi.markets, md.trades, "
        "md.candles_1m, meta.import_log"
    )
    conn.commit()
    return data


@pytest.fixture
def server(dataset: KalshiDataset) -> Iterator[KalshiRestServer]:
    # Markets settled before Dec 3 live on the historical tier, as with the real cutoff.
    cutoff = dt.datetime(2024, 12, 3, 12, tzinfo=UTC)
    with KalshiRestServer(
        dataset, cutoff=HistoricalCutoff(cutoff, cutoff, cutoff), read_rate=5000, read_capacity=5000
    ) as srv:
        yield srv


def _client(server: KalshiRestServer) -> KalshiRest:
    return KalshiRest(
        server.url, retry=RetryPolicy(base_delay_s=0.001), read_bucket=TokenBucket(5000, 5000)
    )


@needs_data()
def test_backfill_stores_what_the_exchange_served(
    conn: Conn, dataset: KalshiDataset, server: KalshiRestServer, settings: Settings
) -> None:
    server.fail_next(3, status=429)
    server.fail_next(2, status=503)
    with _client(server) as rest:
        outcomes = backfill_kalshi(conn, rest, DENVER, DAYS, CTX)
    assert [(o.unit, o.status) for o in outcomes] == [(d.isoformat(), "done") for d in DAYS]
    served = {str(t["trade_id"]) for t in dataset.trades}
    stored = {str(r[0]) for r in conn.execute("SELECT trade_id FROM md.trades").fetchall()}
    assert stored == served and len(served) > 1000
    markets = conn.execute(
        "SELECT count(*), count(settled_tmax), count(DISTINCT climate_date) FROM kalshi.markets"
    ).fetchone()
    assert markets == (18, 18, 3)
    candle_volume = conn.execute("SELECT sum(volume) FROM md.candles_1m").fetchone()
    trade_volume = conn.execute("SELECT sum(count_fp) FROM md.trades").fetchone()
    assert candle_volume == trade_volume
    # Resumable: a second run fetches nothing and changes nothing.
    counts = table_row_counts(conn)
    requests = server.stats.requests
    with _client(server) as rest:
        again = backfill_kalshi(conn, rest, DENVER, DAYS, CTX)
    assert {o.status for o in again} == {"skipped"}
    assert server.stats.requests == requests
    assert table_row_counts(conn) == counts


@needs_data()
def test_malformed_payload_fails_the_unit_and_keeps_the_body(
    conn: Conn, server: KalshiRestServer
) -> None:
    with _client(server) as rest:
        server.malformed_next(1, path="/historical/trades")
        outcomes = backfill_kalshi(conn, rest, DENVER, DAYS[:1], CTX)
        assert [o.status for o in outcomes] == ["failed"]
        assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (0,)
        kept = conn.execute("SELECT location, raw IS NOT NULL FROM meta.bad_input").fetchall()
        assert kept == [("kalshi:denver/2024-12-01", True)]
        retry = backfill_kalshi(conn, rest, DENVER, DAYS[:1], CTX)
    assert [o.status for o in retry] == ["done"]
