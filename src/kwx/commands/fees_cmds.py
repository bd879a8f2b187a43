"""`kwx fees check`: the fee model against real account fills (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)

fees_app = typer.Typer(no_args_is_help=True, help="Kalshi fees.")


@fees_app.command("check")
def fees_check(
    path: Annotated[
        Path,
        typer.Option(
            "--path",
            help="Folder with kalshi_fills_complete.json (and fills.csv), or the JSON file.",
        ),
    ] = Path("../shared/data/kalshi/fills"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line last.")] = False,
    show: Annotated[int, typer.Option(help="How many mismatches to list.")] = 20,
) -> None:
    """Compare every real fill's fee_cost with Kalshi's fee formula, per fill and per order."""
    from kwx.backtest.fees_check import FillsFileError, check_fills

    try:
        result = check_fills(path)
    except FillsFileError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from exc

    if as_json:
        print(json.dumps(result.to_dict()))
        return

    console.print(
        f"[bold]{result.n}[/] fills from {result.source}: per-fill formula matches "
        f"[bold]{result.matched}[/] ({result.match_rate:.2%}); the per-order accumulator "
        f"explains [bold]{result.explained}[/] ({result.explained_rate:.2%}); order totals "
        f"match {result.orders_total_matched}/{result.orders} orders."
    )
    if result.csv_agrees is not None:
        verdict = "agrees with" if result.csv_agrees else "[red]differs from[/]"
        console.print(f"fills.csv ({result.csv_rows} rows) {verdict} the JSON, fill for fill.")

    table = Table(title="by role and series")
    for column in ("group", "fills", "per-fill match", "rate", "explained by order"):
        table.add_column(column, justify="right" if column != "group" else "left")
    for name, stat in [*result.by_role.items(), *result.by_series.items()]:
        table.add_row(
            f"{name} ({result.fee_types[name]})" if name in result.fee_types else name,
            str(stat.n),
            str(stat.matched),
            f"{stat.match_rate:.1%}",
            str(stat.explained),
        )
    console.print(table)

    if result.mismatches and show > 0:
        mismatches = Table(title=f"mismatches (first {min(show, len(result.mismatches))})")
        for column in (
            "row",
            "ticker",
            "order",
            "fills in order",
            "role",
            "count",
            "yes price",
            "fee",
            "per-fill formula",
            "explained",
        ):
            mismatches.add_column(column)
        for m in result.mismatches[:show]:
            mismatches.add_row(
                str(m.row),
                m.ticker,
                m.order_id[:8],
                str(m.order_fills),
                "taker" if m.is_taker else "maker",
                str(m.count),
                str(m.yes_price),
                str(m.fee_actual),
                str(m.fee_per_fill),
                "yes" if m.explained_by_order else "[red]no[/]",
            )
        console.print(mismatches)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    del bench_app
    app.add_typer(fees_app, name="fees")
