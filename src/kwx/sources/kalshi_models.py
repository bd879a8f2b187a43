"""Kalshi REST (and WS trade) payloads as frozen dataclasses with exact Decimal money.

The API renamed every price and count in 2026 (integer cents -> ``*_dollars`` strings, integer
counts -> ``*_fp`` strings), and recorded data keeps the old names. Every parser here reads both
and dispatches on the JSON type, never on the field name alone: a string is dollars (or a
fixed-point count), an integer is legacy cents. That one rule also covers the historical
candlestick shape, whose flat names carry dollar strings. Unknown fields are ignored so that a
new Kalshi field never breaks ingestion; a missing required field raises ``ShapeError``, which
the REST client turns into a ``PayloadError`` that keeps the raw body.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

import pandas as pd

from kwx.domain.prices import CENT, parse_count, parse_dollars
from kwx.store.writers import CANDLE_COLUMNS, TRADE_COLUMNS

__all__ = [
    "AccountLimits",
    "Balance",
    "CancelAck",
    "Candle",
    "Fill",
    "HistoricalCutoff",
    "Market",
    "MarketPosition",
    "Order",
    "OrderAck",
    "OrderBook",
    "OrderRequest",
    "PriceRange",
    "ShapeError",
    "Trade",
    "candles_frame",
    "dollars_str",
    "parse_account_limits",
    "parse_balance",
    "parse_cancel_ack",
    "parse_candle",
    "parse_cutoff",
    "parse_error",
    "parse_fill",
    "parse_market",
    "parse_order",
    "parse_order_ack",
    "parse_orderbook",
    "parse_position",
    "parse_price_ranges",
    "parse_time",
    "parse_trade",
    "trades_frame",
]

Side = Literal["bid", "ask"]
TimeInForce = Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
SelfTradePrevention = Literal["taker_at_cross", "maker"]

_ONE = Decimal(1)
_ZERO = Decimal(0)
# Request prices: Kalshi accepts 2-4 decimals; finer prices cannot be sent as-is.
_REQUEST_PRICE_QUANTUM = Decimal("0.0001")
# FIX's limit on client order ids; REST ids are kept within it so both venues agree.
_CLIENT_ORDER_ID_RE = re.compile(r"[-\w:+=/]{1,64}")
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


class ShapeError(ValueError):
    """A payload lacks a field we cannot do without, or holds an impossible value."""


# ----------------------------------------------------------------------------- scalar parsers


def _get(d: Mapping[str, Any], *names: str) -> Any:
    """First present, non-null value among `names` (current name first, legacy after)."""
    for name in names:
        value = d.get(name)
        if value is not None:
            return value
    return None


def _require(d: Mapping[str, Any], *names: str) -> Any:
    value = _get(d, *names)
    if value is None:
        raise ShapeError(f"missing field {' / '.join(names)}")
    return value


def _as_decimal(value: object, field: str) -> Decimal:
    try:
        result = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ShapeError(f"{field}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise ShapeError(f"{field}: must be finite, got {value!r}")
    return result


def _price(value: object, field: str) -> Decimal:
    """A YES/NO price in [0, 1]: dollar string, or legacy integer cents."""
    try:
        return parse_dollars(value, field=field)
    except ValueError as exc:
        raise ShapeError(str(exc)) from None


def _opt_price(value: object, field: str) -> Decimal | None:
    return None if value is None else _price(value, field)


def _count(value: object, field: str) -> Decimal:
    """A non-negative count in steps of 0.01 (floats accepted: counts have no cent ambiguity)."""
    if isinstance(value, float):
        value = _as_decimal(value, field)
    try:
        return parse_count(value, field=field)
    except ValueError as exc:
        raise ShapeError(str(exc)) from None


def _opt_count(value: object, field: str) -> Decimal | None:
    return None if value is None else _count(value, field)


def _signed_count(value: object, field: str) -> Decimal:
    """Positions are signed (> 0 YES, < 0 NO); otherwise the same rules as `_count`."""
    if isinstance(value, bool):
        raise ShapeError(f"{field}: expected a count, got {value!r}")
    result = _as_decimal(value, field)
    if result != result.quantize(CENT):
        raise ShapeError(f"{field}: count {value!r} is not a multiple of 0.01")
    return result


def _money(value: object, field: str) -> Decimal:
    """An unbounded, signed amount: dollar string, or legacy integer cents."""
    if isinstance(value, bool):
        raise ShapeError(f"{field}: expected money, got {value!r}")
    if isinstance(value, int):
        return Decimal(value) / 100
    if isinstance(value, float):
        if not value.is_integer():
            raise ShapeError(f"{field}: refusing non-integral float {value!r}")
        return Decimal(int(value)) / 100
    if isinstance(value, str | Decimal):
        return _as_decimal(value, field)
    raise ShapeError(f"{field}: expected a dollar string or integer cents, got {value!r}")


def _opt_money(value: object, field: str) -> Decimal | None:
    return None if value is None else _money(value, field)


def _opt_bool(value: object) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ShapeError(f"expected a boolean, got {value!r}")


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_time(value: object, *, field: str = "time") -> datetime:
    """RFC 3339 (any fraction length, ``Z`` or offset), epoch seconds, or a datetime -> UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise ShapeError(f"{field}: expected a time, got {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        text = _FRACTION_RE.sub(r"\1", value.strip())
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ShapeError(f"{field}: not an RFC 3339 time: {value!r}") from exc
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ShapeError(f"{field}: expected a time, got {value!r}")


def _opt_time(value: object, field: str) -> datetime | None:
    return None if value is None or value == "" else parse_time(value, field=field)


def dollars_str(value: Decimal, places: int = 4) -> str:
    """Kalshi's fixed-point form: `places` decimals, more only when the value has them.

    Quantizing a value with finer digits would silently round money, so those are kept.
    """
    quantized = value.quantize(Decimal(1).scaleb(-places))
    if quantized == value:
        return format(quantized, "f")
    return format(value.normalize(), "f")


# ----------------------------------------------------------------------------- market data


@dataclass(frozen=True)
class Trade:
    trade_id: str
    ticker: str
    created_time: datetime
    count: Decimal
    yes_price: Decimal
    no_price: Decimal
    taker_side: str | None
    is_block_trade: bool | None


def parse_trade(d: Mapping[str, Any]) -> Trade:
    """A REST trade (current or legacy) or a WS `trade` message body.

    The WS message names the market `market_ticker` and stamps it with `ts` (seconds) /
    `ts_ms` instead of `created_time`; `ts_ms` is preferred there because it is finer.
    """
    if d.get("created_time") is not None:
        created = parse_time(d["created_time"], field="created_time")
    elif d.get("ts_ms") is not None:
        created = datetime.fromtimestamp(int(d["ts_ms"]) / 1000, tz=UTC)
    elif d.get("ts") is not None:
        created = parse_time(d["ts"], field="ts")
    else:
        raise ShapeError("trade: missing field created_time / ts_ms / ts")
    yes_raw = _get(d, "yes_price_dollars", "yes_price")
    no_raw = _get(d, "no_price_dollars", "no_price")
    if yes_raw is None and no_raw is None:
        raise ShapeError("trade: missing field yes_price_dollars / yes_price")
    yes = _price(yes_raw, "yes_price") if yes_raw is not None else None
    no = _price(no_raw, "no_price") if no_raw is not None else None
    yes = yes if yes is not None else _ONE - cast(Decimal, no)
    no = no if no is not None else _ONE - yes
    taker = _opt_str(_get(d, "taker_outcome_side", "taker_side"))
    return Trade(
        trade_id=str(_require(d, "trade_id")),
        ticker=str(_require(d, "ticker", "market_ticker")),
        created_time=created,
        count=_count(_require(d, "count_fp", "count"), "count"),
        yes_price=yes,
        no_price=no,
        taker_side=taker,
        is_block_trade=_opt_bool(d.get("is_block_trade")),
    )


@dataclass(frozen=True)
class Candle:
    """One candlestick; empty-book quotes (bid 0, ask 1) are kept as sent."""

    ticker: str
    end_period_ts: int
    yes_bid_open: Decimal | None
    yes_bid_high: Decimal | None
    yes_bid_low: Decimal | None
    yes_bid_close: Decimal | None
    yes_ask_open: Decimal | None
    yes_ask_high: Decimal | None
    yes_ask_low: Decimal | None
    yes_ask_close: Decimal | None
    price_open: Decimal | None
    price_high: Decimal | None
    price_low: Decimal | None
    price_close: Decimal | None
    price_mean: Decimal | None
    volume: Decimal
    open_interest: Decimal | None


_OHLC = ("open", "high", "low", "close")


def _block_price(block: object, part: str, where: str) -> Decimal | None:
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ShapeError(f"{where}: expected an object, got {block!r}")
    return _opt_price(_get(block, f"{part}_dollars", part), f"{where}.{part}")


def parse_candle(d: Mapping[str, Any], ticker: str) -> Candle:
    """Live (`*_dollars`, `volume_fp`), historical (flat dollar strings) or legacy (cents)."""
    end = _require(d, "end_period_ts")
    if isinstance(end, bool) or not isinstance(end, int | str):
        raise ShapeError(f"end_period_ts: expected Unix seconds, got {end!r}")
    price = d.get("price")
    values: dict[str, Decimal | None] = {}
    for side in ("yes_bid", "yes_ask"):
        for part in _OHLC:
            values[f"{side}_{part}"] = _block_price(d.get(side), part, side)
    for part in (*_OHLC, "mean"):
        values[f"price_{part}"] = _block_price(price, part, "price")
    volume = _get(d, "volume_fp", "volume")
    return Candle(
        ticker=ticker,
        end_period_ts=int(end),
        volume=_count(volume, "volume") if volume is not None else _ZERO,
        open_interest=_opt_count(_get(d, "open_interest_fp", "open_interest"), "open_interest"),
        **values,
    )


@dataclass(frozen=True)
class OrderBook:
    """Resting bids per side, ascending, best last; NO levels are in NO-leg prices."""

    ticker: str
    yes: tuple[tuple[Decimal, Decimal], ...]
    no: tuple[tuple[Decimal, Decimal], ...]

    @property
    def best_yes_bid(self) -> Decimal | None:
        return self.yes[-1][0] if self.yes else None

    @property
    def best_no_bid(self) -> Decimal | None:
        return self.no[-1][0] if self.no else None

    @property
    def best_yes_ask(self) -> Decimal | None:
        """Buying YES means matching the best NO bid: YES ask = 1 - best NO bid."""
        return _ONE - self.no[-1][0] if self.no else None

    @property
    def best_no_ask(self) -> Decimal | None:
        return _ONE - self.yes[-1][0] if self.yes else None


def _levels(raw: object, where: str) -> tuple[tuple[Decimal, Decimal], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ShapeError(f"{where}: expected a list of levels, got {raw!r}")
    levels = []
    for level in raw:
        if not isinstance(level, list | tuple) or len(level) < 2:
            raise ShapeError(f"{where}: bad level {level!r}")
        levels.append((_price(level[0], f"{where} price"), _count(level[1], f"{where} count")))
    # Documented ascending; sorting anyway keeps `best = last` true for any recorded input.
    return tuple(sorted(levels, key=lambda lv: lv[0]))


def parse_orderbook(d: Mapping[str, Any], ticker: str) -> OrderBook:
    """`{"orderbook_fp": {yes_dollars, no_dollars}}` or the legacy `{"orderbook": {yes, no}}`."""
    if isinstance(d.get("orderbook_fp"), Mapping):
        book = d["orderbook_fp"]
    elif isinstance(d.get("orderbook"), Mapping):
        book = d["orderbook"]
    elif "orderbook_fp" in d or "orderbook" in d:
        book = {}  # an entirely empty book may come back as null
    else:
        raise ShapeError("orderbook: missing field orderbook_fp / orderbook")
    return OrderBook(
        ticker=str(d.get("ticker") or ticker),
        yes=_levels(_get(book, "yes_dollars", "yes"), "orderbook yes"),
        no=_levels(_get(book, "no_dollars", "no"), "orderbook no"),
    )


@dataclass(frozen=True)
class PriceRange:
    start: Decimal
    end: Decimal
    step: Decimal

    def admits(self, price: Decimal) -> bool:
        return self.start <= price <= self.end and (price - self.start) % self.step == 0


def parse_price_ranges(raw: object) -> tuple[PriceRange, ...]:
    """A market's `price_ranges` (or the market itself) -> tick ranges for order validation."""
    if isinstance(raw, Mapping):
        raw = raw.get("price_ranges")
    if not isinstance(raw, list):
        raise ShapeError(f"price_ranges: expected a list, got {raw!r}")
    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise ShapeError(f"price_ranges: bad item {item!r}")
        step = _as_decimal(_require(item, "step"), "step")
        if step <= 0:
            raise ShapeError(f"price_ranges: step must be positive, got {step}")
        out.append(
            PriceRange(
                _as_decimal(_require(item, "start"), "start"),
                _as_decimal(_require(item, "end"), "end"),
                step,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Market:
    """The fields of a market the agent reasons about; the wire dict stays the record.

    Quotes are kept as sent: an empty book reads bid 0 / ask 1, which `yes_bid_quote` and
    `yes_ask_quote` turn into None (no quote), never into a 99-cent spread.
    """

    ticker: str
    event_ticker: str
    status: str
    strike_type: str | None
    floor_strike: Decimal | None
    cap_strike: Decimal | None
    open_time: datetime | None
    close_time: datetime | None
    settlement_ts: datetime | None
    result: str | None
    expiration_value: str | None
    yes_bid: Decimal | None
    yes_ask: Decimal | None
    no_bid: Decimal | None
    no_ask: Decimal | None
    last_price: Decimal | None
    volume: Decimal | None
    open_interest: Decimal | None
    price_ranges: tuple[PriceRange, ...]

    @property
    def yes_bid_quote(self) -> Decimal | None:
        return self.yes_bid if self.yes_bid is not None and self.yes_bid > 0 else None

    @property
    def yes_ask_quote(self) -> Decimal | None:
        return self.yes_ask if self.yes_ask is not None and self.yes_ask < 1 else None


def _strike(value: object, field: str) -> Decimal | None:
    """Strikes are numbers in the schema but have been seen as strings ("87")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ShapeError(f"{field}: expected a number, got {value!r}")
    return _as_decimal(value, field)


def parse_market(d: Mapping[str, Any]) -> Market:
    """A market in the 2026 shape or the legacy integer-cent one."""
    ranges = d.get("price_ranges")
    return Market(
        ticker=str(_require(d, "ticker")),
        event_ticker=str(_require(d, "event_ticker")),
        status=str(d.get("status") or ""),
        strike_type=_opt_str(d.get("strike_type")),
        floor_strike=_strike(d.get("floor_strike"), "floor_strike"),
        cap_strike=_strike(d.get("cap_strike"), "cap_strike"),
        open_time=_opt_time(d.get("open_time"), "open_time"),
        close_time=_opt_time(d.get("close_time"), "close_time"),
        settlement_ts=_opt_time(d.get("settlement_ts"), "settlement_ts"),
        result=_opt_str(d.get("result")),
        expiration_value=_opt_str(d.get("expiration_value")),
        yes_bid=_opt_price(_get(d, "yes_bid_dollars", "yes_bid"), "yes_bid"),
        yes_ask=_opt_price(_get(d, "yes_ask_dollars", "yes_ask"), "yes_ask"),
        no_bid=_opt_price(_get(d, "no_bid_dollars", "no_bid"), "no_bid"),
        no_ask=_opt_price(_get(d, "no_ask_dollars", "no_ask"), "no_ask"),
        last_price=_opt_price(_get(d, "last_price_dollars", "last_price"), "last_price"),
        volume=_opt_count(_get(d, "volume_fp", "volume"), "volume"),
        open_interest=_opt_count(_get(d, "open_interest_fp", "open_interest"), "open_interest"),
        price_ranges=parse_price_ranges(ranges) if isinstance(ranges, list) else (),
    )


# ----------------------------------------------------------------------------- account


@dataclass(frozen=True)
class HistoricalCutoff:
    market_settled_ts: datetime
    trades_created_ts: datetime
    orders_updated_ts: datetime


def parse_cutoff(d: Mapping[str, Any]) -> HistoricalCutoff:
    return HistoricalCutoff(
        market_settled_ts=parse_time(_require(d, "market_settled_ts"), field="market_settled_ts"),
        trades_created_ts=parse_time(_require(d, "trades_created_ts"), field="trades_created_ts"),
        orders_updated_ts=parse_time(_require(d, "orders_updated_ts"), field="orders_updated_ts"),
    )


@dataclass(frozen=True)
class AccountLimits:
    """Token-bucket sizes (tokens/s and tokens); a request costs 10 tokens by default."""

    read_rate: float
    read_capacity: float
    write_rate: float
    write_capacity: float
    usage_tier: str | None


def _bucket(d: Mapping[str, Any], name: str) -> tuple[float, float]:
    block = d.get(name)
    if not isinstance(block, Mapping):
        raise ShapeError(f"account limits: missing object {name}")
    try:
        rate = float(_require(block, "refill_rate"))
        capacity = float(_require(block, "bucket_capacity"))
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"account limits {name}: {exc}") from None
    if rate <= 0 or capacity <= 0:
        raise ShapeError(f"account limits {name}: rate and capacity must be positive")
    return rate, capacity


def parse_account_limits(d: Mapping[str, Any]) -> AccountLimits:
    read_rate, read_capacity = _bucket(d, "read")
    write_rate, write_capacity = _bucket(d, "write")
    return AccountLimits(
        read_rate, read_capacity, write_rate, write_capacity, _opt_str(d.get("usage_tier"))
    )


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    portfolio_value: Decimal | None
    updated_ts: int | None


def parse_balance(d: Mapping[str, Any]) -> Balance:
    """`balance_dollars` when present; `balance`/`portfolio_value` are still integer cents."""
    updated = d.get("updated_ts")
    return Balance(
        balance=_money(_require(d, "balance_dollars", "balance"), "balance"),
        portfolio_value=_opt_money(
            _get(d, "portfolio_value_dollars", "portfolio_value"), "portfolio_value"
        ),
        updated_ts=int(updated) if isinstance(updated, int | float | str) and updated else None,
    )


@dataclass(frozen=True)
class MarketPosition:
    """`position` > 0 holds YES contracts, < 0 holds NO contracts."""

    ticker: str
    position: Decimal
    total_traded: Decimal | None
    market_exposure: Decimal | None
    realized_pnl: Decimal | None
    fees_paid: Decimal | None
    last_updated_ts: datetime | None


def parse_position(d: Mapping[str, Any]) -> MarketPosition:
    return MarketPosition(
        ticker=str(_require(d, "ticker", "market_ticker")),
        position=_signed_count(_require(d, "position_fp", "position"), "position"),
        total_traded=_opt_money(_get(d, "total_traded_dollars", "total_traded"), "total_traded"),
        market_exposure=_opt_money(
            _get(d, "market_exposure_dollars", "market_exposure"), "market_exposure"
        ),
        realized_pnl=_opt_money(_get(d, "realized_pnl_dollars", "realized_pnl"), "realized_pnl"),
        fees_paid=_opt_money(_get(d, "fees_paid_dollars", "fees_paid"), "fees_paid"),
        last_updated_ts=_opt_time(d.get("last_updated_ts"), "last_updated_ts"),
    )


def _book_side(d: Mapping[str, Any]) -> str | None:
    """V2 `book_side`; for legacy rows, derive it from side/action (buy NO = sell YES)."""
    book_side = _opt_str(d.get("book_side"))
    if book_side is not None:
        return book_side
    side, action = d.get("side"), d.get("action")
    if side in ("yes", "no") and action in ("buy", "sell"):
        return "bid" if (side == "yes") == (action == "buy") else "ask"
    return None


@dataclass(frozen=True)
class Order:
    order_id: str
    client_order_id: str | None
    ticker: str
    status: str
    book_side: str | None
    outcome_side: str | None
    yes_price: Decimal | None
    no_price: Decimal | None
    fill_count: Decimal
    remaining_count: Decimal
    initial_count: Decimal | None
    taker_fill_cost: Decimal | None
    maker_fill_cost: Decimal | None
    taker_fees: Decimal | None
    maker_fees: Decimal | None
    created_time: datetime | None
    last_update_time: datetime | None
    expiration_time: datetime | None
    order_group_id: str | None


def parse_order(d: Mapping[str, Any]) -> Order:
    return Order(
        order_id=str(_require(d, "order_id")),
        client_order_id=_opt_str(d.get("client_order_id")),
        ticker=str(_require(d, "ticker", "market_ticker")),
        status=str(_require(d, "status")),
        book_side=_book_side(d),
        outcome_side=_opt_str(d.get("outcome_side")),
        yes_price=_opt_price(_get(d, "yes_price_dollars", "yes_price"), "yes_price"),
        no_price=_opt_price(_get(d, "no_price_dollars", "no_price"), "no_price"),
        fill_count=_count(_get(d, "fill_count_fp", "fill_count") or 0, "fill_count"),
        remaining_count=_count(
            _get(d, "remaining_count_fp", "remaining_count") or 0, "remaining_count"
        ),
        initial_count=_opt_count(_get(d, "initial_count_fp", "initial_count"), "initial_count"),
        taker_fill_cost=_opt_money(
            _get(d, "taker_fill_cost_dollars", "taker_fill_cost"), "taker_fill_cost"
        ),
        maker_fill_cost=_opt_money(
            _get(d, "maker_fill_cost_dollars", "maker_fill_cost"), "maker_fill_cost"
        ),
        taker_fees=_opt_money(_get(d, "taker_fees_dollars", "taker_fees"), "taker_fees"),
        maker_fees=_opt_money(_get(d, "maker_fees_dollars", "maker_fees"), "maker_fees"),
        created_time=_opt_time(d.get("created_time"), "created_time"),
        last_update_time=_opt_time(d.get("last_update_time"), "last_update_time"),
        expiration_time=_opt_time(d.get("expiration_time"), "expiration_time"),
        order_group_id=_opt_str(d.get("order_group_id")),
    )


@dataclass(frozen=True)
class OrderAck:
    """The create (or amend) answer; average prices appear only once something filled."""

    order_id: str
    client_order_id: str | None
    fill_count: Decimal
    remaining_count: Decimal
    average_fill_price: Decimal | None
    average_fee_paid: Decimal | None
    ts_ms: int | None

    @classmethod
    def from_order(cls, order: Order) -> OrderAck:
        """What a create would have answered, rebuilt from the order found on reconcile."""
        return cls(
            order.order_id,
            order.client_order_id,
            order.fill_count,
            order.remaining_count,
            None,
            None,
            None,
        )


def parse_order_ack(d: Mapping[str, Any]) -> OrderAck:
    if isinstance(d.get("order"), Mapping) and "order_id" not in d:
        return OrderAck.from_order(parse_order(d["order"]))
    ts_ms = d.get("ts_ms")
    return OrderAck(
        order_id=str(_require(d, "order_id")),
        client_order_id=_opt_str(d.get("client_order_id")),
        fill_count=_count(_get(d, "fill_count", "fill_count_fp") or 0, "fill_count"),
        remaining_count=_count(
            _get(d, "remaining_count", "remaining_count_fp") or 0, "remaining_count"
        ),
        average_fill_price=_opt_money(
            _get(d, "average_fill_price", "average_fill_price_dollars"), "average_fill_price"
        ),
        average_fee_paid=_opt_money(
            _get(d, "average_fee_paid", "average_fee_paid_dollars"), "average_fee_paid"
        ),
        ts_ms=int(ts_ms) if isinstance(ts_ms, int | str) and ts_ms != "" else None,
    )


@dataclass(frozen=True)
class CancelAck:
    order_id: str
    client_order_id: str | None
    reduced_by: Decimal | None
    ts_ms: int | None


def parse_cancel_ack(d: Mapping[str, Any]) -> CancelAck:
    order = d.get("order")
    inner: Mapping[str, Any] = order if isinstance(order, Mapping) else {}
    ts_ms = d.get("ts_ms")
    return CancelAck(
        order_id=str(_require({**inner, **d}, "order_id")),
        client_order_id=_opt_str(d.get("client_order_id") or inner.get("client_order_id")),
        reduced_by=_opt_count(_get(d, "reduced_by_fp", "reduced_by"), "reduced_by"),
        ts_ms=int(ts_ms) if isinstance(ts_ms, int | str) and ts_ms != "" else None,
    )


@dataclass(frozen=True)
class Fill:
    fill_id: str
    order_id: str
    ticker: str
    book_side: str | None
    outcome_side: str | None
    count: Decimal
    yes_price: Decimal
    no_price: Decimal
    is_taker: bool | None
    fee_cost: Decimal | None
    created_time: datetime | None


def parse_fill(d: Mapping[str, Any]) -> Fill:
    yes = _price(_require(d, "yes_price_dollars", "yes_price", "yes_price_fixed"), "yes_price")
    no_raw = _get(d, "no_price_dollars", "no_price", "no_price_fixed")
    created = d.get("created_time")
    if created is None and d.get("ts") is not None:
        created = d["ts"]
    return Fill(
        fill_id=str(_require(d, "fill_id", "trade_id")),
        order_id=str(_require(d, "order_id")),
        ticker=str(_require(d, "ticker", "market_ticker")),
        book_side=_book_side(d),
        outcome_side=_opt_str(d.get("outcome_side")),
        count=_count(_require(d, "count_fp", "count"), "count"),
        yes_price=yes,
        no_price=_price(no_raw, "no_price") if no_raw is not None else _ONE - yes,
        is_taker=_opt_bool(d.get("is_taker")),
        fee_cost=_opt_money(_get(d, "fee_cost_dollars", "fee_cost"), "fee_cost"),
        created_time=_opt_time(created, "created_time"),
    )


# ----------------------------------------------------------------------------- orders


def _new_client_order_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class OrderRequest:
    """A V2 create-order body. Everything is quoted on the YES leg: bid buys YES, ask sells it.

    Validation happens at construction (count, price bounds, id charset) and, for the
    market's tick structure, in `check_ticks`, so that a bad order never reaches the wire.
    """

    ticker: str
    side: Side
    count: Decimal
    price: Decimal
    time_in_force: TimeInForce
    client_order_id: str = field(default_factory=_new_client_order_id)
    post_only: bool = False
    reduce_only: bool = False
    cancel_order_on_pause: bool = True
    self_trade_prevention_type: SelfTradePrevention = "taker_at_cross"
    expiration_time: int | None = None

    def __post_init__(self) -> None:
        if self.side not in ("bid", "ask"):
            raise ValueError(f"side must be 'bid' or 'ask', got {self.side!r}")
        if self.time_in_force not in ("good_till_canceled", "immediate_or_cancel", "fill_or_kill"):
            raise ValueError(f"unknown time_in_force {self.time_in_force!r}")
        if self.self_trade_prevention_type not in ("taker_at_cross", "maker"):
            raise ValueError(
                f"unknown self_trade_prevention_type {self.self_trade_prevention_type!r}"
            )
        if not isinstance(self.count, Decimal) or not isinstance(self.price, Decimal):
            raise TypeError("count and price must be Decimal (money is exact)")
        if self.count < CENT or self.count != self.count.quantize(CENT):
            raise ValueError(f"count must be >= 0.01 in steps of 0.01, got {self.count}")
        if not _ZERO < self.price < _ONE:
            raise ValueError(f"price must be strictly between 0 and 1 dollar, got {self.price}")
        if self.price != self.price.quantize(_REQUEST_PRICE_QUANTUM):
            raise ValueError(f"price {self.price} has more than 4 decimals")
        if not _CLIENT_ORDER_ID_RE.fullmatch(self.client_order_id):
            raise ValueError("client_order_id must be 1-64 characters of [-A-Za-z0-9_:+=/]")
        if self.expiration_time is not None and self.time_in_force == "immediate_or_cancel":
            raise ValueError("expiration_time is not allowed with immediate_or_cancel")

    def check_ticks(self, price_ranges: Sequence[PriceRange] | object) -> None:
        """Raise unless the price sits on one of the market's tick grids.

        Accepts parsed `PriceRange`s, the raw `price_ranges` list or the market dict itself.
        """
        if isinstance(price_ranges, Sequence) and all(
            isinstance(r, PriceRange) for r in price_ranges
        ):
            ranges = tuple(cast(Sequence[PriceRange], price_ranges))
        else:
            ranges = parse_price_ranges(price_ranges)
        if not any(r.admits(self.price) for r in ranges):
            raise ValueError(f"price {self.price} is not on the market's tick grid {ranges}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ticker": self.ticker,
            "client_order_id": self.client_order_id,
            "side": self.side,
            "count": format(self.count.quantize(CENT), "f"),
            "price": format(self.price.quantize(_REQUEST_PRICE_QUANTUM), "f"),
            "time_in_force": self.time_in_force,
            "self_trade_prevention_type": self.self_trade_prevention_type,
            "post_only": self.post_only,
            "reduce_only": self.reduce_only,
            "cancel_order_on_pause": self.cancel_order_on_pause,
        }
        if self.expiration_time is not None:
            body["expiration_time"] = self.expiration_time
        return body

    @classmethod
    def buy_yes(
        cls,
        ticker: str,
        price: Decimal,
        count: Decimal,
        time_in_force: TimeInForce = "good_till_canceled",
        **options: Any,
    ) -> OrderRequest:
        return cls(ticker, "bid", count, price, time_in_force, **options)

    @classmethod
    def sell_yes(
        cls,
        ticker: str,
        price: Decimal,
        count: Decimal,
        time_in_force: TimeInForce = "good_till_canceled",
        **options: Any,
    ) -> OrderRequest:
        return cls(ticker, "ask", count, price, time_in_force, **options)

    @classmethod
    def buy_no(
        cls,
        ticker: str,
        no_price: Decimal,
        count: Decimal,
        time_in_force: TimeInForce = "good_till_canceled",
        **options: Any,
    ) -> OrderRequest:
        """Buying NO at q is selling YES at 1 - q (the §8.1 mapping)."""
        return cls(ticker, "ask", count, _ONE - no_price, time_in_force, **options)

    @classmethod
    def sell_no(
        cls,
        ticker: str,
        no_price: Decimal,
        count: Decimal,
        time_in_force: TimeInForce = "good_till_canceled",
        **options: Any,
    ) -> OrderRequest:
        """Selling NO at q is buying YES at 1 - q."""
        return cls(ticker, "bid", count, _ONE - no_price, time_in_force, **options)


# ----------------------------------------------------------------------------- errors


def parse_error(body: object) -> tuple[str | None, str]:
    """(code, message) from any of Kalshi's error shapes (§4.2): top-level `code`, an `error`
    object, or a bare `error` string. Raw text that is not JSON becomes the message."""
    data: object = body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            return None, body.strip()[:500]
    if not isinstance(data, Mapping):
        return None, str(data)[:500]
    if data.get("code") is not None:
        message = data.get("message") or data.get("details") or data.get("error") or ""
        return str(data["code"]), str(message)
    error = data.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message") or error.get("details") or code or ""
        return (None if code is None else str(code)), str(message)
    if isinstance(error, str):
        return None, error
    message = data.get("message") or data.get("details")
    return None, str(message) if message else json.dumps(data)[:500]


# ----------------------------------------------------------------------------- frames


def _dec_str(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def trades_frame(trades: Iterable[Trade]) -> pd.DataFrame:
    """Rows for `writers.TRADES` (md.trades); exact decimal strings survive COPY unchanged."""
    rows = [
        (
            t.trade_id.lower(),
            t.ticker,
            t.created_time,
            _dec_str(t.count),
            _dec_str(t.yes_price),
            _dec_str(t.no_price),
            t.taker_side,
            t.is_block_trade,
        )
        for t in trades
    ]
    names = [name for name, _ in TRADE_COLUMNS]
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame["created_time"] = pd.to_datetime(frame["created_time"], utc=True)
    frame["is_block_trade"] = frame["is_block_trade"].astype("boolean")
    for name in ("trade_id", "ticker", "count_fp", "yes_price", "no_price", "taker_side"):
        frame[name] = frame[name].astype("string")
    return frame


def candles_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """Rows for `writers.CANDLES` with price_scale 1 (dollars); ts is the minute's start."""
    names = [name for name, _ in CANDLE_COLUMNS]
    rows = []
    for c in candles:
        rows.append(
            {
                "ticker": c.ticker,
                "ts": c.end_period_ts - 60,
                "source": "api",
                **{
                    f"{side}_{part}": _dec_str(getattr(c, f"{side}_{part}"))
                    for side in ("yes_bid", "yes_ask", "price")
                    for part in _OHLC
                },
                "vwap": _dec_str(c.price_mean),
                "volume": _dec_str(c.volume),
                "open_interest": _dec_str(c.open_interest),
                "trade_count": None,
                "has_trade": c.price_close is not None,
                "is_synthetic": False,
            }
        )
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame["trade_count"] = frame["trade_count"].astype("Int64")
    frame["has_trade"] = frame["has_trade"].astype(bool)
    frame["is_synthetic"] = frame["is_synthetic"].astype(bool)
    for name in names:
        if name.startswith(("yes_", "price_")) or name in ("ticker", "source", "vwap", "volume"):
            frame[name] = frame[name].astype("string")
    frame["open_interest"] = frame["open_interest"].astype("string")
    return frame
