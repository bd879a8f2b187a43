"""`kwx fusion market | fit | run | walk | report` (issue 5): p_mkt and its fusion with p_wx."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kwx.commands.errors import fail
from kwx.commands.progress import progress_bar

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

    from kwx.pmf.fusion import FusionConfig

console = Console()
err = Console(stderr=True)

CityOpt = Annotated[str, typer.Option("--city", help="City key, series or station.")]
FromOpt = Annotated[str, typer.Option("--from", help="First climate date (YYYY-MM-DD).")]
ToOpt = Annotated[str, typer.Option("--to", help="Last climate date (YYYY-MM-DD).")]
McOpt = Annotated[str, typer.Option("--mc-version", help="pmf.minute rows of this version.")]
VersionOpt = Annotated[str, typer.Option("--version", help="model.fusion_config version.")]
StrengthOpt = Annotated[
    float | None,
    typer.Option(
        "--strength",
        min=0.0,
        help="anchored: a fixed prior strength λ for every hour bucket (default: chosen per "
        "bucket on the training days' last 30 days, the strongest within one standard error "
        "of the best).",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="log: the weighted log pool (w_mkt + w_wx = 1); anchored: the market-anchored "
        "pool (a·log p_mkt + b·log p_wx + bracket terms, shrunk to p_mkt).",
    ),
]


def _fail(message: str) -> typer.Exit:
    return fail(message)  # one line, whatever the console width (kwx.commands.errors)


def _inputs(city: str, date_from: str, date_to: str) -> tuple[str, dt.date, dt.date]:
    from kwx.registry import UnknownCityError, default_registry

    try:
        key = default_registry().resolve(city).key
    except UnknownCityError as exc:
        raise _fail(str(exc)) from exc
    try:
        first, last = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    except ValueError:
        raise _fail(
            f"--from/--to must be dates like 2024-07-01: {date_from!r}, {date_to!r}"
        ) from None
    if last < first:
        raise _fail(f"--to {last} is before --from {first}")
    return key, first, last


@contextmanager
def _events_progress(
    label: str,
    conn: psycopg.Connection[tuple[object, ...]],
    city: str,
    first: dt.date,
    last: dt.date,
    mc_version: str,
) -> Iterator[Callable[[str, int], None]]:
    """A progress bar over the city's events in the range; yields the per-event hook."""
    from kwx.pmf.market import events_in_range

    total = len(events_in_range(conn, city, first, last, mc_version))
    with progress_bar(label, err) as progress:
        task = progress.add_task("", total=total)

        def hook(event: str, rows: int) -> None:
            progress.update(task, advance=1, description=f"{event}: {rows:,} rows")

        yield hook


@contextmanager
def _events_job(
    label: str, city: str, first: dt.date, last: dt.date, mc_version: str
) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]], Callable[[str, int], None]]]:
    """The store migrated and opened for bulk work, a progress bar over the city's events,
    and a store or input error turned into the command's clear failure."""
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    try:
        migrate.upgrade()
        with (
            connect(bulk=True) as conn,
            _events_progress(label, conn, city, first, last, mc_version) as hook,
        ):
            yield conn, hook
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def fusion_market(
    city: CityOpt,
    date_from: FromOpt,
    date_to: ToOpt,
    mc_version: McOpt = "v1",
    force: Annotated[bool, typer.Option(help="Recompute events already done.")] = False,
) -> None:
    """p_mkt and the market features for every minute of the city's events in the range."""
    from kwx.pmf.market import write_p_mkt

    key, first, last = _inputs(city, date_from, date_to)
    with _events_job("p_mkt", key, first, last, mc_version) as (conn, hook):
        rows = write_p_mkt(
            conn, key, first, last, mc_version=mc_version, only_missing=not force, on_event=hook
        )
    console.print(f"{key}: p_mkt written to {rows:,} pmf.minute rows ({mc_version})")


def fusion_fit(
    city: CityOpt,
    date_from: FromOpt,
    date_to: ToOpt,
    mc_version: McOpt = "v1",
    version: VersionOpt = "f1",
    every: Annotated[int, typer.Option(min=1, help="Sample every N minutes.")] = 10,
    model: ModelOpt = "log",
    strength: StrengthOpt = None,
) -> None:
    """Fit the pool (its weight α, or the anchored pool's θ) for a city on its training days;
    store it as --version."""
    from kwx.pmf.fusion import fit_fusion
    from kwx.pmf.pool import FEATURES

    key, first, last = _inputs(city, date_from, date_to)
    with _events_job("p_mkt", key, first, last, mc_version) as (conn, hook):
        config = fit_fusion(
            conn,
            key,
            first,
            last,
            mc_version=mc_version,
            version=version,
            every_min=every,
            on_event=hook,
            model=model,
            strength=strength,
        )
    if config.model == "anchored":
        console.print(_anchored_table(config, f"fusion {key} {version}: fit on {first} → {last}"))
        return
    m = config.metrics
    table = Table(title=f"fusion {key} {version}: fit on {first} → {last}")
    table.add_column("parameter")
    table.add_column("ML (L-BFGS-B)", justify="right")
    table.add_column("grid", justify="right")
    for name, a, g in zip(
        ("α0 (intercept)", *FEATURES), config.alpha, m["grid_alpha"], strict=True
    ):
        table.add_row(name, f"{a:+.3f}", f"{g:+.1f}")
    table.add_row("mean −log p(winner)", f"{m['nll']:.4f}", f"{m['grid_nll']:.4f}")
    console.print(table)
    ll = m["train_log_loss"]
    console.print(
        f"{m['n_rows']:,} event-minutes of {m['n_events']} events (every {m['sample_every_min']}"
        f" min), p_floor {config.p_floor:g}; training log-loss: fused {ll['p_fused_norm']:.4f},"
        f" p_mkt {ll['p_mkt']:.4f}, p_wx {ll['p_wx']:.4f}; w_mkt median "
        f"{m['w_mkt_quantiles'][2]:.3f}"
    )


def _anchored_table(config: FusionConfig, title: str) -> Table:
    """θ per hour bucket of an anchored config, and what chose the prior's strength."""
    from kwx.pmf.anchored import TERMS

    table = Table(title=title)
    table.add_column("hours")
    for term in TERMS:
        table.add_column(term, justify="right")
    table.add_column("λ", justify="right")
    table.add_column("rows", justify="right")
    edges = [*config.hour_edges, 24]
    rows = config.metrics.get("rows_per_bucket", [0] * len(config.coef))
    for j, coef in enumerate(config.coef):
        table.add_row(
            f"{edges[j]:02d}–{edges[j + 1]:02d}",
            *(f"{c:+.3f}" for c in coef),
            f"{config.strength[j]:g}",
            f"{rows[j]:,}",
        )
    ll = config.metrics.get("train_log_loss", {})
    table.caption = (
        "λ per hour bucket: the strongest prior within one standard error of the best on the "
        f"training days' last 30 days; training log-loss fused "
        f"{ll.get('p_fused_norm', math.nan):.4f}, p_mkt {ll.get('p_mkt', math.nan):.4f}, "
        f"p_wx {ll.get('p_wx', math.nan):.4f}"
    )
    return table


def fusion_run(
    city: CityOpt,
    date_from: FromOpt,
    date_to: ToOpt,
    mc_version: McOpt = "v1",
    version: VersionOpt = "f1",
    refresh_market: Annotated[
        bool, typer.Option(help="Recompute p_mkt even where it is stored.")
    ] = False,
) -> None:
    """Write w_mkt, p_fused and p_fused_norm to pmf.minute with a stored config."""
    from kwx.pmf.fusion import run_fusion

    key, first, last = _inputs(city, date_from, date_to)
    with _events_job("fusion", key, first, last, mc_version) as (conn, hook):
        rows = run_fusion(
            conn,
            key,
            first,
            last,
            mc_version=mc_version,
            version=version,
            refresh_market=refresh_market,
            on_event=hook,
        )
    console.print(f"{key}: p_fused written to {rows:,} pmf.minute rows ({mc_version}, {version})")


def fusion_walk(
    city: CityOpt,
    date_from: FromOpt,
    date_to: ToOpt,
    test_from: Annotated[
        str, typer.Option("--test-from", help="First day scored out of sample (YYYY-MM-DD).")
    ],
    mc_version: McOpt = "v1",
    version: Annotated[
        str, typer.Option("--version", help="Configs are stored as VERSION@FOLD-START.")
    ] = "walk",
    step_days: Annotated[int, typer.Option("--step-days", min=1, help="Days per fold.")] = 30,
    every: Annotated[int, typer.Option(min=1, help="Sample every N minutes.")] = 10,
    model: ModelOpt = "log",
    strength: StrengthOpt = None,
) -> None:
    """Walk forward: refit the pool on every day before each fold, then fuse the fold.

    Every day from --test-from on is then fused by a pool that knew only its past, so
    `kwx fusion report --from TEST-FROM` scores several times more held-out days than one
    split leaves. The fold's day before is left out of its training (its official high is
    published only that morning). The last fold's config is the newest, so it is the one
    `kwx run` pools with afterwards.
    """
    from kwx.pmf.fusion import Fold, walk_forward
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    key, first, last = _inputs(city, date_from, date_to)
    try:
        start = dt.date.fromisoformat(test_from)
    except ValueError:
        raise _fail(f"--test-from must be a date like 2024-10-01: {test_from!r}") from None
    n_folds = math.ceil(((last - start).days + 1) / step_days) if start <= last else 0
    table = Table(title=f"fusion {key} walk-forward, {step_days}-day folds ({mc_version})")
    head = "α (intercept, features)" if model == "log" else "λ:(a, b) per hour bucket"
    for col in ("fold", "trained on", head, "w_mkt median", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    try:
        migrate.upgrade()
        with connect(bulk=True) as conn, progress_bar("walk-forward", err) as progress:
            task = progress.add_task("", total=n_folds)

            def on_fold(fold: Fold) -> None:
                c = fold.config
                if c.model == "anchored":
                    params = " ".join(
                        f"{lam:g}:({row[0]:.2f}, {row[1]:.2f})"
                        for lam, row in zip(c.strength, c.coef, strict=True)
                    )
                    w_median = "—"
                else:
                    params = " ".join(f"{a:+.2f}" for a in c.alpha)
                    w_median = f"{c.metrics['w_mkt_quantiles'][2]:.3f}"
                table.add_row(
                    f"{fold.first} → {fold.last}",
                    f"{c.train_from} → {c.train_to}",
                    params,
                    w_median,
                    f"{fold.rows:,}",
                )
                progress.update(task, advance=1, description=f"fold {fold.first}")

            walk_forward(
                conn,
                key,
                first,
                last,
                start,
                step_days=step_days,
                mc_version=mc_version,
                version=version,
                every_min=every,
                on_fold=on_fold,
                model=model,
                strength=strength,
            )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(table)
    console.print(
        f"score it: kwx fusion report --city {key} --from {start} --to {last} "
        f"--mc-version {mc_version}"
    )


def _report_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    cols = ("hour", "model", "log-loss", "Brier", "RPS/(K−1)", "ECE", "events", GAIN_HEADER)
    for col in cols:
        table.add_column(col, justify="left" if col in ("hour", "model") else "right")
    for hour, group in frame.groupby("hour", sort=False):
        # The ceiling is chosen on these very days: never the winner of a held-out comparison.
        best = group.loc[group["model"] != "ceiling", "log_loss"].min()
        for _, row in group.iterrows():
            ll = f"{row['log_loss']:.4f}"
            model = str(row["model"])
            if model == "ceiling" and not math.isnan(row["w_mkt"]):
                model = f"ceiling (w_mkt {row['w_mkt']:.2f})"
            table.add_row(
                str(hour),
                model,
                f"[bold]{ll}[/]" if row["log_loss"] == best else ll,
                f"{row['brier']:.4f}",
                f"{row['rps']:.4f}",
                f"{row['ece']:.4f}",
                str(row["n_events"]),
                _gain_cell(row),
            )
        table.add_section()
    return table


GAIN_HEADER = "vs p_mkt (95% CI)"


def _gain_cell(row: pd.Series) -> str:
    """p_fused's log-loss gain over p_mkt and its event-bootstrap interval; blank elsewhere."""
    if math.isnan(row["gain_vs_mkt"]):
        return ""
    return f"{row['gain_vs_mkt']:+.4f} [{row['gain_lo']:+.4f}, {row['gain_hi']:+.4f}]"


def _verdicts(frame: pd.DataFrame) -> dict[str, str]:
    """Per hour, what the interval of p_fused's gain over p_mkt says: "ahead" (wholly above
    0), "behind" (wholly below) or "tie" (it spans 0: the margin could be chance)."""
    fused = frame[(frame["model"] == "p_fused_norm") & (frame["hour"] != "all")]
    out: dict[str, str] = {}
    for _, row in fused.iterrows():
        lo, hi = float(row["gain_lo"]), float(row["gain_hi"])
        out[str(row["hour"])] = "ahead" if lo > 0 else "behind" if hi < 0 else "tie"
    return out


def _summary(frame: pd.DataFrame) -> dict[str, object]:
    """The target checks: p_fused_norm vs p_mkt log-loss per hour, and p_fused_norm's ECE."""
    wide = frame.pivot(index="hour", columns="model", values="log_loss")
    hours = [h for h in wide.index if h != "all"]
    margin = {h: float(wide.loc[h, "p_mkt"] - wide.loc[h, "p_fused_norm"]) for h in hours}
    ece_all = float(
        frame.loc[(frame["hour"] == "all") & (frame["model"] == "p_fused_norm"), "ece"].iloc[0]
    )
    summary: dict[str, object] = {
        "logloss_margin_vs_mkt": margin,
        "beats_mkt_every_hour": all(v > 0 for v in margin.values()),
        "gain_ci_vs_mkt": {
            str(r["hour"]): [float(r["gain_lo"]), float(r["gain_hi"])]
            for _, r in frame[frame["model"] == "p_fused_norm"].iterrows()
        },
        "verdict_vs_mkt": _verdicts(frame),
        "ece_fused_all": ece_all,
        "ece_ok": ece_all <= 0.02,
    }
    if "ceiling" in wide.columns:
        summary["ceiling_margin_vs_mkt"] = {
            h: float(wide.loc[h, "p_mkt"] - wide.loc[h, "ceiling"]) for h in hours
        }
    return summary


def fusion_report_cmd(
    city: CityOpt,
    date_from: FromOpt,
    date_to: ToOpt,
    mc_version: McOpt = "v1",
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line last.")] = False,
    ceiling: Annotated[
        bool,
        typer.Option(
            "--ceiling",
            help="Also score, per hour, the pool with the best single w_mkt chosen on these "
            "days (in-sample): a yardstick for how much p_wx adds to p_mkt at that hour.",
        ),
    ] = False,
) -> None:
    """Held-out scores by local hour: p_fused_norm vs p_mkt vs p_wx (run `fusion run` first)."""
    from kwx.pmf.report import fusion_report
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    key, first, last = _inputs(city, date_from, date_to)
    try:
        migrate.upgrade()
        with connect() as conn:
            frame = fusion_report(conn, key, first, last, mc_version=mc_version, ceiling=ceiling)
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv, index=False)
    console.print(
        _report_table(frame, f"fusion {key} {first} → {last} (hours of the climate day, LST)")
    )
    summary = _summary(frame)
    margins = summary["logloss_margin_vs_mkt"]
    assert isinstance(margins, dict)
    worst = min(margins.values()) if margins else math.nan
    console.print(
        f"p_fused beats p_mkt at every hour: {summary['beats_mkt_every_hour']} "
        f"(worst margin {worst:+.4f}); ECE of p_fused over all hours "
        f"{summary['ece_fused_all']:.4f} (target ≤ 0.02)"
    )
    verdicts = summary["verdict_vs_mkt"]
    assert isinstance(verdicts, dict)
    tally = {
        v: sorted(h for h, x in verdicts.items() if x == v) for v in ("ahead", "tie", "behind")
    }
    console.print(
        "by the 95% interval of the gain (events resampled): "
        + "; ".join(f"{v} at {', '.join(hs) or '—'}" for v, hs in tally.items())
    )
    if as_json:
        records = json.loads(frame.to_json(orient="records"))
        print(
            json.dumps(
                {"city": key, "from": str(first), "to": str(last), **summary, "rows": records}
            )
        )


def fusion_edge(
    city: CityOpt,
    date_from: FromOpt,
    date_to: ToOpt,
    mc_version: McOpt = "v1",
    every: Annotated[int, typer.Option(min=1, help="Sample every N minutes.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line last.")] = False,
) -> None:
    """Measure the edge cells (city × local-hour bucket × p_mkt bucket) on walk-forward days
    and store them in model.edge_cells: the strategy enters only where a cell's gain of
    p_fused over p_mkt has its 95% interval above 0. Run it over `kwx fusion walk`'s
    --test-from..--to range (days the pool never saw)."""
    from kwx.pmf.edge import measure_edge_cells
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    key, first, last = _inputs(city, date_from, date_to)
    try:
        migrate.upgrade()
        with connect() as conn:
            cells = measure_edge_cells(
                conn, key, first, last, mc_version=mc_version, every_min=every
            )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    table = Table(title=f"edge cells {key} {first} → {last} ({mc_version}, every {every} min)")
    for col in ("cell", "gain (p_mkt − p_fused loss)", "95% CI", "events", "rows", "gate"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for c in cells:
        table.add_row(
            c.label,
            f"{c.gain:+.4f}",
            f"[{c.gain_lo:+.4f}, {c.gain_hi:+.4f}]",
            str(c.n_events),
            f"{c.n_rows:,}",
            "[bold green]open[/]" if c.open else "shut",
        )
    console.print(table)
    opened = [c.label for c in cells if c.open]
    console.print(
        f"{len(opened)} of {len(cells)} measured cells open"
        + (f": {', '.join(opened)}" if opened else ": the strategy will enter nothing in " + key)
    )
    if as_json:
        print(
            json.dumps(
                {
                    "city": key,
                    "from": str(first),
                    "to": str(last),
                    "open": opened,
                    "cells": [
                        {
                            "cell": c.label,
                            "gain": c.gain,
                            "gain_lo": c.gain_lo,
                            "gain_hi": c.gain_hi,
                            "n_events": c.n_events,
                            "n_rows": c.n_rows,
                            "open": c.open,
                        }
                        for c in cells
                    ],
                }
            )
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    fusion_app = typer.Typer(no_args_is_help=True, help="Fuse p_mkt and p_wx into p_fused.")
    fusion_app.command("market")(fusion_market)
    fusion_app.command("fit")(fusion_fit)
    fusion_app.command("run")(fusion_run)
    fusion_app.command("walk")(fusion_walk)
    fusion_app.command("report")(fusion_report_cmd)
    fusion_app.command("edge")(fusion_edge)
    app.add_typer(fusion_app, name="fusion")
