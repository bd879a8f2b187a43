"""`kwx backtest` and `kwx bench backtest` (issue 6)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kwx.commands.errors import fail

console = Console()
err = Console(stderr=True)

FILL_MODEL_HELP = "taker | maker-a | maker-b | queue (see kwx.backtest.fills)."


def _fail(message: str) -> typer.Exit:
    return fail(message)  # one line, whatever the console width (kwx.commands.errors)


def _dates(date_from: str, date_to: str) -> tuple[dt.date, dt.date]:
    try:
        first, last = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    except ValueError:
        raise _fail(
            f"--from/--to must be dates like 2024-09-01: {date_from!r}, {date_to!r}"
        ) from None
    if last < first:
        raise _fail(f"--to {last} is before --from {first}")
    return first, last


def backtest(
    city: Annotated[str, typer.Option("--city", help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from", help="First climate date (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last climate date (YYYY-MM-DD).")],
    fill_model: Annotated[str, typer.Option("--fill-model", help=FILL_MODEL_HELP)] = "queue",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as one JSON line last.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the HTML report.")
    ] = None,
    mc_version: Annotated[
        str | None,
        typer.Option(
            "--mc-version", help="pmf.minute version (default: the fusion's, else most rows)."
        ),
    ] = None,
    horizon: Annotated[
        str, typer.Option("--classifier-horizon", help="Move classifier horizon; 'none' for none.")
    ] = "5m",
    edge_gate: Annotated[
        bool,
        typer.Option(
            "--edge-gate/--no-edge-gate",
            help="Enter only in cells of model.edge_cells whose measured gain of p_fused over "
            "p_mkt is above 0 (kwx fusion edge); --no-edge-gate trades every cell, unmeasured.",
        ),
    ] = True,
) -> None:
    """Backtest the value strategy on a city's climate days; writes an HTML report."""
    from kwx.backtest.fills import FILL_MODELS
    from kwx.backtest.runner import run_backtest
    from kwx.config import get_settings
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect
    from kwx.strategy.config import ExecutionConfig, StrategyConfig

    first, last = _dates(date_from, date_to)
    if fill_model not in FILL_MODELS:
        raise _fail(f"--fill-model {fill_model!r}: choose one of {', '.join(FILL_MODELS)}")
    try:
        key = default_registry().resolve(city).key
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    settings = get_settings()
    try:
        migrate.upgrade(settings)
        with (
            connect(settings) as conn,
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task(f"backtest {key} {first} → {last}", total=None)
            labels = {
                "load": "loading markets, trades, pmf.minute",
                "agent": "running the agent",
                "report": "metrics and report",
            }
            outcome = run_backtest(
                conn,
                settings,
                key,
                first,
                last,
                fill_model=fill_model,
                config=StrategyConfig(execution=ExecutionConfig(edge_gate=edge_gate)),
                mc_version=mc_version,
                classifier_horizon=None if horizon.lower() == "none" else horizon,
                report_path=out,
                on_stage=lambda s: progress.update(task, description=labels.get(s, s)),
            )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc

    m = outcome.metrics
    table = Table(
        title=f"backtest run {outcome.run_id}: {key} {first} → {last}, {fill_model} fills"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("net P&L", f"${m.net_pnl}"),
        ("gross P&L / fees", f"${m.gross_pnl} / ${m.fees}"),
        ("fills (maker / taker)", f"{m.n_fills} ({m.maker_fills} / {m.taker_fills})"),
        (
            "positions, hit rate",
            f"{m.n_positions}, " + (f"{m.hit_rate:.1%}" if m.hit_rate is not None else "—"),
        ),
        ("daily Sharpe", f"{m.sharpe_daily:.2f}" if m.sharpe_daily is not None else "—"),
        ("max drawdown", f"${m.max_drawdown}"),
        ("time", f"{outcome.timings['total_s']:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if outcome.edge is not None and outcome.edge.block is not None:
        console.print(f"[bold yellow]{outcome.edge.block}[/]")
    for note in outcome.notes:
        console.print(f"[dim]• {note}[/]")
    if outcome.report_path is not None:
        console.print(f"report: [bold]{outcome.report_path.resolve()}[/]")
    if as_json:
        print(json.dumps(outcome.metrics_dict(), allow_nan=False, separators=(",", ":")))


def bench_backtest(
    city: Annotated[str, typer.Option("--city")] = "chicago",
    date_from: Annotated[str, typer.Option("--from")] = "2024-01-14",
    date_to: Annotated[str, typer.Option("--to")] = "2024-12-31",
    fill_model: Annotated[str, typer.Option("--fill-model", help=FILL_MODEL_HELP)] = "queue",
    runs: Annotated[int, typer.Option("--runs", min=1)] = 3,
    mc_version: Annotated[str | None, typer.Option("--mc-version")] = "v1",
) -> None:
    """Benchmark: a city-year backtest end to end (median of runs); one JSON line last.

    Needs in the store: the city's markets, trades (or candles) and pmf.minute rows of
    ``--mc-version`` for the range — `kwx import --from-files ../shared/data` and
    `kwx weather backfill` give them (the dev database has chicago 2024-01-14 → 2024-12-31).
    """
    from kwx.bench.backtest_bench import run_backtest_benchmark
    from kwx.store.engine import StoreError

    first, last = _dates(date_from, date_to)
    try:
        figures = run_backtest_benchmark(
            city, first, last, fill_model=fill_model, runs=runs, mc_version=mc_version, console=err
        )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    print(json.dumps(figures))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    app.command("backtest")(backtest)
    bench_app.command("backtest")(bench_backtest)
