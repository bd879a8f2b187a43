"""`kwx weather emos-eval`, `kwx weather emos-baseline` and `kwx bench emos` (issue 13)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)

WINDOWS = ("rolling", "seasonal", "expanding")


def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {flag} {value!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(code=1) from exc


def _config(window: str, window_days: int, bias_days: int, refit_every: int) -> object:
    from kwx.weather.emos_walk import WalkConfig

    if window not in WINDOWS:
        err.print(f"[bold red]error:[/] --window must be one of {', '.join(WINDOWS)}")
        raise typer.Exit(code=1)
    return WalkConfig(
        window=window,  # type: ignore[arg-type]
        window_days=window_days,
        bias_days=bias_days,
        refit_every=refit_every,
    )


def _evaluate_city(
    city: str, first: dt.date, last: dt.date, configs: tuple[object, ...]
) -> dict[str, object]:
    from kwx.registry import default_registry
    from kwx.store import migrate
    from kwx.store.engine import connect
    from kwx.weather.emos_data import load_guidance_frame
    from kwx.weather.emos_eval import ANCHORS, evaluate, verdict
    from kwx.weather.emos_walk import WalkConfig

    target = default_registry().resolve(city)
    migrate.upgrade()
    with connect() as conn:
        frame = load_guidance_frame(conn, target, dt.date(2000, 1, 1), last)
    if frame.empty or frame.loc[frame.index >= first, "y"].notna().sum() == 0:
        raise ValueError(f"no guidance with settled days for {target.key} in {first} → {last}")
    started = time.perf_counter()
    typed = tuple(c for c in configs if isinstance(c, WalkConfig))
    rows, raw = evaluate(frame.drop(columns=["issued_at"]), first, last, typed)
    anchor = ANCHORS.get(target.key)
    return {
        "city": target.key,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "configs": [
            dataclasses.asdict(r)
            | {
                "vs_best_raw": verdict(r.diff_lo, r.diff_hi),
                "vs_anchor": None
                if anchor is None
                else (
                    "ahead"
                    if r.crps_hi < anchor[1]
                    else "behind"
                    if r.crps_lo > anchor[1]
                    else "tie"
                ),
            }
            for r in rows
        ],
        "raw": raw.to_dict(orient="records"),
        "anchor": None if anchor is None else {"name": anchor[0], "crps": anchor[1]},
        "seconds": round(time.perf_counter() - started, 2),
    }


def _print(result: dict[str, object]) -> None:
    anchor = result["anchor"]
    title = f"EMOS walk-forward CRPS, {result['city']} {result['from']} → {result['to']}"
    if isinstance(anchor, dict):
        title += f" (anchor: {anchor['name']} {anchor['crps']:.2f} °F)"
    table = Table(title=title)
    for col in (
        "window",
        "CRPS °F [95%]",
        "MAE",
        "mean σ",
        "in 80% PI",
        "n",
        "− best raw [95%]",
        "vs raw",
        "vs anchor",
    ):
        table.add_column(col, justify="left" if col == "window" else "right")
    configs = result["configs"]
    assert isinstance(configs, list)
    for r in configs:
        table.add_row(
            r["config"],
            f"{r['crps']:.3f} [{r['crps_lo']:.3f}, {r['crps_hi']:.3f}]",
            f"{r['mae']:.2f}",
            f"{r['sigma']:.2f}",
            f"{r['pit_coverage_80']:.2f}",
            str(r["n"]),
            f"{r['diff_best_raw']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]",
            r["vs_best_raw"],
            str(r["vs_anchor"]),
        )
    console.print(table)
    raw = result["raw"]
    assert isinstance(raw, list)
    console.print(
        "raw members as point forecasts (CRPS = MAE, bias = mean official − member): "
        + "; ".join(f"{m['model']} {m['crps']:.2f} ({m['bias']:+.2f}, n={m['n']})" for m in raw)
    )


def emos_eval(
    city: Annotated[list[str], typer.Option(help="City key(s); repeat for several.")],
    date_from: Annotated[str, typer.Option("--from", help="First scored climate date.")],
    date_to: Annotated[str, typer.Option("--to", help="Last scored climate date.")],
    window: Annotated[
        str | None,
        typer.Option(help="Only this window (rolling|seasonal|expanding); default: compare five."),
    ] = None,
    window_days: Annotated[int, typer.Option(help="Rolling window length.")] = 365,
    bias_days: Annotated[int, typer.Option(help="Trailing bias correction (0: off).")] = 0,
    refit_every: Annotated[int, typer.Option(min=1, help="Days between refits.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line last.")] = False,
) -> None:
    """Walk-forward CRPS of the EMOS Tmax distribution vs the raw members and public anchors."""
    from kwx.registry import UnknownCityError
    from kwx.store.engine import StoreError
    from kwx.weather.emos_eval import DEFAULT_CONFIGS

    first, last = _date(date_from, "--from"), _date(date_to, "--to")
    configs: tuple[object, ...] = (
        DEFAULT_CONFIGS
        if window is None
        else (_config(window, window_days, bias_days, refit_every),)
    )
    results = []
    try:
        for c in city:
            result = _evaluate_city(c, first, last, configs)
            _print(result)
            results.append(result)
    except (UnknownCityError, StoreError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from exc
    if as_json:
        print(json.dumps({"emos_eval": results}, default=str))


def emos_baseline(
    city: Annotated[str, typer.Option(help="City key, series or station.")],
    date_from: Annotated[str, typer.Option("--from", help="First climate date.")],
    date_to: Annotated[str, typer.Option("--to", help="Last climate date.")],
    obs_source: Annotated[str, typer.Option(help="The Monte Carlo's observation source.")] = "era5",
    shape_source: Annotated[str, typer.Option(help="Forecast giving the day's shape.")] = "vc",
    window: Annotated[str, typer.Option(help="rolling|seasonal|expanding")] = "seasonal",
    window_days: Annotated[int, typer.Option()] = 365,
    bias_days: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write the EMOS baseline (wx.forecast source 'emos') for the days with guidance; then
    `kwx weather fit-params/backfill --forecast-source emos` use it."""
    from kwx.registry import UnknownCityError, default_registry
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect
    from kwx.weather.emos_baseline import build_emos_forecasts
    from kwx.weather.emos_walk import WalkConfig

    config = _config(window, window_days, bias_days, 7)
    assert isinstance(config, WalkConfig)
    try:
        target = default_registry().resolve(city)
        migrate.upgrade()
        with connect() as conn:
            built = build_emos_forecasts(
                conn,
                target,
                _date(date_from, "--from"),
                _date(date_to, "--to"),
                obs_source=obs_source,
                shape_source=shape_source,
                config=config,
            )
    except (UnknownCityError, StoreError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from exc
    console.print(
        f"{target.key}: EMOS baseline for {built.days} day(s) ({built.from_vc} shaped by "
        f"{shape_source}, {built.days - built.from_vc} by the {obs_source} climatological "
        f"profile), {built.rows:,} hourly rows → wx.forecast source 'emos'; "
        f"{len(built.skipped)} skipped"
    )
    for line in built.skipped[:20]:
        err.print(f"[yellow]skipped[/] {line}")


def bench_emos(
    date_from: Annotated[str, typer.Option("--from")] = "2024-01-01",
    date_to: Annotated[str, typer.Option("--to")] = "2024-12-31",
) -> None:
    """Walk-forward EMOS CRPS for the three anchored cities against the public anchors: the
    seasonal window, and the window chosen each day by its trailing 90-day CRPS (out of
    sample); one JSON line last."""
    from kwx.weather.emos_eval import AUTO_LABEL, DEFAULT_CONFIGS

    first, last = _date(date_from, "--from"), _date(date_to, "--to")
    out: dict[str, object] = {}
    for city in ("new_york", "chicago", "miami"):
        try:
            result = _evaluate_city(city, first, last, DEFAULT_CONFIGS)
        except ValueError as exc:
            err.print(f"[yellow]{city}:[/] {exc}")
            continue
        _print(result)
        configs = result["configs"]
        anchor = result["anchor"]
        assert isinstance(configs, list) and isinstance(anchor, dict)
        pick = {r["config"]: r for r in configs}
        entry: dict[str, object] = {"anchor": anchor["crps"], "seconds": result["seconds"]}
        for key, label in (("seasonal", DEFAULT_CONFIGS[2].label()), ("auto", AUTO_LABEL)):
            if label in pick:
                r = pick[label]
                entry[key] = {
                    "crps": round(r["crps"], 3),
                    "ci95": [round(r["crps_lo"], 3), round(r["crps_hi"], 3)],
                    "vs_anchor": r["vs_anchor"],
                    "n": r["n"],
                }
        out[city] = entry
    print(json.dumps({"bench": "emos", "from": first.isoformat(), "to": last.isoformat()} | out))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Attach the EMOS commands to `kwx weather` and `kwx bench`."""
    from kwx.cli import weather_app

    del app
    weather_app.command("emos-eval")(emos_eval)
    weather_app.command("emos-baseline")(emos_baseline)
    bench_app.command("emos")(bench_emos)
