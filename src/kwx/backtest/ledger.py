"""The ledger's records: one row per fill and one per settled market.

These two dataclasses are the only thing metrics and the report read, so backtest, paper and
live produce the same numbers from the same rows. Money is ``Decimal`` (dollars); the model's
probabilities ride along as floats only to slice the P&L by regime.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

import pandas as pd

__all__ = ["FILL_COLUMNS", "FillRecord", "Settlement", "fills_frame", "settlements_frame"]


@dataclass(frozen=True)
class FillRecord:
    """One fill of one of our orders.

    ``price`` is the price of the side traded (a NO buy at 0.70 has ``price == 0.70``, i.e. a
    YES price of 0.30), in dollars; ``count`` contracts; ``fee`` in dollars, already charged.
    ``ts`` is timezone-aware UTC. ``quote_source`` is where the touch at the fill's minute came
    from: ``real`` (the exchange's bid/ask), ``rebuilt`` (the quote model, from prints; a side
    of each counts as ``rebuilt``) or ``""`` when unknown (live fills, old rows).
    """

    ts: datetime
    ticker: str
    event_ticker: str
    city: str
    side: Literal["yes", "no"]
    action: Literal["buy", "sell"]
    price: Decimal
    count: Decimal
    fee: Decimal
    is_taker: bool
    hazard_next_60m: float | None
    p_fused_norm: float | None
    order_id: str
    quote_source: str = ""

    def __post_init__(self) -> None:
        where = f"fill {self.order_id!r} on {self.ticker!r}"
        if self.ts.tzinfo is None:
            raise ValueError(f"{where}: ts must be timezone-aware (UTC), got {self.ts!r}")
        if self.side not in ("yes", "no"):
            raise ValueError(f"{where}: side must be 'yes' or 'no', got {self.side!r}")
        if self.action not in ("buy", "sell"):
            raise ValueError(f"{where}: action must be 'buy' or 'sell', got {self.action!r}")
        for name in ("price", "count", "fee"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"{where}: {name} must be a Decimal, got {getattr(self, name)!r}")
        if not Decimal(0) <= self.price <= Decimal(1):
            raise ValueError(f"{where}: price {self.price} is outside [0, 1] dollars")
        if self.count <= 0:
            raise ValueError(f"{where}: count must be > 0, got {self.count}")
        if self.fee < 0:
            raise ValueError(f"{where}: fee must be >= 0, got {self.fee}")


@dataclass(frozen=True)
class Settlement:
    """The result of one market: YES pays $1 per YES contract, NO pays $1 per NO contract."""

    ticker: str
    event_ticker: str
    city: str
    climate_date: date
    result: Literal["yes", "no"]
    settled_at: datetime

    def __post_init__(self) -> None:
        if self.result not in ("yes", "no"):
            raise ValueError(
                f"settlement {self.ticker!r}: result must be 'yes' or 'no', got {self.result!r}"
            )
        if self.settled_at.tzinfo is None:
            raise ValueError(f"settlement {self.ticker!r}: settled_at must be timezone-aware")


FILL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(FillRecord))
SETTLEMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Settlement))


def fills_frame(fills: Iterable[FillRecord]) -> pd.DataFrame:
    """Return the fills as a DataFrame, one row per fill, in the order given.

    Money columns (``price``, ``count``, ``fee``) stay ``Decimal`` objects (dtype object) so
    sums are exact; ``ts`` is a UTC ``datetime64``; the float columns use NaN for None. An empty
    input gives an empty frame with the same columns.
    """
    rows = [{name: getattr(f, name) for name in FILL_COLUMNS} for f in fills]
    frame = pd.DataFrame(rows, columns=list(FILL_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for name in ("hazard_next_60m", "p_fused_norm"):
        frame[name] = pd.to_numeric(frame[name], errors="raise").astype("float64")
    frame["is_taker"] = frame["is_taker"].astype(bool)
    for name in ("price", "count", "fee"):
        frame[name] = frame[name].astype(object)
    return frame


def settlements_frame(settlements: Iterable[Settlement]) -> pd.DataFrame:
    """Return the settlements as a DataFrame (``settled_at`` UTC), one row per market."""
    rows = [{name: getattr(s, name) for name in SETTLEMENT_COLUMNS} for s in settlements]
    frame = pd.DataFrame(rows, columns=list(SETTLEMENT_COLUMNS))
    frame["settled_at"] = pd.to_datetime(frame["settled_at"], utc=True)
    return frame
