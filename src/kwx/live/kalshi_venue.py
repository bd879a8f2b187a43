"""The live venue: the agent's orders on Kalshi through the V2 endpoints, fills back.

Implements :class:`~kwx.engine.ports.Venue` over our own
:class:`~kwx.sources.kalshi_rest.KalshiRest` (orders, cancels, portfolio reads) and the
private WebSocket channels (``fill``, ``user_orders``) that :class:`kwx.live.stream.MarketStream`
queues.

Placing (:meth:`KalshiVenue.place`): the intent becomes a V2 order on the YES leg (buy YES at
P: bid P; sell YES at P: ask P; buy NO at Q: ask 1 − Q; sell NO at Q: bid 1 − Q), limit orders
good-till-cancelled, takers immediate-or-cancel at their limit. Its ``client_order_id`` is
derived from the decision (:func:`kwx.live.order_ledger.client_order_id`) and written to
exec.orders as ``pending`` before the request is sent; the client reconciles a timeout or 5xx
by that id before it resends (``KalshiRest.create_order``); an outcome still unknown after
that stays pending and is resolved at the next minute (:meth:`KalshiVenue.sync`) or the next
start (:mod:`kwx.live.reconcile`).

Fills arrive on the stream (deduplicated by fill id) and are confirmed by
``GET /portfolio/fills`` whenever orders rest or were placed since the last minute, so a
disconnect never loses one; resting orders are checked against ``GET /portfolio/orders`` the
same way (the exchange cancels at the close and in the maintenance pause). Positions follow
Kalshi's own accounting (a YES/NO pair closes at $1; average cost), seeded from
``GET /portfolio/positions`` at start, so they equal the exchange's.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final, Literal

from kwx.engine.ports import (
    ONE,
    ZERO,
    Action,
    EventSnapshot,
    Fill,
    Order,
    OrderStatus,
    PlaceLimit,
    PlaceTaker,
    Position,
    Side,
)
from kwx.live.market_data import floor_ms
from kwx.live.order_ledger import LedgerOrder, OrderLedger, client_order_id
from kwx.sources.http import SourceError
from kwx.sources.kalshi_models import Fill as WireFill
from kwx.sources.kalshi_models import MarketPosition, OrderAck, OrderRequest
from kwx.sources.kalshi_models import Order as WireOrder
from kwx.sources.kalshi_rest import KalshiApiError, KalshiRest
from kwx.sources.kalshi_ws import Disconnected, FillMsg, UserOrderMsg, WsEvent

__all__ = ["CRASH_ENV", "KalshiVenue", "VenueStats", "v2_side"]

log = logging.getLogger(__name__)

BookSide = Literal["bid", "ask"]
CRASH_ENV: Final = "KWX_TEST_CRASH_AT"  # test hook: "after_pending[:n]" | "after_send[:n]"
FILL_LOOKBACK: Final = dt.timedelta(minutes=5)


def v2_side(side: Side, action: Action, price: Decimal) -> tuple[BookSide, Decimal]:
    """(V2 book side, YES price) of an order on ``side`` at ``price`` (that side's price)."""
    if side == "yes":
        return ("bid", price) if action == "buy" else ("ask", price)
    return ("ask", ONE - price) if action == "buy" else ("bid", ONE - price)


@dataclass
class VenueStats:
    placed: int = 0
    refused: int = 0
    unknown: int = 0
    adopted: int = 0
    cancels: int = 0
    fills_ws: int = 0
    fills_rest: int = 0
    rest_syncs: int = 0
    external_orders: int = 0


@dataclass
class _Held:
    """One market's position in Kalshi's accounting (see `kwx.sim.exchange`'s notes)."""

    event_ticker: str
    city: str
    position: Decimal = ZERO
    cost: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO

    def apply(self, book_side: str, yes_price: Decimal, qty: Decimal, fee: Decimal) -> None:
        own = yes_price if book_side == "bid" else ONE - yes_price  # price of what we bought
        opposite = -self.position if book_side == "bid" else self.position
        closing = min(qty, max(opposite, ZERO))
        opening = qty - closing
        if closing > 0:
            avg = self.cost / abs(self.position)
            self.realized += (ONE - own) * closing - avg * closing
            self.cost -= avg * closing
            self.position += closing if book_side == "bid" else -closing
        if opening > 0:
            self.cost += own * opening
            self.position += opening if book_side == "bid" else -opening
        self.fees += fee

    def view(self, ticker: str) -> Position:
        return Position(
            ticker,
            self.event_ticker,
            self.city,
            self.position,
            self.cost,
            self.realized,
            self.fees,
        )


@dataclass
class _Unresolved:
    order: Order
    request: OrderRequest
    since: dt.datetime


@dataclass
class _Crash:
    point: str = ""
    at: int = 1
    seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> _Crash:
        spec = os.environ.get(CRASH_ENV, "")
        point, _, n = spec.partition(":")
        return cls(point, int(n) if n else 1)

    def __call__(self, point: str) -> None:
        if point != self.point:
            return
        self.seen[point] = self.seen.get(point, 0) + 1
        if self.seen[point] == self.at:
            log.warning("%s=%s: killing this process (SIGKILL)", CRASH_ENV, point)
            os.kill(os.getpid(), signal.SIGKILL)


class KalshiVenue:
    """See the module notes. Single-threaded: the trading loop calls every method."""

    def __init__(
        self,
        rest: KalshiRest,
        ledger: OrderLedger,
        *,
        account: str,
        run_id: int | None,
        events: Mapping[str, tuple[str, str]],
        ticker_events: Mapping[str, str],
        on_order: Callable[[Order], None] | None = None,
        on_fill: Callable[[Fill], None] | None = None,
    ) -> None:
        self.rest = rest
        self.ledger = ledger
        self.account = account
        self.run_id = run_id
        self._events = dict(events)  # event_ticker → (city, fee_type)
        self._ticker_events = dict(ticker_events)
        self.on_order = on_order  # orders the agent did not place (adopted, resolved)
        self.on_fill = on_fill  # fills found at reconcile, already in the positions
        self.stats = VenueStats()
        self._orders: dict[str, Order] = {}
        self._by_client: dict[str, str] = {}
        self._resting: dict[str, Order] = {}
        self._fill_sums: dict[str, Decimal] = {}
        self._seen_fills: set[str] = set()
        self._pending_fills: list[Fill] = []
        self._held: dict[str, _Held] = {}
        self._positions: dict[str, Position] = {}
        self._unresolved: dict[str, _Unresolved] = {}
        self._occurrences: dict[tuple[object, ...], int] = {}
        self._dirty = False
        self._fill_cursor: dt.datetime | None = None
        self._crash = _Crash.from_env()

    # ------------------------------------------------------------------ Venue protocol

    def positions(self) -> Mapping[str, Position]:
        return self._positions

    def resting(self, event_ticker: str | None = None) -> list[Order]:
        return [
            o
            for o in self._resting.values()
            if event_ticker is None or o.event_ticker == event_ticker
        ]

    def order(self, order_id: str) -> Order:
        return self._orders[order_id]

    def all_orders(self) -> list[Order]:
        return list(self._orders.values())

    def advance(self, ts: dt.datetime) -> list[Fill]:
        """Fills heard (stream or REST, at the last :meth:`sync`) stamped before ``ts``."""
        due = sorted((f for f in self._pending_fills if f.ts < ts), key=lambda f: (f.ts, f.fill_id))
        self._pending_fills = [f for f in self._pending_fills if f.ts >= ts]
        return due

    def place(
        self, intent: PlaceLimit | PlaceTaker, snapshot: EventSnapshot
    ) -> tuple[Order, list[Fill]]:
        ts = snapshot.ts
        is_taker = isinstance(intent, PlaceTaker)
        kind: Literal["limit", "taker"] = "taker" if is_taker else "limit"
        price = intent.limit if isinstance(intent, PlaceTaker) else intent.price
        key = (ts, intent.ticker, intent.side, intent.action, kind, price, intent.count)
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        coid = client_order_id(
            self.account,
            intent.ticker,
            intent.side,
            intent.action,
            kind,
            price,
            intent.count,
            ts,
            occurrence,
        )
        order = Order(
            order_id=f"unsent:{coid}",
            client_order_id=coid,
            ticker=intent.ticker,
            event_ticker=snapshot.event_ticker,
            city=snapshot.city,
            side=intent.side,
            action=intent.action,
            kind=kind,
            price=price,
            count=intent.count,
            filled=ZERO,
            status="rejected",
            created_at=ts,
            updated_at=ts,
            reason=intent.reason,
        )
        self._events.setdefault(snapshot.event_ticker, (snapshot.city, snapshot.fee_type))
        self._ticker_events.setdefault(intent.ticker, snapshot.event_ticker)
        book_side, yes_price = v2_side(intent.side, intent.action, price)
        try:
            request = OrderRequest(
                intent.ticker,
                book_side,
                intent.count,
                yes_price,
                "immediate_or_cancel" if is_taker else "good_till_canceled",
                client_order_id=coid,
            )
        except ValueError as exc:  # never sent: nothing to record at the exchange
            self.stats.refused += 1
            return replace(order, reason=f"not sent: {exc}"), []
        self.ledger.pending(
            client_order_id=coid,
            run_id=self.run_id,
            ticker=intent.ticker,
            event_ticker=snapshot.event_ticker,
            side=intent.side,
            action=intent.action,
            kind=kind,
            price=price,
            count=intent.count,
            decided_at=ts,
            request=request.to_json(),
        )
        self._crash("after_pending")
        try:
            ack = self.rest.create_order(request)
        except KalshiApiError as exc:
            self.stats.refused += 1
            reason = str(exc)
            self.ledger.refused(coid, reason)
            return replace(order, reason=reason), []
        except SourceError as exc:
            self.stats.unknown += 1
            self._unresolved[coid] = _Unresolved(order, request, ts)
            self._dirty = True
            return replace(order, reason=f"outcome unknown ({exc}); reconciled next minute"), []
        self._crash("after_send")
        self.stats.placed += 1
        placed = self._from_ack(order, ack, is_taker)
        self._dirty = True
        fills = self._fills_of(placed.order_id) if ack.fill_count > 0 else []
        return self._orders[placed.order_id], fills

    def cancel(self, order_id: str, ts: dt.datetime, reason: str = "") -> Order:
        order = self._orders[order_id]
        if order.status != "resting":
            return order
        self.stats.cancels += 1
        self._dirty = True
        try:
            self.rest.cancel_order(order_id)
        except KalshiApiError:
            return self._refresh(order_id, ts)  # already gone (filled, closed): say what is
        except SourceError:
            return order  # unknown: the next sync reads it back
        done = replace(order, status="canceled", updated_at=ts, reason=reason or order.reason)
        self._store(done)
        return done

    # ------------------------------------------------------------------ keeping in step

    def sync(self, now: dt.datetime, events: Iterable[WsEvent] = ()) -> None:
        """Apply what the stream said, resolve orders whose outcome was unknown, and, when
        orders rest or were placed (or the stream dropped), confirm fills and resting
        orders over REST. Called by the loop before each minute's decisions."""
        for event in events:
            if isinstance(event, FillMsg):
                if event.trade_id not in self._seen_fills:
                    self.stats.fills_ws += 1
                    self._take_fill(
                        event.trade_id,
                        event.order_id,
                        event.ticker,
                        event.ts or now,
                        event.book_side,
                        event.yes_price,
                        event.count,
                        event.fee_cost,
                        event.is_taker,
                    )
            elif isinstance(event, UserOrderMsg):
                self._on_user_order(event, now)
            elif isinstance(event, Disconnected):
                self._dirty = True
        for coid in list(self._unresolved):
            self._resolve(coid)
        if self._dirty or self._resting:
            self._rest_sync(now)

    def _rest_sync(self, now: dt.datetime) -> None:
        self.stats.rest_syncs += 1
        since = (self._fill_cursor or now) - FILL_LOOKBACK
        try:
            wire_fills = list(self.rest.iter_fills(min_ts=since))
            resting = {o.order_id: o for o in self.rest.iter_orders(status="resting")}
        except SourceError as exc:
            log.warning("REST sync failed (%s): trying again next minute", exc)
            return
        for wf in sorted(wire_fills, key=lambda f: (f.created_time or now, f.fill_id)):
            if wf.fill_id not in self._seen_fills:
                self.stats.fills_rest += 1
                self._take_wire_fill(wf, now)
        for order_id in list(self._resting):
            if order_id not in resting:
                self._refresh(order_id, now)
        for wire in resting.values():
            if wire.order_id not in self._orders:
                self.adopt(wire)
        self._fill_cursor = now
        self._dirty = bool(self._unresolved)

    def _resolve(self, coid: str) -> None:
        item = self._unresolved[coid]
        try:
            found = self.rest.find_order_by_client_id(coid, ticker=item.order.ticker)
        except SourceError:
            return
        if found is None:
            try:
                ack = self.rest.create_order(item.request)
            except KalshiApiError as exc:
                self.ledger.refused(coid, str(exc))
                del self._unresolved[coid]
                return
            except SourceError:
                return
            order = self._from_ack(
                item.order, ack, item.request.time_in_force != "good_till_canceled"
            )
        else:
            order = self.adopt(found, decided=item.order)
        del self._unresolved[coid]
        self.stats.adopted += 1
        self._dirty = True
        if self.on_order is not None:
            self.on_order(order)

    # ------------------------------------------------------------------ reconcile hooks

    def adopt(self, wire: WireOrder, *, decided: Order | None = None) -> Order:
        """Take an order the exchange holds into our book (ours by client id when the ledger
        knows it; otherwise an outside order, read as a buy of the side it bids for)."""
        known = self._orders.get(wire.order_id)
        if known is not None:
            return known
        ledger: LedgerOrder | None = None
        if decided is None and wire.client_order_id:
            ledger = self.ledger.by_client_ids([wire.client_order_id]).get(wire.client_order_id)
        yes_price = wire.yes_price if wire.yes_price is not None else ONE - (wire.no_price or ZERO)
        if decided is not None:
            base = decided
        elif ledger is not None:
            base = Order(
                order_id=wire.order_id,
                client_order_id=ledger.client_order_id,
                ticker=ledger.ticker,
                event_ticker=ledger.event_ticker or self._event(wire.ticker),
                city=self._city(wire.ticker),
                side=ledger.side,
                action=ledger.action,
                kind="taker" if ledger.kind == "taker" else "limit",
                price=ledger.price,
                count=ledger.count,
                filled=ZERO,
                status="resting",
                created_at=ledger.created_at,
                updated_at=ledger.created_at,
            )
        else:
            self.stats.external_orders += 1
            is_bid = wire.book_side == "bid"
            created = wire.created_time or dt.datetime.now(dt.UTC)
            base = Order(
                order_id=wire.order_id,
                client_order_id=wire.client_order_id or wire.order_id,
                ticker=wire.ticker,
                event_ticker=self._event(wire.ticker),
                city=self._city(wire.ticker),
                side="yes" if is_bid else "no",
                action="buy",
                kind="limit",
                price=yes_price if is_bid else ONE - yes_price,
                count=wire.initial_count or (wire.fill_count + wire.remaining_count),
                filled=ZERO,
                status="resting",
                created_at=created,
                updated_at=created,
                reason="outside order",
            )
        order = replace(
            base,
            order_id=wire.order_id,
            filled=wire.fill_count,
            status=_status(wire.status, wire.remaining_count),
        )
        self._store(order)
        if order.client_order_id:
            self.ledger.acknowledged(
                order.client_order_id, wire.order_id, order.status, order.filled
            )
        return order

    def seed_position(self, pos: MarketPosition) -> None:
        """The exchange's position in a market (reconcile): our book starts from it."""
        held = self._holding(pos.ticker)
        held.position = pos.position
        held.cost = pos.market_exposure or ZERO
        held.realized = pos.realized_pnl or ZERO
        held.fees = pos.fees_paid or ZERO
        self._positions[pos.ticker] = held.view(pos.ticker)

    def mark_fill_seen(self, fill_id: str) -> None:
        self._seen_fills.add(fill_id)

    def knows_order(self, order_id: str) -> bool:
        return order_id in self._orders

    def start_fill_cursor(self, now: dt.datetime) -> None:
        """Fills before ``now`` were read at reconcile; REST syncs look from here on."""
        self._fill_cursor = now

    def fill_of(self, wf: WireFill) -> Fill:
        """Our Fill for a wire fill (the order adopted as outside when unknown)."""
        return self._fill(
            wf.fill_id,
            wf.order_id,
            wf.ticker,
            wf.created_time or dt.datetime.now(dt.UTC),
            wf.book_side,
            wf.yes_price,
            wf.count,
            wf.fee_cost,
            wf.is_taker,
        )

    def own_levels(self, ticker: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """Our resting size in ``ticker``'s book: (YES bids, YES asks) by YES price."""
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for o in self._resting.values():
            if o.ticker != ticker:
                continue
            book_side, yes_price = v2_side(o.side, o.action, o.price)
            levels = bids if book_side == "bid" else asks
            levels[yes_price] = levels.get(yes_price, ZERO) + o.remaining
        return bids, asks

    @property
    def unresolved(self) -> int:
        return len(self._unresolved)

    def is_unresolved(self, client_order_id: str) -> bool:
        return client_order_id in self._unresolved

    # ------------------------------------------------------------------ internals

    def _event(self, ticker: str) -> str:
        return self._ticker_events.get(ticker) or ticker.rsplit("-", 1)[0]

    def _city(self, ticker: str) -> str:
        return self._events.get(self._event(ticker), ("", ""))[0]

    def _holding(self, ticker: str) -> _Held:
        held = self._held.get(ticker)
        if held is None:
            held = _Held(self._event(ticker), self._city(ticker))
            self._held[ticker] = held
        return held

    def _store(self, order: Order) -> None:
        self._orders[order.order_id] = order
        self._by_client[order.client_order_id] = order.order_id
        if order.status == "resting":
            self._resting[order.order_id] = order
        else:
            self._resting.pop(order.order_id, None)

    def _from_ack(self, order: Order, ack: OrderAck, is_taker: bool) -> Order:
        if ack.remaining_count > 0 and not is_taker:
            status: OrderStatus = "resting"
        elif ack.fill_count >= order.count:
            status = "filled"
        else:
            status = "canceled"
        placed = replace(order, order_id=ack.order_id, filled=ack.fill_count, status=status)
        self._store(placed)
        self.ledger.acknowledged(order.client_order_id, ack.order_id, status, ack.fill_count)
        return placed

    def _refresh(self, order_id: str, now: dt.datetime) -> Order:
        order = self._orders[order_id]
        try:
            wire = self.rest.get_order(order_id)
        except SourceError:
            return order
        fresh = replace(
            order,
            filled=max(order.filled, wire.fill_count),
            status=_status(wire.status, wire.remaining_count),
            updated_at=now,
        )
        self._store(fresh)
        return fresh

    def _on_user_order(self, msg: UserOrderMsg, now: dt.datetime) -> None:
        order = self._orders.get(msg.order_id)
        if order is None:
            return
        status = _status(msg.status, msg.remaining_count)
        if status != order.status and order.status == "resting":
            self._store(
                replace(
                    order, status=status, updated_at=now, filled=max(order.filled, msg.fill_count)
                )
            )
            self._dirty = True

    def _fills_of(self, order_id: str) -> list[Fill]:
        """Fills of an order just placed (a taker's, at once), read back over REST."""
        try:
            wire = list(self.rest.iter_fills(order_id=order_id))
        except SourceError:
            self._dirty = True
            return []
        out = []
        for wf in sorted(
            wire, key=lambda f: (f.created_time or dt.datetime.now(dt.UTC), f.fill_id)
        ):
            if wf.fill_id in self._seen_fills:
                continue
            self.stats.fills_rest += 1
            fill = self._apply(self.fill_of(wf), wf.book_side, wf.yes_price)
            out.append(fill)
        return out

    def _take_wire_fill(self, wf: WireFill, now: dt.datetime) -> None:
        self._take_fill(
            wf.fill_id,
            wf.order_id,
            wf.ticker,
            wf.created_time or now,
            wf.book_side,
            wf.yes_price,
            wf.count,
            wf.fee_cost,
            wf.is_taker,
        )

    def _take_fill(
        self,
        fill_id: str,
        order_id: str,
        ticker: str,
        ts: dt.datetime,
        book_side: str | None,
        yes_price: Decimal,
        count: Decimal,
        fee: Decimal | None,
        is_taker: bool | None,
    ) -> None:
        fill = self._fill(fill_id, order_id, ticker, ts, book_side, yes_price, count, fee, is_taker)
        self._pending_fills.append(self._apply(fill, book_side, yes_price))

    def _fill(
        self,
        fill_id: str,
        order_id: str,
        ticker: str,
        ts: dt.datetime,
        book_side: str | None,
        yes_price: Decimal,
        count: Decimal,
        fee: Decimal | None,
        is_taker: bool | None,
    ) -> Fill:
        order = self._orders.get(order_id)
        if order is None:  # not placed by this process and not adopted: an outside order
            is_bid = book_side != "ask"
            self.stats.external_orders += 1
            order = Order(
                order_id=order_id,
                client_order_id=order_id,
                ticker=ticker,
                event_ticker=self._event(ticker),
                city=self._city(ticker),
                side="yes" if is_bid else "no",
                action="buy",
                kind="limit",
                price=yes_price if is_bid else ONE - yes_price,
                count=count,
                filled=ZERO,
                status="filled",
                created_at=ts,
                updated_at=ts,
                reason="outside order",
            )
            self._store(order)
        price = yes_price if order.side == "yes" else ONE - yes_price
        return Fill(
            fill_id=fill_id,
            order_id=order_id,
            client_order_id=order.client_order_id,
            ticker=ticker,
            event_ticker=order.event_ticker,
            city=order.city,
            side=order.side,
            action=order.action,
            price=price,
            count=count,
            fee=fee if fee is not None else ZERO,
            is_taker=bool(is_taker),
            ts=floor_ms(ts),
        )

    def _apply(self, fill: Fill, book_side: str | None, yes_price: Decimal) -> Fill:
        """Book a fill once: position (Kalshi's accounting) and the order's filled count."""
        self._seen_fills.add(fill.fill_id)
        side = book_side or v2_side(fill.side, fill.action, fill.price)[0]
        held = self._holding(fill.ticker)
        held.apply(side, yes_price, fill.count, fill.fee)
        self._positions[fill.ticker] = held.view(fill.ticker)
        total = self._fill_sums.get(fill.order_id, ZERO) + fill.count
        self._fill_sums[fill.order_id] = total
        order = self._orders.get(fill.order_id)
        if order is not None:
            filled = max(order.filled, total)
            status: OrderStatus = "filled" if filled >= order.count else order.status
            self._store(replace(order, filled=filled, status=status, updated_at=fill.ts))
        return fill


def _status(wire_status: str, remaining: Decimal) -> OrderStatus:
    if wire_status == "resting" and remaining > 0:
        return "resting"
    if wire_status == "executed":
        return "filled"
    return "canceled"
