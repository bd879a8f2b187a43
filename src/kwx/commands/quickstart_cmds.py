"""`kwx quickstart`: kwx's main job, end to end, for one city.

Data in (imported from a directory, or fetched from the public Kalshi, IEM and NWS services),
then the weather model, fusion and the move classifiers fitted on the first 70% of the city's
settled days, and a backtest of the rest with an HTML report. Each step is the same code as
its own command (`kwx import`, `kwx weather fit-params`, `kwx weather backfill`,
`kwx fusion fit|run`, `kwx model train|calibrate`, `kwx backtest`), so any step can be re-run
or inspected on its own.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

QUICKSTART_MC_VERSION = "v1"
QUICKSTART_FUSION_VERSION = "f1"
PUBLIC_SOURCES = ("kalshi", "iem", "cli")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `kwx quickstart` to the top-level app."""
    del bench_app
    app.command("quickstart")(quickstart)


def quickstart(
    city: Annotated[str, typer.Option(help="City key, series or station.")] = "chicago",
    from_files: Annotated[
        Path | None,
        typer.Option(
            "--from-files",
            help="Import this directory (laid out like ../shared/data) instead of fetching.",
        ),
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First climate date (default: all data).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last climate date (default: all data).")
    ] = None,
    days: Annotated[
        int,
        typer.Option(min=10, help="Days to fetch when not importing (ending --to or yesterday)."),
    ] = 60,
    fill_model: Annotated[str, typer.Option(help="taker | maker-a | maker-b | queue")] = "queue",
    out: Annotated[Path, typer.Option(help="Where to write the report.")] = Path(
        "reports/report.html"
    ),
) -> None:
    """The main job: data → weather model → fusion → classifiers → backtest → report.html."""
    from kwx.cli import _fail, _parse_date, console, err, import_files
    from kwx.quickstart import PlanError, make_plan, range_notes
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    started = time.monotonic()
    try:
        target = default_registry().resolve(city)
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    first = _parse_date(date_from, "--from") if date_from else None
    last = _parse_date(date_to, "--to") if date_to else None

    def step(title: str) -> None:
        console.rule(f"[bold]{title}[/]  [dim]{time.monotonic() - started:.0f} s[/]")

    if from_files is not None:
        step(f"1/6 import {from_files}")
        try:
            import_files(from_files, force=False)
        except typer.Exit as exc:
            if exc.exit_code != 1:
                raise
            err.print("[yellow]note[/] some files failed to import; going on with the rest")
    else:
        step(f"1/6 fetch {target.key}: Kalshi market data, IEM observations, CLI reports")
        _fetch(target.key, days, last)
    try:
        migrate.upgrade()
        with connect() as conn:
            plan = make_plan(conn, target, first, last)
    except (PlanError, StoreError) as exc:
        raise _fail(str(exc)) from exc
    for note in range_notes(plan, first, last):
        err.print(f"[yellow]note[/] {note}")
    console.print(
        f"{target.key}: {len(plan.days)} settled days {plan.days[0]} → {plan.days[-1]}; "
        f"fitting on {len(plan.train)} ({plan.train[0]} → {plan.train[-1]}), "
        f"backtesting {len(plan.test)} ({plan.test[0]} → {plan.test[-1]}); observations "
        f"{plan.obs_source}, forecasts {plan.forecast_source}"
    )

    step("2/6 weather model: fit parameters on the history up to the last training day")
    from kwx.cli import weather_backfill, weather_fit_params

    weather_fit_params(
        target.key,
        plan.fit_from.isoformat(),
        plan.fit_to.isoformat(),
        obs_source=plan.obs_source,
        forecast_source=plan.forecast_source,
        version=QUICKSTART_MC_VERSION,
        diurnal_bias=False,
    )
    step("3/6 weather model: p_wx and hazards for every minute of every day")
    weather_backfill(
        target.key,
        plan.days[0].isoformat(),
        plan.days[-1].isoformat(),
        paths=4000,
        mc_version=QUICKSTART_MC_VERSION,
        # The source the measurement model was fitted for, every day.
        obs_source=plan.obs_source,
        forecast_source=plan.forecast_source,
        seed=0,
        params_version=QUICKSTART_MC_VERSION,
    )

    step("4/6 fusion: the anchored pool walked forward, edge cells on the training days")
    _fusion(target.key, plan.train, plan.days[-1])

    step("5/6 move classifiers: train, calibrate on the training days")
    _models(target.key, plan.train[0], plan.train[-1])

    step(f"6/6 backtest {plan.test[0]} → {plan.test[-1]} ({fill_model} fills)")
    report = _backtest(target.key, plan.test[0], plan.test[-1], fill_model, out)
    console.print(
        f"[bold green]done[/] in {time.monotonic() - started:.0f} s — report: "
        f"[bold]{report.resolve()}[/]"
    )
    if plan.obs_source == "era5":
        err.print(
            "note: the intraday observations were the ERA5 hourly proxy at the city centre, "
            "not the settlement station (no sub-hourly station data in the offline set)"
        )


def _fetch(city: str, days: int, last: dt.date | None) -> None:
    from kwx.cli import ingest_backfill

    last = last or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=days - 1)
    ingest_backfill(city, first.isoformat(), last.isoformat(), source=list(PUBLIC_SOURCES))


def _fusion(city: str, train: list[dt.date], last: dt.date) -> None:
    """The market-anchored pool walked forward from the middle of the training days, and the
    edge cells measured on that second half (days the pool never saw): the backtest enters
    only in cells whose gain over the market was above zero there."""
    from kwx.cli import _fail, console
    from kwx.pmf.edge import measure_edge_cells
    from kwx.pmf.fusion import walk_forward
    from kwx.store.engine import StoreError, connect

    edge_from = train[len(train) // 2]
    try:
        with connect(bulk=True) as conn:
            folds = walk_forward(
                conn,
                city,
                train[0],
                last,
                edge_from,
                mc_version=QUICKSTART_MC_VERSION,
                version=QUICKSTART_FUSION_VERSION,
                model="anchored",
            )
            rows = sum(f.rows for f in folds)
            console.print(
                f"anchored pool walked forward in {len(folds)} fold(s) from {edge_from}: "
                f"p_fused written for {rows:,} bracket-minutes"
            )
            cells = measure_edge_cells(
                conn, city, edge_from, train[-1], mc_version=QUICKSTART_MC_VERSION
            )
            opened = [c.label for c in cells if c.open]
            console.print(
                f"edge cells measured on {edge_from} → {train[-1]}: "
                + (
                    f"{len(opened)} of {len(cells)} open ({', '.join(opened)})"
                    if opened
                    else f"none of {len(cells)} open: the strategy will enter nothing"
                )
            )
    except (StoreError, ValueError) as exc:
        raise _fail(f"fusion: {exc}") from exc


def _models(city: str, train_from: dt.date, train_to: dt.date) -> None:
    from kwx.cli import _fail, console
    from kwx.config import get_settings
    from kwx.predict.api import train_and_calibrate
    from kwx.store.engine import StoreError, connect

    try:
        with connect() as conn:
            summary = train_and_calibrate(
                conn,
                get_settings(),
                city,
                train_from,
                train_to,
                mc_version=QUICKSTART_MC_VERSION,
            )
    except (StoreError, ValueError) as exc:
        raise _fail(f"model: {exc}") from exc
    default = summary.get("default", {})
    console.print(
        f"5-minute move classifier: {default.get('model_type')} with "
        f"{default.get('method')} calibration (run {default.get('run_id')})"
    )


def _backtest(city: str, date_from: dt.date, date_to: dt.date, fill_model: str, out: Path) -> Path:
    from kwx.backtest.quote_fit import ensure_quote_model
    from kwx.backtest.report import metrics_json
    from kwx.backtest.runner import run_backtest
    from kwx.cli import _fail, console
    from kwx.config import get_settings
    from kwx.store.engine import StoreError, connect

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with connect() as conn:
            # Quotes no kinder than the book: where the data has no bid/ask the backtest
            # rebuilds it with the quote model fitted on the store's real-quote window.
            console.print(f"  {ensure_quote_model(conn, get_settings())}")
            outcome = run_backtest(
                conn,
                get_settings(),
                city,
                date_from,
                date_to,
                fill_model=fill_model,
                mc_version=QUICKSTART_MC_VERSION,
                report_path=out,
                on_stage=lambda name: console.print(f"  {name}"),
            )
    except (StoreError, ValueError) as exc:
        raise _fail(f"backtest: {exc}") from exc
    for note in outcome.notes:
        console.print(f"  note: {note}")
    # One JSON line for machines: plain stdout, never wrapped to the console's width.
    sys.stdout.write(metrics_json(outcome.metrics) + "\n")
    sys.stdout.flush()
    return outcome.report_path or out
