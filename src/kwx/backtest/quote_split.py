"""P&L by quote source: how much of a backtest's result was earned on the exchange's own bid/ask
and how much on quotes rebuilt from trade prints.

Why: a rebuilt quote is a model of the book, and the issue that started this (13) found the old
rebuild kinder than the real book by 15–19 ¢ a contract. Whatever the rebuild, a P&L made
mostly on rebuilt quotes is an estimate of an estimate; the report's headline says so in plain
words (:func:`rebuilt_warning`) rather than leaving it to a footnote.

Each fill is held to its market's settlement (:func:`kwx.backtest.metrics.fill_pnl`), so the
rows add up to the run's P&L; a market with no result counts only when traded back to flat
(marked at its last price), like the metrics' booked positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from kwx.backtest.ledger import FillRecord, Settlement
from kwx.backtest.metrics import _yes_terms, fill_pnl

__all__ = ["REBUILT_DOMINATES", "QuoteSourceRow", "quote_source_split", "rebuilt_warning"]

REBUILT_DOMINATES: Final = 0.5  # share of contracts traded on rebuilt quotes that draws a warning
_ORDER: Final = ("real", "rebuilt", "none", "")


@dataclass(frozen=True)
class QuoteSourceRow:
    """One quote source's fills: contracts, fees and P&L held to settlement (dollars)."""

    source: str
    fills: int
    contracts: Decimal
    fees: Decimal
    pnl: Decimal

    @property
    def pnl_per_contract(self) -> Decimal | None:
        return None if self.contracts == 0 else self.pnl / self.contracts

    def as_dict(self) -> dict[str, object]:
        per = self.pnl_per_contract
        return {
            "source": self.source or "unknown",
            "fills": self.fills,
            "contracts": str(self.contracts),
            "fees": str(self.fees),
            "pnl": str(self.pnl),
            "pnl_per_contract": None if per is None else float(per),
        }


def quote_source_split(
    fills: Sequence[FillRecord], settlements: Sequence[Settlement]
) -> list[QuoteSourceRow]:
    """One row per quote source present among the settled fills (real first)."""
    value = {s.ticker: Decimal(1 if s.result == "yes" else 0) for s in settlements}
    # A market without a result that was traded back to flat still has a P&L (the round
    # trip's); any mark gives the same total, and its last traded price splits it sensibly.
    net: dict[str, Decimal] = {}
    last: dict[str, Decimal] = {}
    for f in sorted(fills, key=lambda f: f.ts):
        qty, yes_price = _yes_terms(f)
        net[f.ticker] = net.get(f.ticker, Decimal(0)) + qty
        last[f.ticker] = yes_price
    for ticker, q in net.items():
        if ticker not in value and q == 0:
            value[ticker] = last[ticker]
    acc: dict[str, QuoteSourceRow] = {}
    for f in fills:
        if f.ticker not in value:
            continue
        r = acc.get(f.quote_source) or QuoteSourceRow(
            f.quote_source, 0, Decimal(0), Decimal(0), Decimal(0)
        )
        acc[f.quote_source] = QuoteSourceRow(
            r.source,
            r.fills + 1,
            r.contracts + f.count,
            r.fees + f.fee,
            r.pnl + fill_pnl(f, value[f.ticker]),
        )
    keys = sorted(acc, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER))
    return [acc[k] for k in keys]


def rebuilt_warning(rows: Sequence[QuoteSourceRow]) -> str | None:
    """A plain-words warning when rebuilt quotes carry at least half the contracts traded."""
    total = sum((r.contracts for r in rows), Decimal(0))
    rebuilt = sum((r.contracts for r in rows if r.source == "rebuilt"), Decimal(0))
    if total == 0 or rebuilt / total < Decimal(str(REBUILT_DOMINATES)):
        return None
    share = float(rebuilt / total)
    return (
        f"Warning: {share:.0%} of the contracts in this backtest were traded on quotes REBUILT "
        "from trade prints, not on the exchange's bid/ask. No real order book was recorded "
        "there: its P&L rests on a model of the book and may not be there to take live."
    )
