"""The edge cells: where p_fused has beaten p_mkt out of sample (pure data and arithmetic).

A cell is (city, bucket of local hours of the climate day, bucket of the market's price p_mkt
of the bracket). Its gain is the mean per-bracket Bernoulli log-loss of p_mkt minus that of
p_fused_norm on walk-forward days (positive: p_fused better), with a 95% bootstrap interval
resampling whole events; it is *open* — entries allowed — only when the whole interval is
above zero. `kwx.pmf.edge` measures and stores them; `kwx.strategy.edge` gates entries on them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "HOUR_EDGES",
    "PRICE_EDGES",
    "EdgeCell",
    "EdgeCells",
    "hour_bucket",
    "hour_label",
    "price_bucket",
    "price_label",
]

HOUR_EDGES: Final = (0, 4, 8, 12, 16, 20)  # first local hour of each bucket
PRICE_EDGES: Final = (0.0, 0.05, 0.15, 0.35, 0.65, 0.85, 0.95)  # first p_mkt of each bucket


def hour_bucket(hour: float) -> int:
    """Index of the hour bucket holding a local hour of the climate day (0 ≤ hour < 24)."""
    return max(0, min(bisect.bisect_right(HOUR_EDGES, math.floor(hour)) - 1, len(HOUR_EDGES) - 1))


def price_bucket(p_mkt: float) -> int:
    """Index of the price bucket holding p_mkt (clipped into [0, 1])."""
    p = min(max(p_mkt, 0.0), 1.0)
    return max(0, min(bisect.bisect_right(PRICE_EDGES, p) - 1, len(PRICE_EDGES) - 1))


def hour_label(j: int) -> str:
    end = HOUR_EDGES[j + 1] if j + 1 < len(HOUR_EDGES) else 24
    return f"{HOUR_EDGES[j]:02d}–{end:02d}"


def price_label(j: int) -> str:
    end = PRICE_EDGES[j + 1] if j + 1 < len(PRICE_EDGES) else 1.0
    return f"{PRICE_EDGES[j]:.2f}–{end:.2f}"


@dataclass(frozen=True)
class EdgeCell:
    """One measured cell: the mean per-bracket log-loss gain of p_fused over p_mkt (positive:
    p_fused better), its 95% event-bootstrap interval, and how much data it rests on."""

    city: str
    hour: int  # bucket index into HOUR_EDGES
    price: int  # bucket index into PRICE_EDGES
    gain: float
    gain_lo: float
    gain_hi: float
    n_events: int
    n_rows: int

    @property
    def open(self) -> bool:
        """Entries allowed: the whole interval is above zero."""
        return self.gain_lo > 0.0

    @property
    def label(self) -> str:
        return f"{self.city} {hour_label(self.hour)} p {price_label(self.price)}"


class EdgeCells:
    """The measured cells of a run, looked up by (city, local hour, p_mkt)."""

    def __init__(self, cells: Iterable[EdgeCell]) -> None:
        self._cells: Mapping[tuple[str, int, int], EdgeCell] = {
            (c.city, c.hour, c.price): c for c in cells
        }

    def __len__(self) -> int:
        return len(self._cells)

    def __iter__(self) -> Iterator[EdgeCell]:
        return iter(self._cells.values())

    @property
    def cities(self) -> set[str]:
        return {c for c, _, _ in self._cells}

    def open_cells(self, city: str | None = None) -> list[EdgeCell]:
        return [c for c in self._cells.values() if c.open and city in (None, c.city)]

    def cell(self, city: str, hour: float, p_mkt: float) -> EdgeCell | None:
        return self._cells.get((city, hour_bucket(hour), price_bucket(p_mkt)))
