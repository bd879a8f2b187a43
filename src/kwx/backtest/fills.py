"""Fill models for the simulated venue, selectable by name per run.

Every model answers one question — which of the market data after an order was placed would
have filled it, and how much — and reads nothing but the :class:`~kwx.engine.tape.MarketTape`
from the order's placement on (the venue asserts it). Prices and sizes are integers
(micro-dollars, hundredths of a contract), so matching is exact. Orders are described by the
book level they rest at (Kalshi's books hold only bids: a YES ask at P is a NO bid at 1 − P);
a trade print hit the bid of one side at that side's price.

=========  ==================================================================================
name       a resting order at (side, L) fills…
=========  ==================================================================================
taker      never: only taker orders trade, at the touch plus slippage (the pessimistic bound
           for maker orders).
maker-a    in each whole minute after placement whose trades went *through* L (for a YES bid:
           the minute's low < L; a print at L may have filled only the queue ahead of us), by
           ``participation`` × the minute's volume. Reads only the minute bars.
maker-b    from each print that hit bids on our side strictly through L (at price < L), up to
           the print's size. No queue, but no fill at our price either (issue 13: a maker is
           filled when the market trades through it — that is where adverse selection lives).
queue      queue-aware (hftbacktest style): the size ahead of us at L is taken from L2 depth
           when recorded (``md.orderbook_snapshot``/``_delta``), counted down by prints at L,
           and optionally by cancels at L with a probabilistic split (the share of a cancel
           that was ahead of us is Qᵃ/(Qᵃ + Bᵃ), Q ahead, B behind); we fill once it is gone,
           from the rest of the prints at L, and entirely on a print through L. Without depth
           data (true of every 2023–24 market in ../shared/data: md.top_of_book has no sizes)
           the queue ahead is *assumed*: the contracts printed at L on our side in the
           ``lookback_min`` minutes before placement, or zero when L improves on the touch.
=========  ==================================================================================

Taker orders fill the same way under every model (in the venue): at the touch plus
``slippage`` (1¢ by default), or not at all when that is beyond the order's limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import numpy as np

from kwx.engine.sim_venue import FillModel, SimOrder
from kwx.engine.tape import HUNDREDTHS, MICRO, NS_PER_MIN, MarketTape, Prints, to_micro

__all__ = [
    "FILL_MODELS",
    "MakerA",
    "MakerB",
    "QueueFill",
    "TakerOnly",
    "make_fill_model",
]

DEFAULT_SLIPPAGE: Final = Decimal("0.01")


def _hits_on(prints: Prints, sl: slice, book_side: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask of prints in ``sl`` that hit bids on ``book_side``, their bid prices)."""
    taker_yes = prints.taker_yes[sl]
    yes_price = prints.yes_price[sl]
    if book_side == "yes":
        return ~taker_yes, yes_price
    return taker_yes, MICRO - yes_price


@dataclass
class TakerOnly:
    """``taker``: resting limit orders never fill; takers pay the touch plus slippage."""

    slippage: Decimal = DEFAULT_SLIPPAGE
    name: str = "taker"

    def on_place(self, order: SimOrder, tape: MarketTape, touch: Decimal | None) -> None:
        del order, tape, touch

    def match(
        self, order: SimOrder, tape: MarketTape, start_ns: int, end_ns: int
    ) -> list[tuple[int, int]]:
        del order, tape, start_ns, end_ns
        return []

    def assumptions(self) -> list[str]:
        return [
            f"Fill model 'taker': taker orders fill at the touch plus {self.slippage} "
            "slippage (within the quote model's depth when one is used); resting limit orders "
            "are never filled (a pessimistic bound for makers)."
        ]


@dataclass
class MakerA:
    """``maker-a``: minute bars reaching the limit fill a share of the minute's volume."""

    participation: float = 0.2
    slippage: Decimal = DEFAULT_SLIPPAGE
    name: str = "maker-a"

    def __post_init__(self) -> None:
        if not 0.0 < self.participation <= 1.0:
            raise ValueError(f"maker-a: participation must be in (0, 1], got {self.participation}")

    def on_place(self, order: SimOrder, tape: MarketTape, touch: Decimal | None) -> None:
        del order, tape, touch

    def match(
        self, order: SimOrder, tape: MarketTape, start_ns: int, end_ns: int
    ) -> list[tuple[int, int]]:
        bars = tape.bars(order.order.ticker)
        # Only whole minutes that began at or after placement (no peeking into a minute the
        # order joined half-way: orders are placed on minute boundaries anyway).
        sl = bars.window(max(start_ns, order.placed_ns), end_ns)
        if sl.stop <= sl.start:
            return []
        if order.book_side == "yes":
            reached = bars.low[sl] < order.book_price
        else:
            reached = (MICRO - bars.high[sl]) < order.book_price
        # Whole contracts (hundredths: counts are stored to 0.01 contract).
        qty = (np.floor(bars.volume[sl] * self.participation / HUNDREDTHS) * HUNDREDTHS).astype(
            np.int64
        )
        out: list[tuple[int, int]] = []
        for start, q, ok in zip(bars.start_ns[sl], qty, reached, strict=True):
            if ok and q > 0:
                out.append((int(start) + NS_PER_MIN - 1_000, int(q)))  # at the minute's end
        return out

    def assumptions(self) -> list[str]:
        return [
            "Fill model 'maker-a': a resting limit fills in each whole minute after placement "
            "whose trades went through its price (YES bid L: the minute's low < L; NO bid: the "
            f"high > 1 − L), by {self.participation:.0%} of that minute's volume "
            "(whole contracts), at the limit; "
            f"takers pay the touch plus {self.slippage}."
        ]


@dataclass
class MakerB:
    """``maker-b``: every print through the limit on our side fills us, up to its size."""

    slippage: Decimal = DEFAULT_SLIPPAGE
    name: str = "maker-b"

    def on_place(self, order: SimOrder, tape: MarketTape, touch: Decimal | None) -> None:
        del order, tape, touch

    def match(
        self, order: SimOrder, tape: MarketTape, start_ns: int, end_ns: int
    ) -> list[tuple[int, int]]:
        prints = tape.prints(order.order.ticker)
        sl = prints.window(max(start_ns, order.placed_ns), end_ns)
        if sl.stop <= sl.start:
            return []
        hits, price = _hits_on(prints, sl, order.book_side)
        ok = hits & (price < order.book_price)
        return [
            (int(t), int(c))
            for t, c in zip(prints.ts_ns[sl][ok], prints.count[sl][ok], strict=True)
        ]

    def assumptions(self) -> list[str]:
        return [
            "Fill model 'maker-b': a resting limit fills from every trade print (md.trades) "
            "after placement that hit bids on its side strictly through its price, up to the "
            "print's size (a print at the price fills nobody: the queue is unknown); takers "
            "pay the touch "
            f"plus {self.slippage}."
        ]


@dataclass
class QueueFill:
    """``queue``: queue position from L2 depth (or an assumption), counted down by prints."""

    slippage: Decimal = DEFAULT_SLIPPAGE
    cancels: bool = True
    power: float = 2.0
    lookback_min: int = 30
    name: str = "queue"
    used_depth: set[str] = field(default_factory=set)
    assumed_depth: set[str] = field(default_factory=set)

    def on_place(self, order: SimOrder, tape: MarketTape, touch: Decimal | None) -> None:
        ticker = order.order.ticker
        book = tape.book(ticker)
        depth = book.depth(order.book_side, order.book_price, order.placed_ns) if book else None
        if depth is not None:
            self.used_depth.add(ticker)
            order.state.update(ahead=depth, level=depth, pending=0, source=1)
            return
        self.assumed_depth.add(ticker)
        if touch is not None and order.book_price > to_micro(touch):
            ahead = 0  # we improve on the best bid: nobody is ahead at our new price
        else:
            prints = tape.prints(ticker)
            sl = prints.window(order.placed_ns - self.lookback_min * NS_PER_MIN, order.placed_ns)
            hits, price = _hits_on(prints, sl, order.book_side)
            ahead = int(prints.count[sl][hits & (price == order.book_price)].sum())
        order.state.update(ahead=ahead, level=ahead, pending=0, source=0)

    def _cancel_share(self, ahead: float, behind: float) -> float:
        if ahead <= 0:
            return 0.0
        a, b = ahead**self.power, behind**self.power
        return float(a / (a + b))

    def match(
        self, order: SimOrder, tape: MarketTape, start_ns: int, end_ns: int
    ) -> list[tuple[int, int]]:
        ticker = order.order.ticker
        start_ns = max(start_ns, order.placed_ns)
        prints = tape.prints(ticker)
        sl = prints.window(start_ns, end_ns)
        hits, price = _hits_on(prints, sl, order.book_side)
        relevant = hits & (price <= order.book_price)
        events: list[tuple[int, int, int, int]] = [  # (time, kind 0=print 1=book, price, size)
            (int(t), 0, int(p), int(c))
            for t, p, c in zip(
                prints.ts_ns[sl][relevant], price[relevant], prints.count[sl][relevant], strict=True
            )
        ]
        book = tape.book(ticker) if order.state.get("source") == 1 else None
        if book is not None:
            events.extend(
                (t, 1, order.book_price, d)
                for t, d in book.changes(order.book_side, order.book_price, start_ns, end_ns)
            )
            events.sort(key=lambda e: (e[0], e[1]))
        ahead = float(order.state["ahead"])
        level = float(order.state["level"])
        pending = float(order.state["pending"])
        remaining = order.remaining
        out: list[tuple[int, int]] = []
        for t, kind, p, size in events:
            if remaining <= 0:
                break
            if kind == 0:
                if p < order.book_price:  # a print through our price: our level was emptied
                    out.append((t, remaining))
                    remaining = 0
                    ahead = 0.0
                    continue
                pending += size
                if size > ahead:
                    q = min(remaining, int(size - ahead))
                    if q > 0:
                        out.append((t, q))
                        remaining -= q
                    ahead = 0.0
                else:
                    ahead -= size
                level = max(level - size, 0.0)
            elif size < 0:  # the level shrank: by the prints we saw, or by cancels
                shrink = float(-size)
                explained = min(shrink, pending)
                pending -= explained
                cancelled = shrink - explained
                if self.cancels and cancelled > 0:
                    behind = max(level - ahead, 0.0)
                    ahead = max(ahead - cancelled * self._cancel_share(ahead, behind), 0.0)
                level = max(level - cancelled, 0.0)
            else:
                level += size  # orders joining the level queue behind us
        order.state.update(ahead=ahead, level=level, pending=pending)
        return out

    def assumptions(self) -> list[str]:
        notes = [
            "Fill model 'queue': the size ahead of us at our price is counted down by prints at "
            "that price; a print through our price fills what is left; "
            + (
                f"cancels at the level reduce it by the share Qᵃ/(Qᵃ+Bᵃ), a = {self.power}."
                if self.cancels
                else "cancels are ignored (conservative)."
            )
            + f" Takers pay the touch plus {self.slippage}."
        ]
        if self.assumed_depth:
            notes.append(
                f"No order-book depth was recorded for {len(self.assumed_depth)} market(s) we "
                "quoted (md.top_of_book has no sizes; md.orderbook_* is empty there): the queue "
                f"ahead was assumed to be the contracts printed at our price on our side in the "
                f"{self.lookback_min} minutes before placement, or zero when our price improved "
                "on the touch."
            )
        if self.used_depth:
            notes.append(f"L2 depth gave the queue for {len(self.used_depth)} market(s).")
        return notes


FILL_MODELS: Final[dict[str, type[TakerOnly] | type[MakerA] | type[MakerB] | type[QueueFill]]] = {
    "taker": TakerOnly,
    "maker-a": MakerA,
    "maker-b": MakerB,
    "queue": QueueFill,
}


def make_fill_model(name: str, *, slippage: Decimal = DEFAULT_SLIPPAGE) -> FillModel:
    """A fresh fill model by name (``taker``, ``maker-a``, ``maker-b``, ``queue``)."""
    try:
        cls = FILL_MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown fill model {name!r}; choose one of {', '.join(FILL_MODELS)}"
        ) from None
    model: FillModel = cls(slippage=slippage)
    return model
