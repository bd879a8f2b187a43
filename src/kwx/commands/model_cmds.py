"""`kwx model train | sweep | calibrate` (issue 5): cross-bracket move classifiers and their
calibrators."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kwx.commands.errors import fail
from kwx.commands.progress import progress_bar

if TYPE_CHECKING:
    import psycopg

    from kwx.predict.dataset import Dataset
    from kwx.predict.store import RunRecord

console = Console()
err = Console(stderr=True)

CityOpt = Annotated[str, typer.Option("--city", help="City key, series or station.")]
HorizonOpt = Annotated[str, typer.Option("--horizon", help="How far ahead: 1m or 5m.")]
ModelOpt = Annotated[str, typer.Option("--model", help="logreg or gbdt.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="First climate date (default: the city's first).")
]
ToOpt = Annotated[
    str | None, typer.Option("--to", help="Last climate date (default: the city's last).")
]
EpsOpt = Annotated[
    float, typer.Option("--epsilon", help="Drop rows whose mid moves less than this ($).")
]
McOpt = Annotated[str, typer.Option("--mc-version", help="pmf.minute rows of this version.")]


def _fail(message: str) -> typer.Exit:
    return fail(message)  # one line, whatever the console width (kwx.commands.errors)


def _city(city: str) -> str:
    from kwx.registry import UnknownCityError, default_registry

    try:
        return default_registry().resolve(city).key
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc


def _check(horizon: str, model: str | None) -> None:
    from kwx.predict.dataset import horizon_minutes
    from kwx.predict.models import check_model_type

    try:
        horizon_minutes(horizon)
        if model is not None:
            check_model_type(model)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _range(
    conn: psycopg.Connection[tuple[object, ...]], city: str, first: str | None, last: str | None
) -> tuple[dt.date, dt.date]:
    """The --from/--to dates; a missing end is the city's first / last market date."""
    try:
        d_from = dt.date.fromisoformat(first) if first else None
        d_to = dt.date.fromisoformat(last) if last else None
    except ValueError:
        raise _fail(f"--from/--to must be dates like 2024-07-01: {first!r}, {last!r}") from None
    if d_from is None or d_to is None:
        row = conn.execute(
            "SELECT min(m.climate_date), max(m.climate_date) FROM kalshi.markets m "
            "JOIN meta.city c ON c.series_ticker = m.series_ticker WHERE c.key = %s",
            (city,),
        ).fetchone()
        conn.commit()
        if row is None or row[0] is None:
            raise _fail(f"no {city} markets in the store")
        d_from = d_from or row[0]  # type: ignore[assignment]
        d_to = d_to or row[1]  # type: ignore[assignment]
    assert d_from is not None and d_to is not None
    if d_to < d_from:
        raise _fail(f"--to {d_to} is before --from {d_from}")
    return d_from, d_to


@contextmanager
def _progress(label: str) -> Iterator[tuple[Callable[[int], None], Callable[[str, int], None]]]:
    with progress_bar(label, err) as progress:
        task = progress.add_task("", total=None)
        rows = 0

        def start(total: int) -> None:
            progress.update(task, total=total)

        def hook(event: str, n: int) -> None:
            nonlocal rows
            rows += n
            progress.update(task, advance=1, description=f"{event}: {rows:,} labelled rows")

        yield start, hook


def _load(
    conn: psycopg.Connection[tuple[object, ...]],
    city: str,
    d_from: dt.date,
    d_to: dt.date,
    horizon: str,
    epsilon: float,
    mc_version: str,
) -> Dataset:
    from kwx.predict.dataset import build_dataset

    with _progress(f"panels {city} {horizon}") as (start, hook):
        ds = build_dataset(
            conn,
            city,
            d_from,
            d_to,
            horizon=horizon,
            epsilon=epsilon,
            mc_version=mc_version,
            on_event=hook,
            on_start=start,
        )
    info = ds.describe()
    splits: dict[str, Any] = info["splits"]  # type: ignore[assignment]
    console.print(
        f"{city} {horizon} ε={epsilon:g}: {len(ds.rows):,} labelled rows from "
        f"{ds.panel_rows:,} panel rows of {ds.events_read} events in {ds.load_seconds:.1f} s; "
        + "; ".join(
            f"{k} {v['from']} → {v['to']} ({v['rows']:,} rows, {v['positive_rate']:.1%} up)"
            for k, v in splits.items()
        )
    )
    return ds


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4f}"


def _metrics_table(title: str, metrics: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("split", "rows", "up rate", "accuracy", "ROC AUC", "Brier", "ECE10", "ECE20"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, m in metrics.items():
        table.add_row(
            split,
            f"{int(m['n']):,}",
            f"{m['positive_rate']:.3f}",
            _fmt(m["accuracy"]),
            _fmt(m["roc_auc"]),
            _fmt(m["brier"]),
            _fmt(m["ece10"]),
            _fmt(m["ece20"]),
        )
    return table


def model_train(
    city: CityOpt,
    horizon: HorizonOpt = "5m",
    model: ModelOpt = "logreg",
    epsilon: EpsOpt = 0.005,
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    mc_version: McOpt = "v1",
    c: Annotated[float | None, typer.Option("--C", help="logreg: inverse L2 strength.")] = None,
    max_depth: Annotated[int | None, typer.Option(help="gbdt: tree depth.")] = None,
    max_iter: Annotated[int | None, typer.Option(help="gbdt: boosting rounds.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="gbdt: shrinkage.")] = None,
    export_val: Annotated[
        Path | None,
        typer.Option("--export-val", help="Write the validation predictions (.parquet or CSV)."),
    ] = None,
) -> None:
    """Train one classifier of mid moves; metrics on validation and test; record the run."""
    from kwx.config import get_settings
    from kwx.predict.train import export_predictions, train_run
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    key = _city(city)
    _check(horizon, model)
    given = {
        "C": c,
        "max_depth": max_depth,
        "max_iter": max_iter,
        "learning_rate": learning_rate,
    }
    params = {k: v for k, v in given.items() if v is not None}
    try:
        migrate.upgrade()
        with connect() as conn:
            d_from, d_to = _range(conn, key, date_from, date_to)
            ds = _load(conn, key, d_from, d_to, horizon, epsilon, mc_version)
            run, result = train_run(conn, get_settings(), ds, model, params)
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(
        _metrics_table(
            f"run {run.run_id}: {key} {horizon} {model} {result.params} "
            f"(fit {result.fit_seconds:.1f} s)",
            result.metrics,
        )
    )
    console.print(f"model saved to {run.artifact_path}")
    if export_val is not None:
        val = result.predictions[result.predictions["split"] == "val"]
        export_predictions(val, export_val)
        console.print(f"validation predictions ({len(val):,} rows) written to {export_val}")


def _params_text(run: RunRecord) -> str:
    return ", ".join(f"{k}={v}" for k, v in run.params.get("model_params", {}).items())


def model_sweep(
    city: CityOpt,
    horizon: HorizonOpt = "5m",
    model: ModelOpt = "logreg",
    epsilon: EpsOpt = 0.005,
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    mc_version: McOpt = "v1",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line last.")] = False,
) -> None:
    """Train the family's whole grid on one data set; a table sorted by validation Brier."""
    from kwx.config import get_settings
    from kwx.predict.models import sweep_grid
    from kwx.predict.train import sweep_runs
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    key = _city(city)
    _check(horizon, model)
    try:
        migrate.upgrade()
        with connect() as conn:
            d_from, d_to = _range(conn, key, date_from, date_to)
            ds = _load(conn, key, d_from, d_to, horizon, epsilon, mc_version)
            with progress_bar(f"sweep {model}", err) as progress:
                task = progress.add_task("", total=len(sweep_grid(model)))
                runs = sweep_runs(
                    conn,
                    get_settings(),
                    ds,
                    model,
                    on_run=lambda _r: progress.update(task, advance=1),
                )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    ranked = sorted(runs, key=lambda r: (r.val_brier(), r.run_id))
    table = Table(title=f"sweep {key} {horizon} {model}: sorted by validation Brier")
    for col in ("", "run", "params", "val Brier", "val AUC", "val acc", "val ECE10", "test Brier"):
        table.add_column(col, justify="left" if col in ("", "params") else "right")
    for i, run in enumerate(ranked):
        val, test = run.metrics.get("val", {}), run.metrics.get("test", {})
        table.add_row(
            "★ best" if i == 0 else "",
            str(run.run_id),
            _params_text(run),
            _fmt(val.get("brier")),
            _fmt(val.get("roc_auc")),
            _fmt(val.get("accuracy")),
            _fmt(val.get("ece10")),
            _fmt(test.get("brier")),
        )
    console.print(table)
    if as_json:
        print(
            json.dumps(
                {
                    "city": key,
                    "horizon": horizon,
                    "model": model,
                    "best_run": ranked[0].run_id,
                    "runs": [
                        {"run_id": r.run_id, "params": r.params.get("model_params"), **r.metrics}
                        for r in ranked
                    ],
                }
            )
        )


def model_calibrate(
    city: CityOpt,
    horizon: HorizonOpt = "5m",
    model: Annotated[
        str | None, typer.Option("--model", help="logreg or gbdt (default: the best of both).")
    ] = None,
    run_id: Annotated[
        int | None, typer.Option("--run", help="Calibrate this run instead of the best.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory for the PNG.")] = Path(
        "diagnostics"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line last.")] = False,
) -> None:
    """Platt and isotonic on the best run's validation predictions (and the identity),
    scored on test; stored, and the default calibrator of the city and horizon re-chosen."""
    from kwx.predict.calibrate import calibrate_best
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    key = _city(city)
    _check(horizon, model)
    try:
        migrate.upgrade()
        with connect() as conn:
            outcome = calibrate_best(conn, key, horizon, model, run_id=run_id, out_dir=out)
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    run = outcome.run
    table = Table(
        title=f"calibration of run {run.run_id} ({key} {horizon} {run.model_type}, "
        f"{_params_text(run)}): fitted on validation, scored on test"
    )
    for col in ("method", "val Brier", "test Brier", "test ECE10", "test ECE20", "parameters"):
        table.add_column(col, justify="left" if col in ("method", "parameters") else "right")
    for method, res in outcome.results.items():
        params = res.get("params", {})
        if method == "platt":
            text = f"a={params['a']:.4f}, b={params['b']:.4f}"
        elif method == "isotonic":
            text = f"{len(params['x_thresholds'])} thresholds"
        else:
            text = "none (the model's own probability)"
        is_default = (
            outcome.default is not None
            and outcome.default.method == method
            and outcome.default.run_id == run.run_id
        )
        table.add_row(
            method + (" ★ default" if is_default else ""),
            _fmt(res["val"]["brier"]),
            _fmt(res["test"]["brier"]),
            _fmt(res["test"]["ece10"]),
            _fmt(res["test"]["ece20"]),
            text,
        )
    console.print(table)
    d = outcome.default
    if d is not None:
        console.print(
            f"default for {key} {horizon}: {d.model_type} run {d.run_id} + {d.method} "
            f"(test Brier {d.test_brier:.4f}, ECE10 {d.test_ece10:.4f})"
        )
    if outcome.png is not None:
        console.print(f"reliability diagram: {outcome.png}")
    if as_json:
        print(
            json.dumps(
                {
                    "city": key,
                    "horizon": horizon,
                    "run_id": run.run_id,
                    "model_type": run.model_type,
                    "test": {m: r["test"] for m, r in outcome.results.items()},
                    "default": None
                    if d is None
                    else {"model_type": d.model_type, "method": d.method, "run_id": d.run_id},
                }
            )
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    model_app = typer.Typer(no_args_is_help=True, help="Cross-bracket classifiers and calibrators.")
    model_app.command("train")(model_train)
    model_app.command("sweep")(model_sweep)
    model_app.command("calibrate")(model_calibrate)
    app.add_typer(model_app, name="model")
