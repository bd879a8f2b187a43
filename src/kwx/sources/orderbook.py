"""An in-memory L2 order book for one Kalshi market, kept from WebSocket snapshots and deltas.

Kalshi books hold resting *bids* only: YES bids and NO bids. A NO bid at NO-leg price q is the
same order as a YES offer at 1 − q, so the YES ask is read off the NO side. Which number the
NO side carries depends on the subscription's ``use_yes_price`` flag (reference §7.5): with
``False`` (the default today) NO levels are in NO-leg prices, with ``True`` they are already
converted to YES-leg prices. Mixing the two conventions silently inverts the book, so every
book knows its convention and every quote is computed for it.

Pure: no I/O, no clocks. Sizes and prices are exact ``Decimal``; a level whose size falls to
zero or below is removed, as Kalshi's delta rule prescribes.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

__all__ = ["Level", "OrderBook", "Side"]

Side = Literal["yes", "no"]
Level = tuple[Decimal, Decimal]

_ONE = Decimal(1)
_ZERO = Decimal(0)


class OrderBook:
    """Resting bids per side; ``no`` prices follow ``use_yes_price`` (see the module notes)."""

    __slots__ = ("_no", "_yes", "ticker", "use_yes_price")

    def __init__(self, ticker: str, use_yes_price: bool) -> None:
        self.ticker = ticker
        self.use_yes_price = use_yes_price
        self._yes: dict[Decimal, Decimal] = {}
        self._no: dict[Decimal, Decimal] = {}

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.ticker!r}, use_yes_price={self.use_yes_price}, "
            f"yes={self.levels('yes')}, no={self.levels('no')})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrderBook):
            return NotImplemented
        return (
            self.ticker == other.ticker
            and self.use_yes_price == other.use_yes_price
            and self._yes == other._yes
            and self._no == other._no
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _side(self, side: str) -> dict[Decimal, Decimal]:
        if side == "yes":
            return self._yes
        if side == "no":
            return self._no
        raise ValueError(f"side must be 'yes' or 'no', got {side!r}")

    # ------------------------------------------------------------------ updates

    def clear(self) -> None:
        self._yes.clear()
        self._no.clear()

    def apply_snapshot(self, yes_levels: Iterable[Level], no_levels: Iterable[Level]) -> None:
        """Replace the whole book. A price listed twice is summed, so nothing is lost."""
        self.clear()
        for book, levels in ((self._yes, yes_levels), (self._no, no_levels)):
            for price, size in levels:
                book[price] = book.get(price, _ZERO) + size
            for price in [p for p, s in book.items() if s <= 0]:
                del book[price]

    def apply_delta(self, side: str, price: Decimal, delta: Decimal) -> Decimal:
        """``book[side][price] += delta``; returns the new size (0 when the level went away)."""
        book = self._side(side)
        size = book.get(price, _ZERO) + delta
        if size <= 0:
            book.pop(price, None)
            return _ZERO
        book[price] = size
        return size

    # ------------------------------------------------------------------ reads

    def levels(self, side: str) -> list[Level]:
        """(price, size) ascending by price, in this book's convention for ``side``."""
        return sorted(self._side(side).items())

    def size_at(self, side: str, price: Decimal) -> Decimal:
        return self._side(side).get(price, _ZERO)

    def depth(self, side: str) -> Decimal:
        """Total resting size on one side."""
        return sum(self._side(side).values(), _ZERO)

    @property
    def is_empty(self) -> bool:
        return not self._yes and not self._no

    @property
    def best_yes_bid(self) -> Decimal | None:
        return max(self._yes) if self._yes else None

    @property
    def best_yes_ask(self) -> Decimal | None:
        """Lowest price at which someone sells YES, i.e. the best NO bid seen from the YES leg."""
        if not self._no:
            return None
        return min(self._no) if self.use_yes_price else _ONE - max(self._no)

    @property
    def best_no_bid(self) -> Decimal | None:
        """In NO-leg prices, whatever the book's convention."""
        if not self._no:
            return None
        return _ONE - min(self._no) if self.use_yes_price else max(self._no)

    @property
    def best_no_ask(self) -> Decimal | None:
        """In NO-leg prices: buying NO matches the best YES bid."""
        return _ONE - max(self._yes) if self._yes else None

    # ------------------------------------------------------------------ conversion

    def converted(self, use_yes_price: bool) -> OrderBook:
        """A copy in the other convention (or an identical copy); the market is unchanged."""
        out = OrderBook(self.ticker, use_yes_price)
        out._yes = dict(self._yes)
        if use_yes_price == self.use_yes_price:
            out._no = dict(self._no)
        else:
            out._no = {_ONE - price: size for price, size in self._no.items()}
        return out
