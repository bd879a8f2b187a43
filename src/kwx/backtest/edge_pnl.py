"""The backtest's P&L by edge cell: did the money come from where the edge was measured?

Each fill is put in the cell (`kwx.pmf.edge_cells`) of its own minute — the city, the local
hour of the climate day and the bracket's p_mkt at the fill — and held to settlement exactly
as the metrics' slices hold it (`kwx.backtest.metrics.fill_pnl`: settled tickers at 1/0, flat
unsettled ones at their last traded YES price, open ones left out), so the cells add up to the
run's net P&L. Beside each cell: whether it was open (its walk-forward gain interval above 0)
and that interval, so a reader sees P&L earned in shut cells (exits, or fills of orders placed
while the minute's price sat in another cell) apart from P&L in measured edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import pandas as pd

from kwx.backtest.ledger import FillRecord, Settlement
from kwx.backtest.metrics import fill_pnl
from kwx.pmf.edge_cells import EdgeCells, hour_bucket, hour_label, price_bucket, price_label

__all__ = ["CELL_COLUMNS", "EdgeSection", "cell_key", "pnl_by_cell"]

ZERO: Final = Decimal("0.00")
ONE: Final = Decimal(1)
UNKNOWN: Final = "n/a (no p_mkt at the fill)"
CELL_COLUMNS: Final = (
    "cell",
    "open",
    "gain",
    "gain_lo",
    "gain_hi",
    "n_events",
    "fills",
    "contracts",
    "fees",
    "pnl",
)


def cell_key(city: str, hour: float, p_mkt: float | None) -> str:
    """The label of the cell a fill falls in."""
    if p_mkt is None or math.isnan(p_mkt):
        return f"{city} {UNKNOWN}"
    return f"{city} {hour_label(hour_bucket(hour))} p {price_label(price_bucket(p_mkt))}"


def _settle_values(
    fills: Sequence[FillRecord], settlements: Sequence[Settlement]
) -> dict[str, Decimal]:
    """Per ticker, the YES value each of its fills is held to (as the metrics book it);
    tickers still open at the end are absent."""
    results = {s.ticker: s.result for s in settlements}
    net: dict[str, Decimal] = {}
    last: dict[str, Decimal] = {}
    for f in sorted(fills, key=lambda f: f.ts):
        yes = f.side == "yes"
        buy = f.action == "buy"
        qty = f.count if yes == buy else -f.count
        net[f.ticker] = net.get(f.ticker, ZERO) + qty
        last[f.ticker] = f.price if yes else ONE - f.price
    out: dict[str, Decimal] = {}
    for ticker, position in net.items():
        if ticker in results:
            out[ticker] = ONE if results[ticker] == "yes" else Decimal(0)
        elif position == 0:
            out[ticker] = last[ticker]
    return out


def pnl_by_cell(
    fills: Sequence[FillRecord],
    settlements: Sequence[Settlement],
    cell_of: Callable[[FillRecord], str],
    cells: EdgeCells,
) -> pd.DataFrame:
    """One row per cell with fills (columns `CELL_COLUMNS`), most P&L first; money Decimal."""
    values = _settle_values(fills, settlements)
    by_label = {c.label: c for c in cells}
    rows: dict[str, dict[str, Any]] = {}
    for f in fills:
        value = values.get(f.ticker)
        if value is None:
            continue  # open at the end: out of every P&L figure, as in the metrics
        label = cell_of(f)
        row = rows.get(label)
        if row is None:
            cell = by_label.get(label)
            row = {
                "cell": label,
                "open": bool(cell is not None and cell.open),
                "gain": None if cell is None else cell.gain,
                "gain_lo": None if cell is None else cell.gain_lo,
                "gain_hi": None if cell is None else cell.gain_hi,
                "n_events": None if cell is None else cell.n_events,
                "fills": 0,
                "contracts": ZERO,
                "fees": ZERO,
                "pnl": ZERO,
            }
            rows[label] = row
        row["fills"] += 1
        row["contracts"] += f.count
        row["fees"] += f.fee
        row["pnl"] += fill_pnl(f, value)
    frame = pd.DataFrame(list(rows.values()), columns=list(CELL_COLUMNS))
    if not frame.empty:
        frame = frame.sort_values("pnl", ascending=False, key=lambda s: s.map(float))
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class EdgeSection:
    """What the report shows about the edge gate: the by-cell P&L and the gate's state."""

    gate_on: bool
    open_cells: list[str]
    block: str | None  # the strategy's one-line reason when no entry could open
    by_cell: pd.DataFrame

    def as_json(self) -> dict[str, Any]:
        def value(key: str, v: Any) -> Any:
            if isinstance(v, Decimal):
                return str(v)
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if key in ("n_events", "fills") and v is not None:
                return int(v)
            return v

        return {
            "gate_on": self.gate_on,
            "open_cells": self.open_cells,
            "entries_blocked": self.block,
            "by_cell": [
                {str(k): value(str(k), v) for k, v in r.items()}
                for r in self.by_cell.to_dict("records")
            ],
        }
