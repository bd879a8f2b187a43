"""Order-book microstructure commands (issue 18): `kwx bench book-features`, `kwx book …`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def bench_book_features(
    ticker: Annotated[
        str | None, typer.Option("--ticker", help="Market (default: the busiest of --source).")
    ] = None,
    source: Annotated[str, typer.Option("--source", help="l2 | top_of_book | candles")] = (
        "top_of_book"
    ),
    runs: Annotated[int, typer.Option("--runs", min=1)] = 5,
) -> None:
    """Benchmark: one market-day of book events → features (median of runs); JSON line last."""
    from kwx.bench.book_bench import run_book_features_benchmark
    from kwx.store.engine import StoreError

    try:
        figures = run_book_features_benchmark(ticker=ticker, source=source, runs=runs, console=err)
    except (StoreError, ValueError, LookupError) as exc:
        raise _fail(str(exc)) from exc
    print(json.dumps(figures))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    bench_app.command("book-features")(bench_book_features)
