"""`kwx bench backtest`: one city-year through `run_backtest`, end to end, several times.

Each run is the real command path — bulk load from PostgreSQL, the numpy panel and signals,
the agent with the queue-aware simulated venue, the ledger written to exec.*, metrics and the
HTML report — timed by stage; the figure is the median total. Runs write their rows like any
backtest and remove their exec.* rows afterwards (backtest.runs keeps a row per run, marked
``bench``), so repeated benchmarks do not grow the ledger.

Needs in the store: the city's markets, trades (or 1-minute candles) and pmf.minute rows of
the chosen version for the range; the dev database has chicago 2024-01-14 → 2024-12-31 (v1).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from kwx.backtest.runner import run_backtest
from kwx.config import get_settings
from kwx.registry import default_registry
from kwx.store import migrate
from kwx.store.engine import connect

TARGET_S = 30.0

__all__ = ["TARGET_S", "run_backtest_benchmark"]


def _check_data(
    conn: Any, city: str, first: dt.date, last: dt.date, mc_version: str | None
) -> None:
    series = default_registry().by_key(city).series
    row = conn.execute(
        "SELECT count(*) FROM kalshi.markets WHERE series_ticker = %s "
        "AND climate_date BETWEEN %s AND %s",
        (series, first, last),
    ).fetchone()
    if not row or int(row[0]) == 0:
        raise ValueError(
            f"no {series} markets for {first} → {last}: run kwx import --from-files "
            "../shared/data first"
        )
    if mc_version is not None:
        pmf = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pmf.minute WHERE city = %s AND mc_version = %s)",
            (city, mc_version),
        ).fetchone()
        if not pmf or not pmf[0]:
            raise ValueError(
                f"no pmf.minute rows of version {mc_version!r} for {city}: run kwx weather "
                f"backfill --city {city} --from {first} --to {last} first"
            )
    conn.commit()


def run_backtest_benchmark(
    city: str,
    first: dt.date,
    last: dt.date,
    *,
    fill_model: str = "queue",
    runs: int = 3,
    mc_version: str | None = "v1",
    console: Console | None = None,
) -> dict[str, Any]:
    """Time ``runs`` full backtests; returns the JSON-ready figures."""
    settings = get_settings()
    key = default_registry().resolve(city).key
    migrate.upgrade(settings)
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    outcome = None
    with connect(settings) as conn, tempfile.TemporaryDirectory() as tmp:
        _check_data(conn, key, first, last, mc_version)
        for i in range(runs):
            outcome = run_backtest(
                conn,
                settings,
                key,
                first,
                last,
                fill_model=fill_model,
                mc_version=mc_version,
                report_path=Path(tmp) / f"bench_{i}.html",
            )
            totals.append(outcome.timings["total_s"])
            for name, value in outcome.timings.items():
                stages.setdefault(name, []).append(value)
            for table in ("exec.decisions", "exec.fills", "exec.orders"):
                conn.execute(
                    f"DELETE FROM {table} WHERE mode = 'backtest' AND run_id = %s",
                    (outcome.run_id,),
                )
            conn.execute(
                "UPDATE backtest.runs SET status = 'bench', report_path = NULL WHERE run_id = %s",
                (outcome.run_id,),
            )
            conn.commit()
            if console is not None:
                console.print(
                    f"run {i + 1}/{runs}: {outcome.timings['total_s']:.2f} s "
                    f"(prepare {outcome.timings['prepare_s']:.2f}, agent "
                    f"{outcome.timings['agent_s']:.2f}, report {outcome.timings['report_s']:.2f})"
                )
    assert outcome is not None
    median = statistics.median(totals)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "bench": "backtest",
        "city": key,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "fill_model": fill_model,
        "mc_version": outcome.params.get("mc_version"),
        "climate_days": len({s.climate_date for s in outcome.settlements}),
        "event_minutes_visited": outcome.stats.snapshots,
        "fills": outcome.metrics.n_fills,
        "decisions": sum(outcome.stats.intents.values()),
        "runs": runs,
        "seconds": [round(t, 3) for t in totals],
        "median_s": round(median, 3),
        "stage_median_s": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "target_s": TARGET_S,
        "within_target": median <= TARGET_S,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(load[0], 2),
    }
