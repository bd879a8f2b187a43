"""`kwx bench book-features`: one market-day of book events from the store into features.

A "market-day" is one market over its whole recorded life (a New York top-of-book market is
quoted from 10:00 ET the day before its climate day to its close, ~38 hours, ~2,000–15,000
touch changes). Each run reads the market's events from PostgreSQL (`load_market_book`) and
computes every book feature on its 1-minute grid (`book_features`, Hawkes refits included);
``seconds_per_market_day`` is the median of the runs' load + compute time. The default market
is the one with the most events of the chosen source, the hardest case in the store.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Final

from rich.console import Console

from kwx.config import Settings, get_settings
from kwx.features.book import book_features
from kwx.features.book_data import SOURCES, BookSource, load_market_book
from kwx.store import migrate
from kwx.store.engine import connect

TARGET_S: Final = 1.0

__all__ = ["TARGET_S", "run_book_features_benchmark"]


def _busiest(conn: Any, source: BookSource) -> str:
    table = {
        "l2": "md.orderbook_delta",
        "top_of_book": "md.top_of_book",
        "candles": "md.candles_1m",
    }[source]
    row = conn.execute(
        f"SELECT ticker FROM {table} GROUP BY ticker ORDER BY count(*) DESC, ticker LIMIT 1"
    ).fetchone()
    conn.commit()
    if row is None:
        raise ValueError(
            f"no {source} rows in the store: `kwx import --from-files ../shared/data` first"
        )
    return str(row[0])


def run_book_features_benchmark(
    *,
    ticker: str | None = None,
    source: str = "top_of_book",
    runs: int = 5,
    settings: Settings | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Median seconds to load and featurise one market-day (see the module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if runs < 1:
        raise ValueError(f"runs must be ≥ 1, got {runs}")
    src: BookSource = source
    settings = settings or get_settings()
    migrate.upgrade(settings)
    loads: list[float] = []
    computes: list[float] = []
    with connect(settings) as conn:
        market = ticker or _busiest(conn, src)
        book = load_market_book(conn, market, src)  # warm-up: numba compiles or loads its cache
        book_features(book.minute_ends(), book.quotes, book.trades, book.cancels)
        for k in range(runs):
            t0 = time.perf_counter()
            book = load_market_book(conn, market, src)
            conn.commit()
            t1 = time.perf_counter()
            grid = book.minute_ends()
            feats = book_features(grid, book.quotes, book.trades, book.cancels)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            computes.append(t2 - t1)
            if console is not None:
                console.print(f"run {k + 1}/{runs}: load {t1 - t0:.3f} s, features {t2 - t1:.3f} s")
    totals = [a + b for a, b in zip(loads, computes, strict=True)]
    median = statistics.median(totals)
    return {
        "benchmark": "book-features",
        "ticker": market,
        "source": book.source,
        "quote_events": int(book.quotes.t_ns.size),
        "trades": 0 if book.trades is None else int(book.trades.t_ns.size),
        "minutes": int(grid.size),
        "aggressive_events": feats.aggressive_source,
        "hawkes_fits": len(feats.hawkes_fits),
        "runs": runs,
        "load_seconds": round(statistics.median(loads), 4),
        "features_seconds": round(statistics.median(computes), 4),
        "seconds_per_market_day": round(median, 4),
        "target_seconds": TARGET_S,
        "meets_target": median <= TARGET_S,
    }
