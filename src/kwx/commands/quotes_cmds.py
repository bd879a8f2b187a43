"""`kwx quotes fit | check` and `kwx bench quotes` (issue 13): the rebuilt-quote model.

``fit`` learns the model on real-quote days and stores it (``backtest.quote_model``); every
backtest then rebuilds quotes with the newest one where the data has no bid/ask. ``check``
proves it on a real-quote window: the same backtest on the real book and on prints only, per
fill model, with the price check. ``bench quotes`` is the check on the default split.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)
quotes_app = typer.Typer(help="The rebuilt-quote model: fit it on real quotes, check it.")

FIT_FROM, FIT_TO = "2025-05-01", "2025-05-04"
CHECK_FROM, CHECK_TO = "2025-05-05", "2025-05-08"


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{flag} must be a date like 2025-05-01, got {value!r}") from None


@quotes_app.command("fit")
def fit(
    city: Annotated[str, typer.Option("--city")] = "chicago",
    date_from: Annotated[str, typer.Option("--from")] = FIT_FROM,
    date_to: Annotated[str, typer.Option("--to")] = FIT_TO,
    version: Annotated[str, typer.Option("--version", help="Name to store it under.")] = "q1",
    q: Annotated[
        float, typer.Option("--quantile", help="Quantile of the offset taken per side.")
    ] = 0.9,
) -> None:
    """Fit the quote model on real-quote days and store it (the backtest's default)."""
    from kwx.backtest.quote_fit import fit_quote_model, save_quote_model
    from kwx.backtest.quote_model import QuoteModel
    from kwx.config import get_settings
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect

    first, last = _date(date_from, "--from"), _date(date_to, "--to")
    settings = get_settings()
    try:
        migrate.upgrade(settings)
        with connect(settings) as conn:
            model = fit_quote_model(conn, settings, city, first, last, QuoteModel(q_ask=q, q_bid=q))
            save_quote_model(conn, model, version)
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"quote model {version!r}: {model.n_fit_:,} real-quote minutes ({first} → {last}); "
        f"crossed-pair spread at q {100 * model.crossed_spread(q):.0f} ¢, "
        f"{model.touch_size_:g} contracts a level"
    )


def _table(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"quote check {result['city']} {result['from']} → {result['to']} (model fitted "
        f"{result['quote_model_fit']['fit_from']} → {result['quote_model_fit']['fit_to']})"
    )
    for col in (
        "fill model",
        "contracts real / prints",
        "¢/contract real / prints (95% CI by day)",
        "taker better than real ¢ (real run)",
        "taker better than real ¢ prints: mean [p10, p50, p90]",
        "maker through real / prints",
        "maker mid +30m ¢ real / prints",
        "price check",
    ):
        table.add_column(col, justify="right")

    def num(x: float | None, fmt: str = "{:+.2f}") -> str:
        return "—" if x is None else fmt.format(x)

    def ci(run: dict[str, Any]) -> str:
        iv = run["pnl_per_contract_ci95"]
        return "" if iv is None else f"[{iv[0]:+.1f}, {iv[1]:+.1f}]"

    for name, r in result["fill_models"].items():
        re, pr = r["real"], r["prints"]
        pt = pr["taker"]
        table.add_row(
            name,
            f"{re['contracts']:,.0f} / {pr['contracts']:,.0f}",
            f"{num(re['pnl_per_contract_cents'])} {ci(re)} / "
            f"{num(pr['pnl_per_contract_cents'])} {ci(pr)}",
            num(re["taker"]["mean"]),
            f"{num(pt['mean'])} [{num(pt['p10'])}, {num(pt['p50'])}, {num(pt['p90'])}]",
            f"{num(re['maker']['traded_through_share'], '{:.0%}')} / "
            f"{num(pr['maker']['traded_through_share'], '{:.0%}')}",
            f"{num(re['maker']['mid_move_after_cents']['30m']['mean'])} / "
            f"{num(pr['maker']['mid_move_after_cents']['30m']['mean'])}",
            r["price_check"],
        )
    return table


def _run_check(
    city: str,
    first: dt.date,
    last: dt.date,
    fit_from: dt.date,
    fit_to: dt.date,
    version: str | None,
    fill_models: list[str],
    q: float = 0.9,
) -> dict[str, Any]:
    from kwx.backtest.quote_check import quote_check
    from kwx.backtest.quote_fit import fit_quote_model, latest_quote_model
    from kwx.backtest.quote_model import QuoteModel
    from kwx.config import get_settings
    from kwx.store import migrate
    from kwx.store.engine import connect

    settings = get_settings()
    migrate.upgrade(settings)
    with connect(settings) as conn:
        if version:
            stored = latest_quote_model(conn, version)
            assert stored is not None
            model = stored[1]
        else:
            model = fit_quote_model(
                conn, settings, city, fit_from, fit_to, QuoteModel(q_ask=q, q_bid=q)
            )
        return quote_check(
            conn,
            settings,
            city,
            first,
            last,
            model,
            fill_models=fill_models,
            on_run=lambda s: err.print(f"[dim]backtest: {s}[/]"),
        )


@quotes_app.command("check")
def check(
    city: Annotated[str, typer.Option("--city")] = "chicago",
    date_from: Annotated[str, typer.Option("--from")] = CHECK_FROM,
    date_to: Annotated[str, typer.Option("--to")] = CHECK_TO,
    fit_from: Annotated[str, typer.Option("--fit-from")] = FIT_FROM,
    fit_to: Annotated[str, typer.Option("--fit-to")] = FIT_TO,
    version: Annotated[
        str | None, typer.Option("--version", help="Use a stored model instead of fitting.")
    ] = None,
    fill_model: Annotated[
        list[str] | None, typer.Option("--fill-model", help="Repeat; default all four.")
    ] = None,
    q: Annotated[
        float, typer.Option("--quantile", help="Quantile of the offsets when fitting here.")
    ] = 0.9,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line last.")] = False,
) -> None:
    """Backtest the checked days on the real book and on prints only, per fill model; the price
    check says how much better the prints-only taker fills were than the real touch."""
    from kwx.backtest.fills import FILL_MODELS
    from kwx.store.engine import StoreError

    models = fill_model or list(FILL_MODELS)
    for name in models:
        if name not in FILL_MODELS:
            raise _fail(f"--fill-model {name!r}: choose from {', '.join(FILL_MODELS)}")
    try:
        result = _run_check(
            city,
            _date(date_from, "--from"),
            _date(date_to, "--to"),
            _date(fit_from, "--fit-from"),
            _date(fit_to, "--fit-to"),
            version,
            models,
            q,
        )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(_table(result))
    if result["any_price_check_failed"]:
        console.print(
            "[bold red]The prints-only taker fills were better than the real book by more than "
            f"{result['price_bound_cents']} ¢ a contract for at least one fill model.[/]"
        )
    if as_json:
        print(json.dumps(result, allow_nan=False, separators=(",", ":")))


def bench_quotes(
    city: Annotated[str, typer.Option("--city")] = "chicago",
) -> None:
    """Benchmark: the quote check on the default split (fit 1–4 May 2025, check 5–8 May);
    one JSON line last with the per-fill-model figures and the elapsed time."""
    from kwx.store.engine import StoreError

    started = time.perf_counter()
    try:
        result = _run_check(
            city,
            dt.date.fromisoformat(CHECK_FROM),
            dt.date.fromisoformat(CHECK_TO),
            dt.date.fromisoformat(FIT_FROM),
            dt.date.fromisoformat(FIT_TO),
            None,
            ["taker", "maker-a", "maker-b", "queue"],
        )
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    err.print(_table(result))
    figures = {
        "bench": "quotes",
        "elapsed_s": round(time.perf_counter() - started, 1),
        "any_price_check_failed": result["any_price_check_failed"],
        **{
            name: {
                "pnl_per_contract_real": r["real"]["pnl_per_contract_cents"],
                "pnl_per_contract_prints": r["prints"]["pnl_per_contract_cents"],
                "pnl_ci95_real": r["real"]["pnl_per_contract_ci95"],
                "pnl_ci95_prints": r["prints"]["pnl_per_contract_ci95"],
                "contracts_real": r["real"]["contracts"],
                "contracts_prints": r["prints"]["contracts"],
                "taker_better_real": r["real"]["taker"]["mean"],
                "taker_better_prints": r["prints"]["taker"]["mean"],
                "taker_fills_prints": r["prints"]["taker"]["n"],
                "price_check": r["price_check"],
                "maker_through_prints": r["prints"]["maker"]["traded_through_share"],
            }
            for name, r in result["fill_models"].items()
        },
    }
    print(json.dumps(figures, allow_nan=False, separators=(",", ":")))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    app.add_typer(quotes_app, name="quotes")
    bench_app.command("quotes")(bench_quotes)
