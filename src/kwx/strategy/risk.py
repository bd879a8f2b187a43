"""Risk: the limits every intent must pass before it leaves the engine, in every mode.

Rules (each has a test that fails without it):

* **per-bracket position**: after the order (and the other resting buys of that side) we hold
  at most ``max_position`` contracts of the market; selling more than we hold is refused
  (no naked sells — a sell beyond the holding would open the other side unchecked);
* **daily loss kill switch**, per city and global, on the day's P&L of a climate date (a
  city's event, or every city's events of that date): when the *realised* P&L (closed trades
  minus fees) reaches ``−max_daily_loss_*`` the scope is killed for the rest of the climate
  date; while the *marked* P&L (realised + open positions at the touch) is at or below it, the
  scope is blocked. Killed or blocked: no new orders (exits still allowed) and every resting
  order is cancelled;
* **gross exposure**: premium at risk (cost of open positions in events not yet closed, plus
  resting buy orders at their limit) stays within ``max_gross_exposure``;
* **time stop**: ``time_stop_min`` before the close every resting order is cancelled (and
  positions are sold at the touch with ``exit_at_time_stop``);
* **no new orders** in the last ``no_new_orders_min`` minutes before the close, nor after it.

Marks: a YES holding is worth the YES bid, a NO holding 1 − the YES ask (what selling now would
fetch); without that quote it is marked at cost. The marked switch is a function of the
minute's state alone (not of which minutes were looked at before), which is what lets a feed
skip idle minutes without changing any decision; the realised switch changes only on fills.
The global marks of *other* cities' events are those of their last decision minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from kwx.engine.ports import (
    ONE,
    ZERO,
    AccountView,
    Amend,
    Cancel,
    EventSnapshot,
    Intent,
    Order,
    PlaceLimit,
    PlaceTaker,
    Position,
    RiskState,
)
from kwx.strategy.config import RiskConfig

__all__ = ["RiskManager", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


@dataclass
class _EventBook:
    city: str
    climate_date: date
    close_time: datetime
    marked: Decimal = ZERO
    realized: Decimal = ZERO
    cost: Decimal = ZERO


class RiskManager:
    """Tracks the day's P&L per event and decides on every intent."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self._events: dict[str, _EventBook] = {}
        self._open: dict[str, _EventBook] = {}
        self._marked_city: dict[tuple[str, date], Decimal] = {}
        self._marked_day: dict[date, Decimal] = {}
        self._realized_city: dict[tuple[str, date], Decimal] = {}
        self._realized_day: dict[date, Decimal] = {}
        self._killed_city: dict[tuple[str, date], str] = {}
        self._killed_global: dict[date, str] = {}
        self._exited: set[str] = set()

    # ------------------------------------------------------------ state

    def observe(
        self,
        snap: EventSnapshot,
        positions: Mapping[str, Position],
        resting: Sequence[Order],
        all_resting: Sequence[Order] | None = None,
    ) -> RiskState:
        """Mark the event's positions at this minute, update the kill switches, and say what
        is allowed. ``all_resting`` (every event's resting orders; default ``resting``) feeds
        the exposure, with the cost of open positions in every event not yet closed."""
        book = self._events.get(snap.event_ticker)
        if book is None:
            book = _EventBook(snap.city, snap.climate_date, snap.close_time)
            self._events[snap.event_ticker] = book
        marked = realized = cost = ZERO
        for k, ticker in enumerate(snap.tickers):
            pos = positions.get(ticker)
            if pos is None:
                continue
            realized += pos.realized - pos.fees
            if pos.yes_count == 0:
                continue
            b = snap.bracket_at(k)
            mark = (
                b.yes_bid if pos.yes_count > 0 else (None if b.yes_ask is None else ONE - b.yes_ask)
            )
            if mark is not None:
                marked += pos.count * mark - pos.cost
            cost += pos.cost
        marked += realized
        cfg = self.config
        day = snap.climate_date
        city_key = (snap.city, day)
        self._marked_city[city_key] = self._marked_city.get(city_key, ZERO) + marked - book.marked
        self._realized_city[city_key] = (
            self._realized_city.get(city_key, ZERO) + realized - book.realized
        )
        self._marked_day[day] = self._marked_day.get(day, ZERO) + marked - book.marked
        self._realized_day[day] = self._realized_day.get(day, ZERO) + realized - book.realized
        book.marked, book.realized, book.cost = marked, realized, cost
        if snap.close_time > snap.ts:
            self._open[snap.event_ticker] = book
        if self._realized_city[city_key] <= -cfg.max_daily_loss_city:
            self._killed_city.setdefault(
                city_key, f"{snap.city} realised day loss {self._realized_city[city_key]}"
            )
        if self._realized_day[day] <= -cfg.max_daily_loss_global:
            self._killed_global.setdefault(
                day, f"global realised day loss {self._realized_day[day]}"
            )
        reason = self._killed_global.get(day) or self._killed_city.get(city_key) or ""
        if not reason and self._marked_day[day] <= -cfg.max_daily_loss_global:
            reason = f"global marked day loss {self._marked_day[day]}"
        if not reason and self._marked_city[city_key] <= -cfg.max_daily_loss_city:
            reason = f"{snap.city} marked day loss {self._marked_city[city_key]}"
        mtc = snap.minutes_to_close
        return RiskState(
            killed=bool(reason),
            kill_reason=reason,
            no_new_orders=mtc <= cfg.no_new_orders_min,
            time_stop=mtc <= cfg.time_stop_min,
            exposure=self.exposure(snap.ts, resting if all_resting is None else all_resting),
            exposure_cap=cfg.max_gross_exposure,
            day_pnl_city=self._marked_city[city_key],
            day_pnl_global=self._marked_day[day],
        )

    def exposure(self, now: datetime, resting: Sequence[Order]) -> Decimal:
        """Cost of open positions in events not yet closed (as last observed), plus resting
        buys at their limit."""
        for event in [e for e, b in self._open.items() if b.close_time <= now]:
            del self._open[event]
        total = sum((b.cost for b in self._open.values()), ZERO)
        for o in resting:
            if o.action == "buy":
                total += o.remaining * o.price
        return total

    # ------------------------------------------------------------ decisions

    def forced(self, snap: EventSnapshot, account: AccountView) -> list[Intent]:
        """Intents risk itself demands: cancel everything when killed or at the time stop,
        and flatten at the time stop when configured."""
        state = account.risk
        out: list[Intent] = []
        if state.killed or state.time_stop:
            why = f"kill switch: {state.kill_reason}" if state.killed else "time stop"
            out.extend(Cancel(o.order_id, why) for o in account.resting)
        if state.time_stop and self.config.exit_at_time_stop:
            for k, ticker in enumerate(snap.tickers):
                held = account.position(ticker)
                if held == 0 or ticker in self._exited:
                    continue
                b = snap.bracket_at(k)
                if held > 0 and b.yes_bid is not None:
                    out.append(PlaceTaker(ticker, "yes", "sell", b.yes_bid, held, "time stop"))
                    self._exited.add(ticker)
                elif held < 0 and b.yes_ask is not None:
                    out.append(
                        PlaceTaker(ticker, "no", "sell", ONE - b.yes_ask, -held, "time stop")
                    )
                    self._exited.add(ticker)
        return out

    def check(self, intent: Intent, snap: EventSnapshot, account: AccountView) -> Verdict:
        """Approve or refuse one intent (cancels always pass)."""
        if isinstance(intent, Cancel):
            return Verdict(True)
        cfg = self.config
        state = account.risk
        is_exit = isinstance(intent, PlaceTaker | PlaceLimit) and intent.action == "sell"
        if snap.minutes_to_close <= 0:
            return Verdict(False, "market closed")
        if state.killed and not is_exit:
            return Verdict(False, f"kill switch: {state.kill_reason}")
        if state.no_new_orders and not is_exit:
            return Verdict(False, f"within {cfg.no_new_orders_min} min of close")
        if isinstance(intent, Amend):
            original = next((o for o in account.resting if o.order_id == intent.order_id), None)
            if original is None:
                return Verdict(False, f"amend: order {intent.order_id} is not resting")
            order_like = PlaceLimit(
                original.ticker, original.side, original.action, intent.price, intent.count
            )
            others = [o for o in account.resting if o.order_id != intent.order_id]
            freed = original.remaining * original.price if original.action == "buy" else ZERO
            return self._check_order(order_like, account, others, state.exposure - freed)
        return self._check_order(intent, account, list(account.resting), state.exposure)

    def _check_order(
        self,
        intent: PlaceLimit | PlaceTaker,
        account: AccountView,
        resting: Sequence[Order],
        exposure: Decimal,
    ) -> Verdict:
        cfg = self.config
        held = account.position(intent.ticker)
        holding = held if intent.side == "yes" else -held  # > 0: we hold this side
        same_side = [o for o in resting if o.ticker == intent.ticker and o.side == intent.side]
        if intent.action == "sell":
            selling = sum((o.remaining for o in same_side if o.action == "sell"), ZERO)
            if intent.count + selling > max(holding, ZERO):
                return Verdict(False, f"sell {intent.count} exceeds holding {max(holding, ZERO)}")
            return Verdict(True)
        buying = sum((o.remaining for o in same_side if o.action == "buy"), ZERO)
        after = holding + buying + intent.count
        if after > cfg.max_position:
            return Verdict(False, f"position {after} would exceed {cfg.max_position}")
        price = intent.limit if isinstance(intent, PlaceTaker) else intent.price
        closing = min(intent.count, max(-holding, ZERO))  # contracts that close the other side
        added = (intent.count - closing) * price
        if exposure + added > cfg.max_gross_exposure:
            return Verdict(
                False, f"exposure {exposure + added} would exceed {cfg.max_gross_exposure}"
            )
        return Verdict(True)
