"""`kwx evaluate` and `kwx bench evaluate` (issue 13): every city scored out of sample."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from kwx.evaluate.plan import CityPlan, Skipped

console = Console()
err = Console(stderr=True)

FILL_MODELS_HELP = "Fill models to backtest with (repeat); default every one."


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _dates(date_from: str, date_to: str) -> tuple[dt.date, dt.date]:
    try:
        first, last = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    except ValueError:
        raise _fail(
            f"--from/--to must be dates like 2024-07-01: {date_from!r}, {date_to!r}"
        ) from None
    if last < first:
        raise _fail(f"--to {last} is before --from {first}")
    return first, last


def run_evaluation(
    first: dt.date,
    last: dt.date,
    cities: list[str] | None,
    *,
    fill_models: list[str] | None,
    mc_version: str,
    step_days: int,
    train_days: int,
    paths: int,
    out: Path,
    weather_fit_days: int = 548,
) -> dict[str, Any]:
    """Plan, run and summarise; the page is written to `out`. Raises ValueError on input."""
    from kwx.backtest.fills import FILL_MODELS
    from kwx.backtest.quote_fit import ensure_quote_model
    from kwx.config import get_settings
    from kwx.evaluate.page import write_page
    from kwx.evaluate.plan import plan_all
    from kwx.evaluate.run import evaluate_city
    from kwx.evaluate.summary import summarise
    from kwx.registry import default_registry
    from kwx.store import migrate
    from kwx.store.engine import connect

    registry = default_registry()
    chosen = [registry.resolve(c) for c in cities] if cities else None
    models = fill_models or list(FILL_MODELS)
    unknown = [m for m in models if m not in FILL_MODELS]
    if unknown:
        raise ValueError(f"--fill-model {unknown[0]!r} is not one of {', '.join(FILL_MODELS)}")
    migrate.upgrade()
    settings = get_settings()
    started = time.monotonic()
    with connect(bulk=True) as conn:
        quote_line = ensure_quote_model(conn, settings)
        err.print(quote_line)
        plans, skipped = plan_all(
            conn,
            registry,
            first,
            last,
            chosen,
            train_days=train_days,
            weather_fit_days=weather_fit_days,
        )
        _print_plan(plans, skipped)
        if not plans:
            raise ValueError(
                f"no city can be evaluated over {first} → {last}"
                + "".join(f"; {s.reason}" for s in skipped)
            )
        results = []
        for plan in plans:
            results.append(
                evaluate_city(
                    conn,
                    settings,
                    plan,
                    mc_version=mc_version,
                    fill_models=models,
                    step_days=step_days,
                    paths=paths,
                    out_dir=out.parent,
                    on_stage=lambda name: err.print(
                        f"[dim]{time.monotonic() - started:6.0f} s[/]  {name}"
                    ),
                )
            )
    summary = summarise(results, skipped, first, last)
    summary["quote_model"] = quote_line
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["page"] = str(write_page(summary, out).resolve())
    return summary


def _print_plan(plans: list[CityPlan], skipped: list[Skipped]) -> None:
    for p in plans:
        err.print(
            f"{p.city.key}: scoring {len(p.scored)} days {p.scored[0]} → {p.scored[-1]}; "
            f"every fit ends {p.fit_to} (weather from {p.weather_from}, "
            f"{len(p.train)} training days)"
        )
    for s in skipped:
        err.print(f"[yellow]not evaluated[/] {s.reason}")


def _print_summary(summary: dict[str, Any]) -> None:
    for city in summary["cities"]:
        table = Table(title=f"{city['city']}: p_fused vs p_mkt, out of sample")
        for col in ("hour", "events", "p_fused", "p_mkt", "p_wx", "gain [95%]", "verdict"):
            table.add_column(col, justify="right")
        for h in city["hours"]:
            ll = h["log_loss"]
            lo, hi = h["gain_ci"]
            table.add_row(
                h["hour"],
                str(h["n_events"]),
                _f(ll.get("p_fused_norm")),
                _f(ll.get("p_mkt")),
                _f(ll.get("p_wx")),
                f"{_f(h['gain_vs_mkt'])} [{_f(lo)}, {_f(hi)}]",
                h["verdict"],
            )
        console.print(table)
        for fm, b in city["backtests"].items():
            console.print(
                f"  backtest {fm}: net {b['net_pnl']} $ on {b['contracts_traded']} contracts "
                f"({b['net_pnl_per_contract']} $/contract), Sharpe {_f(b['sharpe_daily'], 2)}"
            )
    for t in summary["targets"]:
        mark = "[green]met[/]" if t["met"] else "[red]missed[/]"
        console.print(f"{mark}  {t['target']}: {t['value']}")
    console.print(f"page: [bold]{summary['page']}[/]")


def _f(value: object, digits: int = 4) -> str:
    return "—" if value is None else f"{float(str(value)):.{digits}f}"


def evaluate(
    date_from: Annotated[str, typer.Option("--from", help="First scored climate date.")],
    date_to: Annotated[str, typer.Option("--to", help="Last scored climate date.")],
    city: Annotated[
        list[str] | None,
        typer.Option("--city", help="City (repeat); default every city with settled markets."),
    ] = None,
    fill_model: Annotated[
        list[str] | None, typer.Option("--fill-model", help=FILL_MODELS_HELP)
    ] = None,
    mc_version: Annotated[
        str, typer.Option("--mc-version", help="Version tag of everything this run writes.")
    ] = "eval",
    step_days: Annotated[int, typer.Option(min=1, help="Walk-forward fold length.")] = 30,
    train_days: Annotated[
        int, typer.Option(min=20, help="Days before --from the pool and classifiers train on.")
    ] = 180,
    paths: Annotated[int, typer.Option(min=100, help="Monte Carlo paths per day.")] = 4000,
    weather_fit_days: Annotated[
        int, typer.Option(min=60, help="Weather history before --from the model is fitted on.")
    ] = 548,
    out: Annotated[Path, typer.Option(help="The HTML page.")] = Path("reports/evaluate.html"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line last.")] = False,
) -> None:
    """Walk-forward evaluation of every stage on days no fit has seen: p_fused vs p_mkt vs
    p_wx by local hour with event-bootstrap intervals, Brier, ECE, CRPS of the Tmax
    distribution, backtests per fill model; an HTML page and (with --json) one JSON line."""
    from kwx.quickstart import PlanError
    from kwx.registry import UnknownCityError
    from kwx.store.engine import StoreError

    first, last = _dates(date_from, date_to)
    try:
        summary = run_evaluation(
            first,
            last,
            city,
            fill_models=fill_model,
            mc_version=mc_version,
            step_days=step_days,
            train_days=train_days,
            paths=paths,
            out=out,
            weather_fit_days=weather_fit_days,
        )
    except (StoreError, ValueError, PlanError, UnknownCityError) as exc:
        raise _fail(str(exc)) from exc
    _print_summary(summary)
    if as_json:
        print(json.dumps(summary, allow_nan=False, separators=(",", ":"), default=str))


def bench_evaluate(
    city: Annotated[str, typer.Option("--city")] = "chicago",
    date_from: Annotated[str, typer.Option("--from")] = "2024-07-01",
    date_to: Annotated[str, typer.Option("--to")] = "2024-12-31",
    fill_model: Annotated[str, typer.Option("--fill-model")] = "queue",
    paths: Annotated[int, typer.Option(min=100)] = 4000,
) -> None:
    """Benchmark: `kwx evaluate` for one city over a range (default a half-year: the issue's
    bar is a city-year in ≤ 10 minutes); one JSON line last with seconds per stage.

    Needs the shared data imported (`kwx import --from-files ../shared/data`)."""
    from kwx.quickstart import PlanError
    from kwx.store.engine import StoreError

    first, last = _dates(date_from, date_to)
    try:
        summary = run_evaluation(
            first,
            last,
            [city],
            fill_models=[fill_model],
            mc_version="bench-eval",
            step_days=30,
            train_days=180,
            paths=paths,
            out=Path("reports/bench_evaluate.html"),
        )
    except (StoreError, ValueError, PlanError) as exc:
        raise _fail(str(exc)) from exc
    figures: dict[str, Any] = {
        "bench": "evaluate",
        "city": city,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "scored_days": sum(c["n_scored_days"] for c in summary["cities"]),
        "seconds": summary["seconds"],
        "stages_s": {c["city"]: c["timings_s"] for c in summary["cities"]},
    }
    print(json.dumps(figures))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `kwx evaluate` and `kwx bench evaluate`."""
    app.command("evaluate")(evaluate)
    bench_app.command("evaluate")(bench_evaluate)
