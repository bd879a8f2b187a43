"""`kwx bench ingest`: backfill one city-month of Kalshi data from a local rate-limited server.

The server (kwx.sim.kalshi_rest_server) serves real recorded markets, trades and candles
from the shared data and enforces Kalshi's Basic-tier read bucket (200 tokens/s, capacity
400, 10 tokens a request = 20 requests/s), answering 429 exactly as Kalshi does. The client
sizes its own bucket from GET /account/limits; the figures say how close to the allowed
rate it ran and how many 429s it drew (the target is ≥ 90% and none).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console

from kwx.bench.import_bench import scratch_database
from kwx.config import get_settings
from kwx.ingest.backfill import backfill_kalshi, dates_between
from kwx.ingest.file_import import import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sim.kalshi_rest_server import KalshiDataset, KalshiRestServer
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_rest import KalshiRest
from kwx.store.engine import connect

READ_RATE, READ_CAPACITY, COST = 200.0, 400.0, 10
TARGET_RATIO = 0.90
KALSHI_TABLES = "kalshi.series, kalshi.events, kalshi.markets, md.trades, md.candles_1m"


def _dataset(data_dir: Path, series: str, first: dt.date, last: dt.date) -> KalshiDataset:
    """The month's real markets, trades and trade-built candles, loaded via a scratch store."""
    settings = get_settings()
    ctx = ImportContext(default_registry(), settings.top_of_book_timezone)
    with scratch_database(settings) as scratch, connect(scratch, bulk=True) as conn:
        import_directory(conn, data_dir / "kalshi" / "markets", ctx)
        import_directory(conn, data_dir / "kalshi" / "trades", ctx)
        return KalshiDataset.from_store(conn, series, first, last)


def run_ingest_benchmark(
    data_dir: Path,
    *,
    city: str = "new_york",
    month: str = "2024-12",
    runs: int = 3,
    console: Console | None = None,
) -> dict[str, Any]:
    target = default_registry().resolve(city)
    first = dt.date.fromisoformat(month + "-01")
    last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    dataset = _dataset(data_dir.resolve(), target.series, first, last)
    if not dataset.markets:
        raise RuntimeError(f"no {target.series} markets for {month} in {data_dir}")
    allowed = READ_RATE / COST
    settings = get_settings()
    ctx = ImportContext(default_registry(), settings.top_of_book_timezone)
    # /account/limits is authenticated: a throw-away key pair, verified by the server.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = KalshiSigner("bench-key", key)
    results = []
    for i in range(runs):
        with (
            KalshiRestServer(
                dataset,
                read_rate=READ_RATE,
                read_capacity=READ_CAPACITY,
                cost=COST,
                public_key=key.public_key(),
                key_id=signer.key_id,
            ) as server,
            scratch_database(settings) as scratch,
            connect(scratch, bulk=True) as conn,
            KalshiRest(server.url, signer=signer) as rest,
        ):
            rest.size_limits_from_account()
            # Start the client from an empty bucket, as deep into a long backfill: the figure
            # is then the sustained rate the limit allows, not flattered by a full bucket's
            # initial burst.
            rest.read_bucket.acquire(rest.read_bucket.capacity)
            before = server.stats.requests
            started = time.perf_counter()
            outcomes = backfill_kalshi(conn, rest, target, dates_between(first, last), ctx)
            seconds = time.perf_counter() - started
            requests = server.stats.requests - before
            failed = [o for o in outcomes if o.status == "failed"]
            if failed:
                raise RuntimeError(f"backfill failed: {failed[0].message}")
            trades = conn.execute("SELECT count(*) FROM md.trades").fetchone()
            results.append(
                {
                    "requests": requests,
                    "seconds": seconds,
                    "rps": requests / seconds,
                    "r429": server.stats.sent_429,
                    "client_429": rest.rate_limited,
                    "trades": int(str(trades[0])) if trades else 0,
                    "units": len(outcomes),
                }
            )
        if console is not None:
            r = results[-1]
            console.print(
                f"run {i + 1}/{runs}: {r['requests']} requests in {r['seconds']:.1f} s "
                f"= {r['rps']:.2f} req/s (allowed {allowed:.0f}); "
                f"429s: {r['r429']}; trades {r['trades']:,}"
            )
    rps = statistics.median(r["rps"] for r in results)
    return {
        "bench": "ingest",
        "city": target.key,
        "series": target.series,
        "month": month,
        "runs": runs,
        "requests": results[0]["requests"],
        "seconds": round(statistics.median(r["seconds"] for r in results), 2),
        "requests_per_s": round(rps, 2),
        "allowed_per_s": allowed,
        "ratio": round(rps / allowed, 3),
        "r429": max(r["r429"] for r in results),
        "trades": results[0]["trades"],
        "target_ratio": TARGET_RATIO,
        "met": rps / allowed >= TARGET_RATIO and max(r["r429"] for r in results) == 0,
    }
