"""How the simulator fills *our* orders against a replayed market that never saw them.

The replayed book and prints are what other people did; our orders were not in that market.
A fill model answers two questions conservatively:

* **Taker**: an order that crosses the replayed touch fills at the replayed levels' prices
  (best first, within our limit), up to their sizes. Whatever is left rests or is cancelled
  according to the order's time in force.
* **Maker**: a resting order fills only when a replayed print reaches it. A print *through*
  our price (a sale below our bid, a purchase above our ask) means the whole level would have
  traded first, so it fills us up to the print's size. A print *at* our price by a taker on the
  other side first eats the size that was queued ahead of us when we joined the level
  (hftbacktest's conservative rule: only trades move the queue; a level that shrinks below
  our place moves us up too), and only the rest reaches us. A print on our own side of the
  book at our price (another buyer lifting an offer at our bid) never fills us.

``cross`` is that model. ``optimistic`` is the same with nothing ever queued ahead of us (an
upper bound on maker fills).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = ["FILL_MODELS", "FillModel", "TradeFill", "fill_model"]

_ZERO = Decimal(0)
Side = Literal["bid", "ask"]


@dataclass(frozen=True)
class TradeFill:
    """What one print did to one resting order."""

    filled: Decimal
    queue_ahead: Decimal  # after the print
    consumed: Decimal  # of the print's size (queue ahead of us plus our fill)


@dataclass(frozen=True)
class FillModel:
    name: str
    queue: bool
    description: str

    def initial_queue(self, replayed_size_at_price: Decimal) -> Decimal:
        """Size ahead of an order that joins a level holding ``replayed_size_at_price``."""
        return replayed_size_at_price if self.queue else _ZERO

    @staticmethod
    def taker_fills(
        side: Side,
        limit: Decimal,
        count: Decimal,
        opposite: Sequence[tuple[Decimal, Decimal]],
    ) -> list[tuple[Decimal, Decimal]]:
        """(price, size) our order takes from ``opposite`` (offers for a bid, bids for an ask,
        best first), within ``limit``, up to ``count``."""
        out: list[tuple[Decimal, Decimal]] = []
        left = count
        for price, size in opposite:
            if left <= 0:
                break
            if (side == "bid" and price > limit) or (side == "ask" and price < limit):
                break
            take = min(left, size)
            if take > 0:
                out.append((price, take))
                left -= take
        return out

    def on_trade(
        self,
        side: Side,
        price: Decimal,
        queue_ahead: Decimal,
        remaining: Decimal,
        trade_price: Decimal,
        trade_taker: str | None,
        available: Decimal,
    ) -> TradeFill:
        """The effect of a print (``available`` of its size still unclaimed) on our order."""
        if available <= 0 or remaining <= 0:
            return TradeFill(_ZERO, queue_ahead, _ZERO)
        if side == "bid":
            through = trade_price < price
            at = trade_price == price and trade_taker in ("no", None)
        else:
            through = trade_price > price
            at = trade_price == price and trade_taker in ("yes", None)
        if through:
            filled = min(remaining, available)
            return TradeFill(filled, _ZERO, filled)
        if not at:
            return TradeFill(_ZERO, queue_ahead, _ZERO)
        ahead_used = min(queue_ahead if self.queue else _ZERO, available)
        filled = min(remaining, available - ahead_used)
        return TradeFill(filled, queue_ahead - ahead_used, ahead_used + filled)


FILL_MODELS: dict[str, FillModel] = {
    "cross": FillModel(
        "cross",
        queue=True,
        description="takers fill at the replayed touch; makers on prints at/through the price, "
        "behind the replayed size queued ahead",
    ),
    "optimistic": FillModel(
        "optimistic",
        queue=False,
        description="as cross, but nothing is ever queued ahead of a resting order",
    ),
}


def fill_model(name: str) -> FillModel:
    try:
        return FILL_MODELS[name]
    except KeyError:
        raise ValueError(
            f"fill model: unknown {name!r}; choose one of {', '.join(sorted(FILL_MODELS))}"
        ) from None
