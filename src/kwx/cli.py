"""The `kwx` command line: one Typer app with a sub-app per area."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from kwx.commands.progress import progress_bar
from kwx.config import get_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="kwx: trade Kalshi's daily-high temperature brackets.",
)
db_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL store.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON line last.")
ingest_app = typer.Typer(no_args_is_help=True, help="Fetch data from the real services.")
weather_app = typer.Typer(no_args_is_help=True, help="The weather model.")
diag_app = typer.Typer(no_args_is_help=True, help="Diagnostics of the weather model.")
weather_app.add_typer(diag_app, name="diag")
app.add_typer(weather_app, name="weather")
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")
app.add_typer(bench_app, name="bench")

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    from kwx.commands.errors import fail

    return fail(message)


@app.command()
def cities() -> None:
    """The bundled city registry: series, settlement station, time zone."""
    from kwx.domain.climate_day import standard_offset
    from kwx.registry import default_registry

    table = Table(title="KXHIGH cities")
    for col in (
        "key",
        "name",
        "series",
        "legacy",
        "station",
        "CLI",
        "time zone",
        "LST offset",
        "lat",
        "lon",
        "verification",
    ):
        table.add_column(col)
    for city in default_registry():
        hours = standard_offset(city.timezone).total_seconds() / 3600
        table.add_row(
            city.key,
            city.name,
            city.series,
            city.legacy_prefix,
            city.station_icao,
            city.cli_product,
            city.timezone,
            f"UTC{hours:+.0f}",
            f"{city.lat:.4f}",
            f"{city.lon:.4f}",
            city.verification,
        )
    console.print(table)


@app.command("config")
def show_config() -> None:
    """The settings in force (secrets masked)."""
    table = Table(title="kwx settings")
    table.add_column("setting")
    table.add_column("value")
    for name, value in get_settings().describe().items():
        table.add_row(name, value)
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schemas to the latest version."""
    from kwx.store import migrate
    from kwx.store.engine import StoreError, server_info

    try:
        migrate.upgrade()
        info = server_info()
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"database at {info.location} ({'embedded' if info.embedded else 'external'})"
        f" is at revision {migrate.current_revision()}"
    )


@db_app.command("status")
def db_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Where the server is, the schema revision, and row counts per table."""
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect, server_info
    from kwx.store.status import table_row_counts

    try:
        info = server_info()
        with connect() as conn:
            counts = table_row_counts(conn)
        revision = migrate.current_revision()
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        print(
            json.dumps(
                {
                    "server": info.location,
                    "embedded": info.embedded,
                    "database": info.database,
                    "revision": revision,
                    "tables": counts,
                }
            )
        )
        return
    console.print(f"server:   {info.location} ({'embedded' if info.embedded else 'external'})")
    console.print(
        f"database: {info.database}   revision: {revision or '(none: run kwx db upgrade)'}"
        f"   head: {migrate.head_revision()}"
    )
    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (it is left running between commands)."""
    from kwx.store.engine import StoreError, stop_embedded_server

    try:
        stopped = stop_embedded_server()
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print("stopped" if stopped else "no embedded server was running")


@app.command("import")
def import_files(
    from_files: Annotated[
        Path,
        typer.Option(
            "--from-files", help="Directory laid out like ../shared/data (searched recursively)."
        ),
    ],
    force: Annotated[bool, typer.Option(help="Re-import files already imported.")] = False,
) -> None:
    """Bulk-import markets, trades, candles, books, settlements, forecasts and ERA5."""
    from kwx.ingest.file_import import FileOutcome, import_directory
    from kwx.ingest.normalize import ImportContext
    from kwx.registry import default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    settings = get_settings()
    if not from_files.is_dir():
        raise _fail(f"{from_files} is not a directory")
    try:
        migrate.upgrade()
        ctx = ImportContext(default_registry(), settings.top_of_book_timezone)
        with (
            connect(bulk=True) as conn,
            progress_bar("import", err) as progress,
        ):
            task = progress.add_task("", total=None)

            def planned(n: int) -> None:
                progress.update(task, total=n)

            def done(outcome: FileOutcome) -> None:
                progress.update(
                    task,
                    advance=1,
                    description=f"{outcome.path.name}: {outcome.status} {outcome.rows_read:,} rows",
                )

            summary = import_directory(
                conn,
                from_files.resolve(),
                ctx,
                force=force,
                on_file=done,
                on_plan=planned,
                connection_factory=lambda: connect(bulk=True),
            )
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    table = Table(title="import summary")
    for col in ("status", "files", "rows read", "rows stored"):
        table.add_column(col, justify="right" if col != "status" else "left")
    for status in ("imported", "unchanged", "skipped", "failed"):
        group = summary.by_status(status)
        table.add_row(
            status,
            str(len(group)),
            f"{sum(o.rows_read for o in group):,}",
            f"{sum(o.rows_stored for o in group):,}",
        )
    console.print(table)
    console.print(
        f"markets inferred from tickers: {summary.markets_inferred:,}; "
        f"candles built from trades: {summary.candles_built:,} "
        f"({summary.candle_seconds:.1f} s)"
    )
    for error in summary.inference_errors:
        err.print(f"[yellow]warning[/] {error}")
    for outcome in summary.by_status("imported"):
        if outcome.message:
            err.print(f"[yellow]note[/] {outcome.path}: {outcome.message}")
    for outcome in summary.by_status("skipped"):
        console.print(f"[dim]skipped {outcome.path}: {outcome.message}[/]")
    for outcome in summary.failed:
        err.print(f"[bold red]failed[/] {outcome.message}")
    if summary.failed:
        err.print(
            f"{len(summary.failed)} file(s) failed; nothing of them was written "
            "(see meta.bad_input). The other files were imported."
        )
        raise typer.Exit(1)


def _parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option} must be a date like 2024-07-01, not {value!r}") from None


@ingest_app.command("backfill")
def ingest_backfill(
    city: Annotated[
        str, typer.Option(help="City key, series, station (chicago, KXHIGHCHI, KMDW …).")
    ],
    date_from: Annotated[str, typer.Option("--from", help="First climate date (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last climate date (YYYY-MM-DD).")],
    source: Annotated[
        list[str] | None, typer.Option(help="kalshi, iem, cli, nws, vc (repeatable); default all.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Fetch units already complete again.")] = False,
) -> None:
    """Backfill a city's markets, trades, candles, observations and CLI reports (resumable)."""
    from kwx.ingest.backfill import SOURCES, UnitOutcome, run_backfill
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError

    try:
        target = default_registry().resolve(city)
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    first, last = _parse_date(date_from, "--from"), _parse_date(date_to, "--to")
    if last < first:
        raise _fail("--to is before --from")
    sources = tuple(source or SOURCES)
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise _fail(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    days = (last - first).days + 1
    try:
        migrate.upgrade()
        with progress_bar("{task.fields[source]}", err) as progress:
            tasks = {s: progress.add_task("", total=days, source=s) for s in sources}

            def done(outcome: UnitOutcome) -> None:
                progress.update(
                    tasks[outcome.source],
                    advance=1,
                    description=f"{outcome.unit} {outcome.status} {outcome.rows:,}",
                )

            summary = run_backfill(
                get_settings(), target, first, last, sources, force=force, on_unit=done
            )
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    table = Table(title=f"backfill {target.key} {first} → {last}")
    for col in ("source", "done", "partial", "skipped", "failed", "rows"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for src in sources:
        mine = [o for o in summary.outcomes if o.source == src]
        table.add_row(
            src,
            *(
                str(sum(1 for o in mine if o.status == st))
                for st in ("done", "partial", "skipped", "failed")
            ),
            f"{sum(o.rows for o in mine):,}",
        )
    console.print(table)
    for outcome in summary.outcomes:
        if outcome.status == "failed":
            err.print(f"[bold red]failed[/] {outcome.source} {outcome.unit}: {outcome.message}")
    if summary.count("failed"):
        err.print("failed units were kept in meta.bad_input; re-run to retry them")


@ingest_app.command("run")
def ingest_run(
    city: Annotated[
        list[str] | None, typer.Option(help="Cities to follow (repeatable); default chicago.")
    ] = None,
    once: Annotated[bool, typer.Option(help="Run every job once and exit.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    ws: Annotated[
        bool,
        typer.Option(
            help="Record the WebSocket stream (order book deltas, trades); needs Kalshi API keys."
        ),
    ] = True,
) -> None:
    """Continuous ingest: candles and trades every minute, observations every 2 minutes,
    the NWS forecast hourly, CLI reports each morning, markets every 15 minutes, and the
    WebSocket recorder for the open markets when Kalshi keys are configured."""
    from kwx.ingest.continuous import ContinuousIngest, JobRun, run_forever
    from kwx.ingest.normalize import ImportContext
    from kwx.registry import UnknownCityError, default_registry
    from kwx.sources.iem import IemClient
    from kwx.sources.kalshi_rest import KalshiRest
    from kwx.sources.nws import NwsClient
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    settings = get_settings()
    registry = default_registry()
    try:
        targets = [registry.resolve(c) for c in (city or ["chicago"])]
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc

    def report(runs: list[JobRun]) -> None:
        for run in runs:
            if run.error:
                err.print(f"[red]{run.job} {run.city}: {run.error}[/]")
            elif run.rows:
                console.print(f"{run.job} {run.city}: {run.rows:,} rows")

    try:
        migrate.upgrade()
        with (
            connect(bulk=True) as conn,
            KalshiRest.from_settings(settings) as kalshi,
            IemClient.from_settings(settings) as iem,
            NwsClient.from_settings(settings) as nws,
        ):
            ingest = ContinuousIngest(
                conn, targets, ImportContext(registry), kalshi=kalshi, iem=iem, nws=nws
            )
            report(ingest.run_due(dt.datetime.now(dt.UTC)))  # markets first: WS needs them
            if once:
                return
            recorder = None
            has_keys = settings.kalshi_api_key_id is not None and settings.kalshi_private_key_path
            if ws and has_keys:
                from kwx.ingest.ws_thread import RecorderThread

                tickers = ingest.open_tickers(dt.datetime.now(dt.UTC))
                recorder = RecorderThread(settings, tickers).start()
                console.print(f"WebSocket recorder on {len(tickers)} open markets")
            elif ws:
                console.print("no Kalshi API keys: WebSocket recorder off, REST polling only")
            console.print(f"following {', '.join(c.key for c in targets)}; Ctrl-C stops")
            try:
                run_forever(ingest, duration_s=duration, on_runs=report)
            finally:
                if recorder is not None:
                    recorder.stop()
                    if recorder.error is not None:
                        err.print(f"[red]WebSocket recorder: {recorder.error}[/]")
    except StoreError as exc:
        raise _fail(str(exc)) from exc


@weather_app.command("fit-params")
def weather_fit_params(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from", help="First climate date.")],
    date_to: Annotated[str, typer.Option("--to", help="Last climate date.")],
    obs_source: Annotated[
        str, typer.Option(help="Observation source (asos1min, metar, era5 …).")
    ] = "era5",
    forecast_source: Annotated[str, typer.Option(help="Baseline forecast source.")] = "vc",
    version: Annotated[str, typer.Option(help="Parameter version to write.")] = "v1",
    diurnal_bias: Annotated[
        bool,
        typer.Option(
            help="Also fit and apply a mean residual by local hour (off: it made the ERA5 "
            "proxy's morning forecasts worse in Chicago 2024)."
        ),
    ] = False,
    tmax_shift: Annotated[
        bool,
        typer.Option(
            help="Then calibrate the whole model by hour of day: run it over the fit range "
            "and fit one shift of the official-value pmf per hour (tens of seconds for "
            "a city-year)."
        ),
    ] = True,
) -> None:
    """Fit the residual AR(1) by lead from the anchor and the measurement model; store both,
    then the calibration shift by hour (unless --no-tmax-shift)."""
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect
    from kwx.weather.pipeline import fit_all

    try:
        target = default_registry().resolve(city)
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    first, last = _parse_date(date_from, "--from"), _parse_date(date_to, "--to")
    try:
        migrate.upgrade()
        with connect() as conn, Progress(console=err, transient=True) as progress:
            task = progress.add_task("calibration by hour", total=None, visible=False)
            summary = fit_all(
                conn,
                target,
                first,
                last,
                obs_source=obs_source,
                forecast_source=forecast_source,
                version=version,
                diurnal_bias=diurnal_bias,
                tmax_shift=tmax_shift,
                on_calibration_start=lambda n: progress.update(task, total=n, visible=True),
                on_calibration_day=lambda _day: progress.advance(task),
            )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    fits, bias, dist, shifts = summary.fits, summary.bias, summary.measurement, summary.shifts
    table = Table(title=f"AR(1) residual params, {target.key} {obs_source} − {forecast_source}")
    for col in (
        "lead from anchor",
        "ρ per minute",
        "σ per minute (°F)",
        "a at bucket end",
        "pairs",
    ):
        table.add_column(col, justify="right")
    for fit in fits:
        table.add_row(
            fit.bucket,
            f"{fit.rho:.6f}",
            f"{fit.sigma:.4f}",
            f"{fit.rho_step:.4f} ({fit.step_min:.0f} min)" if fit.n_obs else "as above",
            f"{fit.n_obs:,}",
        )
    console.print(table)
    if diurnal_bias:
        console.print(
            f"diurnal bias ({obs_source} − {forecast_source}) by local hour: "
            + " ".join(f"{h:02d}:{b:+.1f}" for h, b in enumerate(bias))
        )
    console.print(
        f"measurement model ({obs_source}): official − observed max over "
        f"{dist.n_days} days: mean {dist.mean:+.2f} °F, sd {dist.sd:.2f}, "
        f"5–95% [{dist.quantile(0.05):+d}, {dist.quantile(0.95):+d}]"
    )
    if shifts is not None:
        console.print(
            f"calibration by hour over {shifts.n_days} days, shift °F (log-loss of the settled "
            "value before → after): "
            + "  ".join(
                f"{h:02d}: {shifts.shift[h]:+.2f} ({shifts.log_loss_before[h]:.2f} → "
                f"{shifts.log_loss_after[h]:.2f})"
                for h in (0, 4, 8, 12, 16, 20)
            )
        )


@weather_app.command("run-day")
def weather_run_day(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date: Annotated[str, typer.Option(help="Climate date (YYYY-MM-DD).")],
    paths: Annotated[int, typer.Option(min=100)] = 4000,
    mc_version: Annotated[str, typer.Option(help="Version tag written to pmf.minute.")] = "v1",
    obs_source: Annotated[
        str | None, typer.Option(help="Default: the best source that day.")
    ] = None,
    forecast_source: Annotated[str, typer.Option()] = "vc",
    seed: Annotated[int, typer.Option()] = 0,
    params_version: Annotated[
        str, typer.Option(help="wx.mc_params version (from fit-params).")
    ] = "v1",
) -> None:
    """p_wx per bracket, hazards and Tmax quantiles for every minute of one city-day."""
    weather_backfill(
        city, date, date, paths, mc_version, obs_source, forecast_source, seed, params_version
    )


@weather_app.command("backfill")
def weather_backfill(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from", help="First climate date.")],
    date_to: Annotated[str, typer.Option("--to", help="Last climate date.")],
    paths: Annotated[int, typer.Option(min=100)] = 4000,
    mc_version: Annotated[str, typer.Option(help="Version tag written to pmf.minute.")] = "v1",
    obs_source: Annotated[
        str | None, typer.Option(help="Default: the best source each day.")
    ] = None,
    forecast_source: Annotated[str, typer.Option()] = "vc",
    seed: Annotated[int, typer.Option()] = 0,
    params_version: Annotated[
        str, typer.Option(help="wx.mc_params version (from fit-params).")
    ] = "v1",
) -> None:
    """Run the weather model over a date range; days without markets or data are reported."""
    from kwx.ingest.backfill import dates_between
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect
    from kwx.weather.pipeline import run_days

    try:
        target = default_registry().resolve(city)
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    try:
        days = dates_between(_parse_date(date_from, "--from"), _parse_date(date_to, "--to"))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        migrate.upgrade()
        with (
            connect(bulk=True) as conn,
            progress_bar("weather", err) as progress,
        ):
            task = progress.add_task("", total=len(days))

            def advance(day: dt.date, rows: int | None) -> None:
                what = "skipped" if rows is None else f"{rows:,} rows"
                progress.update(task, advance=1, description=f"{day}: {what}")

            summary = run_days(
                conn,
                target,
                days,
                paths=paths,
                mc_version=mc_version,
                obs_source=obs_source,
                forecast_source=forecast_source,
                seed=seed,
                params_version=params_version,
                on_day=advance,
            )
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"{target.key}: {summary.done} day(s) written to pmf.minute ({mc_version}), "
        f"{len(summary.skipped)} skipped"
    )
    for line in summary.skipped:
        err.print(f"[yellow]skipped[/] {line}")


def _diag_inputs(
    city: str, date_from: str, date_to: str, out: Path
) -> tuple[Any, dt.date, dt.date]:
    from kwx.registry import UnknownCityError, default_registry

    try:
        target = default_registry().resolve(city)
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    return target, _parse_date(date_from, "--from"), _parse_date(date_to, "--to")


@diag_app.command("pmf-sum")
def weather_diag_pmf_sum(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from")],
    date_to: Annotated[str, typer.Option("--to")],
    mc_version: Annotated[str, typer.Option()] = "v1",
    out: Annotated[Path, typer.Option(help="Directory for the CSV and PNG.")] = Path("diag"),
) -> None:
    """Σ p_wx per minute (must be 1) and p left on brackets already ruled out (must be 0)."""
    from kwx.store.engine import connect
    from kwx.weather.diagnostics import plot_pmf_sum, pmf_sum

    target, first, last = _diag_inputs(city, date_from, date_to, out)
    with connect() as conn:
        table = pmf_sum(conn, target, first, last, mc_version)
    if table.empty:
        raise _fail("no pmf.minute rows in the range: run kwx weather backfill first")
    stem = out / f"pmf_sum_{target.key}_{first}_{last}"
    table.to_csv(stem.with_suffix(".csv"), index=False)
    plot_pmf_sum(table, stem.with_suffix(".png"), f"pmf sum, {target.key}")
    console.print(
        f"{len(table)} days: max |Σp − 1| = {table['max_abs_sum_error'].max():.2e}, "
        f"max p on ruled-out brackets = {table['max_ruled_out_p'].max():.2e}; "
        f"wrote {stem}.csv/.png"
    )


@diag_app.command("evaluate-morning")
def weather_diag_morning(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from")],
    date_to: Annotated[str, typer.Option("--to")],
    mc_version: Annotated[str, typer.Option()] = "v1",
    out: Annotated[Path, typer.Option(help="Directory for the CSVs and PNGs.")] = Path("diag"),
) -> None:
    """The 08:00 LST p_wx against what settled: reliability diagram and PIT histogram."""
    import numpy as np
    import pandas as pd

    from kwx.store.engine import connect
    from kwx.weather.diagnostics import (
        morning_cases,
        pit_values,
        plot_pit,
        plot_reliability,
        reliability,
    )

    target, first, last = _diag_inputs(city, date_from, date_to, out)
    with connect() as conn:
        cases = morning_cases(conn, target, first, last, mc_version)
    if not cases:
        raise _fail("no settled days with p_wx at 08:00: run kwx weather backfill first")
    stem = out / f"morning_{target.key}_{first}_{last}"
    table = reliability(cases)
    table.to_csv(f"{stem}_reliability.csv", index=False)
    pit = pit_values(cases, np.random.default_rng(0))
    pd.DataFrame({"pit": pit}).to_csv(f"{stem}_pit.csv", index=False)
    plot_reliability(table, Path(f"{stem}_reliability.png"), f"p_wx at 08 LST, {target.key}")
    plot_pit(pit, Path(f"{stem}_pit.png"), f"PIT at 08 LST, {target.key} ({len(pit)} days)")
    console.print(
        f"{len(cases)} days; PIT mean {pit.mean():.3f} (0.5 if calibrated); "
        f"wrote {stem}_reliability.csv/.png and {stem}_pit.csv/.png"
    )


@diag_app.command("hazard-trace")
def weather_diag_hazard_trace(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from")],
    date_to: Annotated[str, typer.Option("--to")],
    mc_version: Annotated[str, typer.Option()] = "v1",
    out: Annotated[Path, typer.Option(help="Directory for the CSV and PNG.")] = Path("diag"),
) -> None:
    """Mean hazard of a new high within 60 minutes, around the time of the day's high."""
    from kwx.store.engine import connect
    from kwx.weather.diagnostics import hazard_trace, plot_hazard_trace

    target, first, last = _diag_inputs(city, date_from, date_to, out)
    with connect() as conn:
        trace = hazard_trace(conn, target, first, last, mc_version)
    if trace.empty:
        raise _fail("no hazards with observations in the range: run kwx weather backfill")
    stem = out / f"hazard_trace_{target.key}_{first}_{last}"
    trace.to_csv(stem.with_suffix(".csv"), index=False)
    plot_hazard_trace(trace, stem.with_suffix(".png"), f"hazard around the high, {target.key}")
    console.print(f"{int(trace['days'].max())} days traced; wrote {stem}.csv/.png")


@diag_app.command("skill")
def weather_diag_skill(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from", help="First climate date.")],
    date_to: Annotated[str, typer.Option("--to", help="Last climate date.")],
    mc_version: Annotated[str, typer.Option()] = "v1",
    csv: Annotated[Path | None, typer.Option(help="Also write the table as CSV here.")] = None,
    params_version: Annotated[
        str | None,
        typer.Option(help="Re-simulate with these wx.mc_params for the CRPS of Tmax samples."),
    ] = "v1",
    forecast_source: Annotated[
        str, typer.Option(help="The baseline the run used (vc, emos, climo) for the re-simulation.")
    ] = "vc",
) -> None:
    """RPS/(K−1), Brier, log-loss and CRPS of p_wx vs the market vs climatology by hour."""
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store.engine import StoreError, connect
    from kwx.weather.skill import collect, score

    try:
        target = default_registry().resolve(city)
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    first, last = _parse_date(date_from, "--from"), _parse_date(date_to, "--to")
    try:
        with connect() as conn:
            rows = collect(
                conn,
                target,
                first,
                last,
                mc_version,
                params_version=params_version,
                forecast_source=forecast_source,
            )
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    if not rows:
        raise _fail(
            "no settled event-hours with p_wx, a market mid and climatology; run "
            "kwx weather backfill for the range first"
        )
    table = score(rows)
    out = Table(title=f"skill {target.key} {first} → {last} (hours of local standard time)")
    for col in ("hour", "model", "RPS/(K−1)", "Brier", "log-loss", "CRPS °F", "n"):
        out.add_column(col, justify="left" if col == "model" else "right")
    for r in table.itertuples(index=False):
        out.add_row(
            f"{r.hour:02d}",
            str(r.model),
            f"{r.rps_norm:.4f}",
            f"{r.brier:.4f}",
            f"{r.log_loss:.3f}",
            f"{r.crps:.2f}",
            str(r.n),
        )
    console.print(out)
    if csv is not None:
        table.to_csv(csv, index=False)
        console.print(f"wrote {csv}")


@bench_app.command("import")
def bench_import(
    data_dir: Annotated[Path, typer.Option(help="The shared data directory.")] = Path(
        "../shared/data"
    ),
    runs: Annotated[int, typer.Option(min=1, help="Repetitions; medians are reported.")] = 3,
) -> None:
    """Import every trade in DATA_DIR into a scratch database and build the candles."""
    from kwx.bench.import_bench import run_import_benchmark

    figures = run_import_benchmark(data_dir, runs=runs, console=err)
    print(json.dumps(figures))


@bench_app.command("ingest")
def bench_ingest(
    data_dir: Annotated[Path, typer.Option(help="The shared data directory.")] = Path(
        "../shared/data"
    ),
    city: Annotated[str, typer.Option(help="City whose month is backfilled.")] = "new_york",
    month: Annotated[str, typer.Option(help="YYYY-MM")] = "2024-12",
    runs: Annotated[int, typer.Option(min=1)] = 3,
) -> None:
    """Backfill a city-month from a local server enforcing the Basic-tier token bucket."""
    from kwx.bench.ingest_bench import run_ingest_benchmark

    print(
        json.dumps(run_ingest_benchmark(data_dir, city=city, month=month, runs=runs, console=err))
    )


@bench_app.command("mc")
def bench_mc(
    days: Annotated[int, typer.Option(min=1, help="Days on the 1-minute grid.")] = 365,
    paths: Annotated[int, typer.Option(min=100)] = 4000,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """The hazard Monte Carlo over a city-year, side by side with the naive loop."""
    from kwx.bench.mc_bench import run_mc_benchmark

    print(json.dumps(run_mc_benchmark(days=days, paths=paths, seed=seed, console=err)))


def _register_areas() -> None:
    """Each later area keeps its commands in its own module under kwx.commands."""
    from kwx.commands import (
        backtest_cmds,
        book_cmds,
        dashboard_cmds,
        emos_cmds,
        evaluate_cmds,
        fees_cmds,
        fusion_cmds,
        live_cmds,
        model_cmds,
        quickstart_cmds,
        quotes_cmds,
    )

    for area in (
        quickstart_cmds,
        fusion_cmds,
        model_cmds,
        fees_cmds,
        backtest_cmds,
        evaluate_cmds,
        live_cmds,
        emos_cmds,
        quotes_cmds,
        book_cmds,
        dashboard_cmds,
    ):
        area.register(app, bench_app)


_register_areas()


def main() -> None:
    from kwx.commands.errors import run_cli

    run_cli(app)


if __name__ == "__main__":
    main()
