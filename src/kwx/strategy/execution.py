"""The execution policy: from a bracket's edge to order intents, maker first.

For each bracket and direction (buy YES, or buy NO), at the executable prices after Kalshi's
fees (:func:`kwx.strategy.signals.value_edge`):

1. **taker** when the edge at the touch plus slippage, after the taker fee, clears the higher
   ``taker_edge`` — the opportunity is big enough to pay for immediacy;
2. else **maker**: a limit one tick inside the touch (or at it when the spread is one tick)
   when the edge there, after the maker fee (zero in ``quadratic`` series such as KXHIGH*),
   clears ``maker_edge``;
3. resting limits are **cancelled** when stale (older than ``order_ttl_min``) or when their
   edge fell below half the maker threshold, and **amended** when the best maker price moved;
4. positions are **exited** as takers when the value turned against them by ``exit_edge``
   after the fee (selling at the bid what the model now prices lower).

The gates (p in [p_min, p_max], volume, spread, |S|) decide whether entries are considered at
all; exits and cancels are always allowed. Sizes respect the per-bracket position limit
(risk checks it again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from kwx.domain import fees
from kwx.engine.ports import (
    ONE,
    ZERO,
    Amend,
    BracketView,
    Cancel,
    Intent,
    Order,
    PlaceLimit,
    PlaceTaker,
    Side,
)
from kwx.strategy.config import ExecutionConfig, RiskConfig
from kwx.strategy.signals import value_edge

__all__ = ["Gate", "bracket_intents", "gate", "maker_price"]

TICK: Final = Decimal("0.01")
MIN_PRICE: Final = Decimal("0.01")
MAX_PRICE: Final = Decimal("0.99")


@dataclass(frozen=True)
class Gate:
    """Whether entries are allowed on a bracket now, and why not."""

    ok: bool
    reason: str


def gate(b: BracketView, cfg: ExecutionConfig) -> Gate:
    """The entry gates: probability range, quotes and spread, volume, |S|."""
    if b.p is None:
        return Gate(False, "no probability")
    if not cfg.p_min <= b.p <= cfg.p_max:
        return Gate(False, f"p {b.p:.3f} outside [{cfg.p_min}, {cfg.p_max}]")
    spread = b.spread
    if spread is None:
        return Gate(False, "no two-sided quote")
    if spread > cfg.max_spread:
        return Gate(False, f"spread {spread} > {cfg.max_spread}")
    if b.volume_20m < cfg.min_volume_20m:
        return Gate(False, f"volume_20m {b.volume_20m:g} < {cfg.min_volume_20m:g}")
    s = b.signal if b.signal is not None else 0.0
    if abs(s) < cfg.signal_threshold:
        return Gate(False, f"|S| {abs(s):.2f} < {cfg.signal_threshold}")
    return Gate(True, "")


def maker_price(side: Side, b: BracketView, improve: Decimal) -> Decimal | None:
    """A buy limit for ``side`` one ``improve`` inside the touch, never crossing it."""
    if b.yes_bid is None or b.yes_ask is None:
        return None
    if side == "yes":
        bid, ask = b.yes_bid, b.yes_ask
    else:
        bid, ask = ONE - b.yes_ask, ONE - b.yes_bid
    price = min(bid + improve, ask - TICK)
    price = max(price, bid)
    if not MIN_PRICE <= price <= MAX_PRICE or price >= ask:
        return None
    return price


def _taker_price(side: Side, b: BracketView, slippage: Decimal) -> Decimal | None:
    no_ask = None if b.yes_bid is None else ONE - b.yes_bid
    touch = b.yes_ask if side == "yes" else no_ask
    if touch is None:
        return None
    price = touch + slippage
    return price if MIN_PRICE <= price <= MAX_PRICE else None


def _room(side: Side, held: Decimal, resting: Sequence[Order], cap: Decimal) -> Decimal:
    """Contracts we may still buy of ``side`` under the per-bracket cap."""
    same = sum((o.remaining for o in resting if o.side == side and o.action == "buy"), ZERO)
    holding = held if side == "yes" else -held
    if holding < 0:  # we hold the other side: buying this one first closes it
        return max(cap + abs(holding) - same, ZERO)
    return max(cap - holding - same, ZERO)


def bracket_intents(
    b: BracketView,
    *,
    held: Decimal,
    resting: Sequence[Order],
    now_minutes: float,
    fee_type: str,
    cfg: ExecutionConfig,
    risk: RiskConfig,
    entries_allowed: bool,
) -> list[Intent]:
    """Intents for one bracket; ``now_minutes`` is the snapshot time in minutes (for ages)."""
    out: list[Intent] = []
    p = b.p

    # Exits: the model now prices our holding below what the market pays for it.
    if p is not None and held != 0:
        side: Side = "yes" if held > 0 else "no"
        count = abs(held)
        bid = b.yes_bid if side == "yes" else (None if b.yes_ask is None else ONE - b.yes_ask)
        if bid is not None and bid - cfg.taker_slippage >= MIN_PRICE:
            price = bid - cfg.taker_slippage
            p_side = p if side == "yes" else 1.0 - p
            fee = fees.fee(count, price, is_taker=True, fee_type=fee_type)
            gain = price - Decimal(repr(round(p_side, 6))) - fee / count
            if gain >= cfg.exit_edge:
                out.append(PlaceTaker(b.ticker, side, "sell", price, count, "exit: value"))

    # Manage resting limits: stale → cancel; price moved → amend; edge gone → cancel.
    live: list[Order] = []
    for o in resting:
        age = now_minutes - o.created_at.timestamp() / 60.0
        if age >= cfg.order_ttl_min:
            out.append(Cancel(o.order_id, "stale"))
            continue
        if o.action != "buy":
            live.append(o)
            continue
        target = maker_price(o.side, b, cfg.improve) if entries_allowed else None
        if p is None or target is None:
            out.append(Cancel(o.order_id, "no entry now"))
            continue
        edge_now = value_edge(p, o.side, o.price, o.remaining, is_taker=False, fee_type=fee_type)
        if edge_now < cfg.maker_edge / 2:
            out.append(Cancel(o.order_id, f"edge {edge_now:.3f} gone"))
            continue
        if target != o.price:
            edge_t = value_edge(p, o.side, target, o.remaining, is_taker=False, fee_type=fee_type)
            if edge_t >= cfg.maker_edge:
                out.append(Amend(o.order_id, target, o.remaining, "reprice"))
        live.append(o)

    if not entries_allowed or p is None:
        return out
    s = b.signal if b.signal is not None else 0.0
    sides: tuple[Side, ...] = ("yes", "no")
    for side in sides:
        if cfg.require_signal_agreement and (s < 0 if side == "yes" else s > 0):
            continue
        room = _room(side, held, live, risk.max_position)
        count = min(cfg.order_count, room)
        if count <= 0:
            continue
        taker = _taker_price(side, b, cfg.taker_slippage)
        if taker is not None:
            edge = value_edge(p, side, taker, count, is_taker=True, fee_type=fee_type)
            if edge >= cfg.taker_edge:
                out.append(PlaceTaker(b.ticker, side, "buy", taker, count, f"taker edge {edge}"))
                continue
        if any(o.side == side and o.action == "buy" for o in live):
            continue  # one resting entry per side is enough
        limit = maker_price(side, b, cfg.improve)
        if limit is None:
            continue
        edge = value_edge(p, side, limit, count, is_taker=False, fee_type=fee_type)
        if edge >= cfg.maker_edge:
            out.append(PlaceLimit(b.ticker, side, "buy", limit, count, f"maker edge {edge}"))
    return out
