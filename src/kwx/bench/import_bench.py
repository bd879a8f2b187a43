"""`kwx bench import`: every trade in the shared data into PostgreSQL, then the candle build.

Each run uses a scratch database on the configured server (dropped afterwards), so the
figures are for a first import into empty tables, the case the targets are about.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr
from rich.console import Console

from kwx.config import Settings, get_settings
from kwx.ingest.candles import build_candles_from_trades
from kwx.ingest.file_import import import_directory, infer_missing_markets, plan
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sources.files import FileKind
from kwx.store import migrate
from kwx.store.engine import connect, database_url

TARGET_ROWS_PER_S = 300_000
TARGET_CANDLE_S = 10.0


@contextlib.contextmanager
def scratch_database(settings: Settings) -> Iterator[Settings]:
    """A throw-away database on the same server, migrated to head."""
    base_url = database_url(settings)
    name = f"kwx_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    head, _, query = base_url.partition("?")
    url = head.rsplit("/", 1)[0] + "/" + name + (("?" + query) if query else "")
    scratch = settings.model_copy(update={"kwx_database_url": SecretStr(url)})
    try:
        migrate.upgrade(scratch)
        yield scratch
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _one_run(data_dir: Path, settings: Settings) -> dict[str, float]:
    ctx = ImportContext(default_registry(), settings.top_of_book_timezone)
    known, _ = plan(data_dir / "kalshi")
    with scratch_database(settings) as scratch, connect(scratch, bulk=True) as conn:
        # Market metadata first (not timed): the candle build groups trades by market.
        meta_dir = data_dir / "kalshi" / "markets"
        import_directory(conn, meta_dir, ctx)
        import_directory(conn, data_dir / "kalshi" / "ladders", ctx)
        trade_dir = data_dir / "kalshi" / "trades"
        if not any(kind is FileKind.TRADES for _, kind in known):
            raise FileNotFoundError(f"no trade files under {trade_dir}")
        started = time.perf_counter()
        summary = import_directory(
            conn,
            trade_dir,
            ctx,
            workers=2,
            derive=False,
            connection_factory=lambda: connect(scratch, bulk=True),
        )
        trade_s = time.perf_counter() - started
        rows = sum(o.rows_stored for o in summary.outcomes if o.kind is FileKind.TRADES)
        if summary.failed:
            raise RuntimeError(f"trade import failed: {summary.failed[0].message}")
        infer_missing_markets(conn, ctx)
        started = time.perf_counter()
        with conn.transaction():
            candles = build_candles_from_trades(conn)
        candle_s = time.perf_counter() - started
    return {"rows": rows, "seconds": trade_s, "candles": candles, "candle_seconds": candle_s}


def run_import_benchmark(
    data_dir: Path, *, runs: int = 3, console: Console | None = None
) -> dict[str, Any]:
    settings = get_settings()
    results = []
    for i in range(runs):
        result = _one_run(data_dir.resolve(), settings)
        results.append(result)
        if console is not None:
            console.print(
                f"run {i + 1}/{runs}: {result['rows']:,} trades in "
                f"{result['seconds']:.2f} s ({result['rows'] / result['seconds']:,.0f}"
                f" rows/s); {result['candles']:,} candles in "
                f"{result['candle_seconds']:.2f} s"
            )
    seconds = statistics.median(r["seconds"] for r in results)
    candle_seconds = statistics.median(r["candle_seconds"] for r in results)
    rows = int(results[0]["rows"])
    return {
        "bench": "import",
        "runs": runs,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "candles": int(results[0]["candles"]),
        "candle_seconds": round(candle_seconds, 3),
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "target_candle_seconds": TARGET_CANDLE_S,
        "met": rows / seconds >= TARGET_ROWS_PER_S and candle_seconds <= TARGET_CANDLE_S,
    }
