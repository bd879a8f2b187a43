"""Trade only measured edge: the entry gate on the edge cells (`kwx.pmf.edge_cells`).

The strategy enters a position only in a (city, local hour, p_mkt) cell whose walk-forward
gain of p_fused over p_mkt has its 95% interval wholly above zero: anywhere else the
probability it would trade on has not been shown to know more than the price it would trade
against, and a "value edge" there is the market's noise plus our model's. A cell never
measured (too few events, or no walk) is shut too. Exits and cancels are never gated.

Pure: the cells are loaded once per run (backtest or live) and passed in; no I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kwx.pmf.edge_cells import EdgeCells, hour_bucket, hour_label, price_bucket, price_label

__all__ = ["Verdict", "edge_verdict"]


@dataclass(frozen=True)
class Verdict:
    """Whether an entry may open, and why not."""

    ok: bool
    reason: str


def edge_verdict(cells: EdgeCells, city: str, hour: float, p_mkt: float | None) -> Verdict:
    """Whether an entry may open at this city, local hour and market price, and why not."""
    if p_mkt is None or math.isnan(p_mkt):
        return Verdict(False, "edge gate: no p_mkt to place the bracket in a cell")
    cell = cells.cell(city, hour, p_mkt)
    if cell is None:
        return Verdict(
            False,
            f"edge gate: no measured cell {city} {hour_label(hour_bucket(hour))} "
            f"p {price_label(price_bucket(p_mkt))}",
        )
    if not cell.open:
        return Verdict(
            False,
            f"edge gate: {cell.label} gain {cell.gain:+.4f} "
            f"[{cell.gain_lo:+.4f}, {cell.gain_hi:+.4f}] not above 0",
        )
    return Verdict(True, "")
