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
    book_app = typer.Typer(no_args_is_help=True, help="Order-book microstructure (issue 18).")
    book_app.command("gain")(book_gain_cmd)
    book_app.command("fill-check")(fill_check_cmd)
    app.add_typer(book_app, name="book")


def book_gain_cmd(
    dataset: Annotated[
        str, typer.Option("--dataset", help="all | chicago-candles | ny-top-of-book")
    ] = "all",
    horizons: Annotated[str, typer.Option("--horizon", help="1m, 5m or both (1m,5m).")] = "1m,5m",
    model: Annotated[str, typer.Option("--model", help="logreg | gbdt")] = "logreg",
    n_boot: Annotated[int, typer.Option("--bootstrap", min=50, help="Bootstrap draws.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line last.")] = False,
) -> None:
    """The move classifiers with and without book features on the days with real quotes:
    walk-forward by day, AUC / Brier / ECE and their differences with 95 % day-bootstrap
    intervals (see kwx.predict.book_gain)."""
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from kwx.commands.progress import progress_bar
    from kwx.config import get_settings
    from kwx.predict.book_gain import DATASETS, book_gain, load_feature_rows
    from kwx.predict.dataset import horizon_minutes
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    names = list(DATASETS) if dataset == "all" else [dataset]
    wanted = [h.strip() for h in horizons.split(",") if h.strip()]
    try:
        for name in names:
            if name not in DATASETS:
                raise ValueError(f"--dataset must be all or one of {', '.join(DATASETS)}")
        for h in wanted:
            horizon_minutes(h)
        settings = get_settings()
        migrate.upgrade(settings)
        results = []
        with connect(settings) as conn:
            for name in names:
                with progress_bar(f"{name}: book features", err) as progress:
                    task = progress.add_task(name, total=None)

                    def started(n: int, t: TaskID = task, p: Progress = progress) -> None:
                        p.update(t, total=n)

                    def advanced(_m: str, t: TaskID = task, p: Progress = progress) -> None:
                        p.advance(t)

                    rows = load_feature_rows(conn, name, on_start=started, on_market=advanced)
                for h in wanted:
                    err.print(f"{name} {h}: walk-forward and bootstrap …")
                    results.append(book_gain(rows, name, h, model, n_boot=n_boot))
    except (StoreError, ValueError, LookupError) as exc:
        raise _fail(str(exc)) from exc

    table = Table(title=f"book features: out-of-sample gain ({model}, walk-forward by day)")
    for col in ("data", "Δ", "days", "rows", "AUC w/o", "AUC with", "ΔAUC [95%]", "ΔBrier [95%]"):
        table.add_column(col, justify="right")
    table.add_column("ECE w/o → with", justify="right")
    table.add_column("verdict")
    for r in results:
        d_auc, d_brier = r.delta["roc_auc"], r.delta["brier"]
        table.add_row(
            r.dataset,
            r.horizon,
            str(r.test_days),
            f"{r.test_rows:,}",
            f"{r.without['roc_auc']:.3f}",
            f"{r.with_book['roc_auc']:.3f}",
            f"{d_auc[0]:+.3f} [{d_auc[1]:+.3f}, {d_auc[2]:+.3f}]",
            f"{d_brier[0]:+.4f} [{d_brier[1]:+.4f}, {d_brier[2]:+.4f}]",
            f"{r.without['ece10']:.3f} → {r.with_book['ece10']:.3f}",
            r.verdict,
        )
    console.print(table)
    console.print(
        "[dim]Both variants see the same rows; 'without' = the classifier's market kinematics "
        "from the same quotes. Target: ΔAUC ≥ 0.05 with its interval above 0.[/]"
    )
    if as_json:
        print(json.dumps({"book_gain": [r.as_dict() for r in results]}, allow_nan=False))


def fill_check_cmd(
    dataset: Annotated[
        str, typer.Option("--dataset", help="all | chicago-candles | ny-top-of-book")
    ] = "all",
    rest_min: Annotated[
        int, typer.Option("--rest-min", min=1, help="Minutes each order rests.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line last.")] = False,
) -> None:
    """Maker orders joining the bid each minute: the fills the queue model grants vs what the
    recorded book allows (see kwx.backtest.fill_check)."""
    from rich.table import Table

    from kwx.backtest.fill_check import DATASETS, run_fill_check
    from kwx.config import get_settings
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    names = list(DATASETS) if dataset == "all" else [dataset]
    try:
        settings = get_settings()
        migrate.upgrade(settings)
        with connect(settings) as conn:
            results = []
            for name in names:
                err.print(f"{name}: placing orders …")
                results.append(run_fill_check(conn, name, rest_min=rest_min).as_dict())
    except (StoreError, ValueError, LookupError) as exc:
        raise _fail(str(exc)) from exc
    table = Table(title=f"fill realism: queue model vs the recorded book ({rest_min}-min orders)")
    for col in ("data", "markets", "orders", "granted", "contradicted [95%]", "book allows"):
        table.add_column(col, justify="right")
    table.add_column("allowed, not granted", justify="right")
    for r in results:
        lo, hi = r["fraction_contradicted_95"]
        frac = r["fraction_contradicted"]
        contradicted = (
            f"{r['granted_contradicted']:,} = {frac:.1%} [{lo:.1%}, {hi:.1%}]"
            if frac is not None
            else "— (nothing granted)"
        )
        table.add_row(
            r["dataset"],
            str(r["markets"]),
            f"{r['orders']:,}",
            f"{r['granted_orders']:,}",
            contradicted,
            f"{r['book_allowed_orders']:,}",
            f"{r['allowed_not_granted']:,}"
            + (f" = {missed:.1%}" if (missed := r["fraction_allowed_missed"]) is not None else ""),
        )
    console.print(table)
    if as_json:
        print(json.dumps({"fill_check": results}))
