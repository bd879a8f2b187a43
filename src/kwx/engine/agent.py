"""The agent: one loop that runs a strategy against a clock, a feed and a venue.

Per minute the feed yields, in this order:

1. the clock moves to the minute; the venue matches resting orders against the market data
   up to it and reports our fills (booked in the journal);
2. for each event in the step, risk marks our positions and updates the kill switches; the
   intents risk itself demands (cancel all when killed or at the time stop, flatten if asked)
   come first, then the strategy's (only when the snapshot passed the strategy's screen, or
   we have orders or positions in the event);
3. every intent is checked by risk; refused ones are logged with the reason and go no
   further; approved ones go to the venue; each is logged in exec.decisions with the
   bracket's features, probabilities, hazards, S_j(t), the execution type and the outcome.

Nothing here knows which mode it runs in: backtest, paper and live differ only in the clock,
feed and venue handed in (DESIGN.md principle 1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kwx.engine.journal import Journal
from kwx.engine.ports import (
    ZERO,
    AccountView,
    Amend,
    BracketView,
    Cancel,
    Clock,
    EventSnapshot,
    Feed,
    Fill,
    Intent,
    Order,
    PlaceLimit,
    PlaceTaker,
    Strategy,
    Venue,
)
from kwx.strategy.risk import RiskManager

__all__ = ["Agent", "AgentStats", "bracket_payload", "intent_payload"]

FillContext = Callable[[Fill], tuple[float | None, float | None]]


@dataclass
class AgentStats:
    """What the loop did: steps and snapshots seen, strategy calls, intents by outcome."""

    steps: int = 0
    snapshots: int = 0
    strategy_calls: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    fills: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "snapshots": self.snapshots,
            "strategy_calls": self.strategy_calls,
            "intents": dict(self.intents),
            "fills": self.fills,
        }


def bracket_payload(b: BracketView) -> dict[str, Any]:
    """What a decision row records of a bracket (the backtest's and the live loop's alike)."""
    return {
        "yes_bid": b.yes_bid,
        "yes_ask": b.yes_ask,
        "quote_source": b.quote_source,
        "p": b.p,
        "p_mkt": b.p_mkt,
        "p_wx": b.p_wx,
        "p_fused_norm": b.p_fused_norm,
        "hazard_next_5m": b.hazard_next_5m,
        "hazard_next_60m": b.hazard_next_60m,
        "signal": b.signal,
        "volume_20m": b.volume_20m,
        "minutes_to_close": b.minutes_to_close,
        "features": dict(b.features),
    }


def intent_payload(intent: Intent) -> dict[str, Any]:
    """What a decision row records of an intent (the backtest's and the live loop's alike)."""
    if isinstance(intent, PlaceLimit):
        return {
            "intent": "limit",
            "execution": "maker",
            "ticker": intent.ticker,
            "side": intent.side,
            "action": intent.action,
            "price": intent.price,
            "count": intent.count,
            "reason": intent.reason,
        }
    if isinstance(intent, PlaceTaker):
        return {
            "intent": "taker",
            "execution": "taker",
            "ticker": intent.ticker,
            "side": intent.side,
            "action": intent.action,
            "price": intent.limit,
            "count": intent.count,
            "reason": intent.reason,
        }
    if isinstance(intent, Amend):
        return {
            "intent": "amend",
            "execution": "maker",
            "order_id": intent.order_id,
            "price": intent.price,
            "count": intent.count,
            "reason": intent.reason,
        }
    return {
        "intent": "cancel",
        "execution": "cancel",
        "order_id": intent.order_id,
        "reason": intent.reason,
    }


class Agent:
    """Runs ``strategy`` with ``clock``, ``feed`` and ``venue``; risk checks every intent."""

    def __init__(
        self,
        *,
        strategy: Strategy,
        risk: RiskManager,
        clock: Clock,
        feed: Feed,
        venue: Venue,
        journal: Journal,
        fill_context: FillContext | None = None,
    ) -> None:
        self.strategy = strategy
        self.risk = risk
        self.clock = clock
        self.feed = feed
        self.venue = venue
        self.journal = journal
        self.fill_context = fill_context
        self.stats = AgentStats()
        self._holding: dict[str, set[str]] = {}  # event → tickers with a non-zero position
        self._resting_events: Counter[str] = Counter()
        self._orders_seen: dict[str, Order] = {}

    # ------------------------------------------------------------ Demand

    def needs_every_minute(self, event_ticker: str) -> bool:
        return self._resting_events[event_ticker] > 0

    def holdings(self, event_ticker: str) -> dict[str, Decimal]:
        positions = self.venue.positions()
        return {t: positions[t].yes_count for t in self._holding.get(event_ticker, ())}

    # ------------------------------------------------------------ loop

    def run(self) -> AgentStats:
        for step in self.feed.steps(self):
            self.clock.wait_until(step.ts)
            self.stats.steps += 1
            for fill in self.venue.advance(step.ts):
                self._on_fill(fill)
            self._refresh_resting()
            for snap in step.events:
                self._on_snapshot(snap)
        self.journal.flush()
        return self.stats

    def _refresh_resting(self) -> None:
        self._resting_events = Counter(o.event_ticker for o in self.venue.resting())

    def _on_fill(self, fill: Fill) -> None:
        self.stats.fills += 1
        hazard, p_fn = self.fill_context(fill) if self.fill_context else (None, None)
        self.journal.fill(fill, hazard_next_60m=hazard, p_fused_norm=p_fn)
        pos = self.venue.positions().get(fill.ticker)
        held = self._holding.setdefault(fill.event_ticker, set())
        if pos is not None and pos.yes_count != 0:
            held.add(fill.ticker)
        else:
            held.discard(fill.ticker)
        self._record_order(fill.order_id)

    def _record_order(self, order_id: str) -> None:
        order = self._order(order_id)
        if order is not None:
            self.journal.order(order)

    def _order(self, order_id: str) -> Order | None:
        finder = getattr(self.venue, "order", None)
        if callable(finder):
            found: Order = finder(order_id)
            return found
        return None

    def _account(self, snap: EventSnapshot) -> AccountView:
        resting = self.venue.resting(snap.event_ticker)
        state = self.risk.observe(snap, self.venue.positions(), resting, self.venue.resting())
        return AccountView(self.venue.positions(), resting, state)

    def _on_snapshot(self, snap: EventSnapshot) -> None:
        self.stats.snapshots += 1
        account = self._account(snap)
        intents: list[Intent] = self.risk.forced(snap, account)
        if (
            snap.screened
            or self.needs_every_minute(snap.event_ticker)
            or self._holding.get(snap.event_ticker)
        ):
            self.stats.strategy_calls += 1
            intents.extend(self.strategy.on_event(snap, account))
        if not intents:
            return
        cancelled: set[str] = set()
        for intent in intents:
            if isinstance(intent, Cancel | Amend) and intent.order_id in cancelled:
                continue
            verdict = self.risk.check(intent, snap, account)
            outcome = self._execute(intent, snap) if verdict.ok else f"rejected: {verdict.reason}"
            if isinstance(intent, Cancel | Amend):
                cancelled.add(intent.order_id)
            self.stats.intents[outcome.split()[0].rstrip(":")] += 1
            self._log(snap, intent, outcome)
            if verdict.ok and not isinstance(intent, Cancel):
                account = self._account(snap)  # exposure and positions moved
        self._refresh_resting()

    def _execute(self, intent: Intent, snap: EventSnapshot) -> str:
        if isinstance(intent, Cancel):
            order = self.venue.cancel(intent.order_id, snap.ts, intent.reason)
            self.journal.order(order)
            return "canceled"
        if isinstance(intent, Amend):
            old = self.venue.cancel(intent.order_id, snap.ts, f"amend: {intent.reason}")
            self.journal.order(old)
            if old.status != "canceled":
                return f"not amended: order is {old.status}"
            intent_place: PlaceLimit | PlaceTaker = PlaceLimit(
                old.ticker, old.side, old.action, intent.price, intent.count, intent.reason
            )
        else:
            intent_place = intent
        order, fills = self.venue.place(intent_place, snap)
        self.journal.order(order)
        for fill in fills:
            self._on_fill(fill)
        if order.status == "rejected":
            return f"rejected: venue: {order.reason}"
        if fills:
            filled = sum((f.count for f in fills), ZERO)
            return f"filled {filled} at {fills[0].price}"
        return order.status if order.status != "resting" else f"resting {order.order_id}"

    def _log(self, snap: EventSnapshot, intent: Intent, outcome: str) -> None:
        ticker = getattr(intent, "ticker", None)
        if ticker is None:
            order = self._order(intent.order_id) if isinstance(intent, Cancel | Amend) else None
            ticker = order.ticker if order is not None else ""
        payload: dict[str, Any] = {
            **intent_payload(intent),
            "outcome": outcome,
            "event_ticker": snap.event_ticker,
            "minutes_to_close": snap.minutes_to_close,
        }
        try:
            payload["bracket"] = bracket_payload(snap.bracket(ticker))
        except KeyError:
            payload["bracket"] = None
        self.journal.decision(snap.ts, ticker, payload)
