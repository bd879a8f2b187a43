"""Kalshi WebSocket client: signed connect, subscriptions, sequence checks, L2 books, reconnects.

What the exchange guarantees, and what this client does about it (reference §7, §12):

* The handshake is signed like a REST request on path ``/trade-api/ws/v2``; headers are rebuilt
  for every connection attempt so a reconnect never replays a timestamp. Without a signer the
  client connects unsigned (loopback simulators that do not check).
* ``orderbook_delta`` messages carry ``seq`` per ``sid``. A message is applied only when it is
  the next one. A gap (``seq > last + 1``) or a reset (``seq <= last``) means our books for
  that sid can be wrong, so they are discarded and re-requested with ``update_subscription``
  ``get_snapshot``; if the server refuses that, the subscription is dropped and made again. An
  exact copy of the last message (a redelivery) is dropped and counted instead: re-applying it
  would double a level, and resyncing for it would be wasted work. While a resync is pending,
  late deltas with old seqs are stale, not a new reset.
* ``use_yes_price`` is always sent explicitly (Kalshi will flip the default, then remove the
  flag), and every book event says which convention its prices use.
* Error codes 10, 17 and 25 end a subscription: it is made again. Any disconnect ends all of
  them: the client reconnects with jittered exponential backoff, subscribes again and rebuilds
  every book from fresh snapshots.
* A frame that cannot be understood is logged, kept (the last 100, in ``bad_frames``) and
  skipped; it never stops the stream. An exception raised by the ``on_event`` callback is *not*
  swallowed: it ends ``run`` so that, say, a recorder that cannot write does not lose data
  silently.

Book events are consistent by construction: a ``BookSnapshot`` then the ``BookDelta`` events
that follow it for the same ticker rebuild exactly the client's book. Deltas the client cannot
apply (while it waits for a snapshot) are not emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeAlias

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from kwx.config import Settings
from kwx.domain.prices import parse_count, parse_dollars
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import ShapeError, parse_fill, parse_order, parse_trade
from kwx.sources.orderbook import Level, OrderBook

__all__ = [
    "DEFAULT_BACKOFF",
    "RESUBSCRIBE_CODES",
    "WS_PATH",
    "BookDelta",
    "BookInvalidated",
    "BookSnapshot",
    "Connected",
    "Disconnected",
    "EventHandlerError",
    "FillMsg",
    "KalshiWebSocket",
    "KalshiWsAuthError",
    "LifecycleMsg",
    "Resynced",
    "ServerError",
    "TickerMsg",
    "TradeMsg",
    "UserOrderMsg",
    "WsEvent",
    "WsStats",
]

log = logging.getLogger(__name__)

WS_PATH = "/trade-api/ws/v2"
ORDERBOOK = "orderbook_delta"
MARKET_CHANNELS = (ORDERBOOK, "ticker", "trade")
PRIVATE_CHANNELS = ("fill", "user_orders", "market_lifecycle_v2")
RESUBSCRIBE_CODES = frozenset({10, 17, 25})
LIFECYCLE_TYPES = frozenset({"market_lifecycle_v2", "event_lifecycle", "event_fee_update"})
# Reconnects: start fast (a dropped socket usually comes back at once), cap at 30 s so the
# Thursday maintenance window is not hammered. Only `delay` is used: reconnects never stop.
DEFAULT_BACKOFF = RetryPolicy(base_delay_s=0.5, max_delay_s=30.0)
_MAX_BACKOFF_STEP = 30
# A subscription that keeps failing with a terminal code is retried this many times in a row.
MAX_RESUBSCRIBES = 5
BAD_FRAMES_KEPT = 100
# Frames longer than this are cut in log lines (the full text is kept in bad_frames).
_LOG_CHARS = 500

BookSide = Literal["yes", "no"]


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Connected:
    url: str
    conn: int


@dataclass(frozen=True)
class Disconnected:
    conn: int
    reason: str
    status: int | None = None  # HTTP status when the handshake was refused


@dataclass(frozen=True)
class BookSnapshot:
    """A full book. ``ts`` is the receive time: Kalshi's snapshot carries no timestamp."""

    ticker: str
    ts: datetime
    yes: tuple[Level, ...]
    no: tuple[Level, ...]
    sid: int
    seq: int
    use_yes_price: bool
    conn: int


@dataclass(frozen=True)
class BookDelta:
    ticker: str
    ts: datetime
    side: BookSide
    price: Decimal
    delta: Decimal
    sid: int
    seq: int
    use_yes_price: bool
    client_order_id: str | None
    conn: int


@dataclass(frozen=True)
class BookInvalidated:
    """The book for ``ticker`` was discarded (gap, reset, error, disconnect): do not trade on it."""

    ticker: str
    reason: str


@dataclass(frozen=True)
class Resynced:
    """The book for ``ticker`` was rebuilt from a fresh snapshot after ``reason``."""

    ticker: str
    reason: str


@dataclass(frozen=True)
class TradeMsg:
    trade_id: str
    ticker: str
    ts: datetime
    count: Decimal
    yes_price: Decimal
    no_price: Decimal
    taker_side: str | None
    is_block_trade: bool | None


@dataclass(frozen=True)
class TickerMsg:
    ticker: str
    ts: datetime
    price: Decimal | None
    yes_bid: Decimal | None
    yes_ask: Decimal | None
    yes_bid_size: Decimal | None
    yes_ask_size: Decimal | None
    volume: Decimal | None
    open_interest: Decimal | None


@dataclass(frozen=True)
class FillMsg:
    trade_id: str
    order_id: str
    ticker: str
    ts: datetime | None
    is_taker: bool | None
    yes_price: Decimal
    no_price: Decimal
    count: Decimal
    book_side: str | None
    outcome_side: str | None
    fee_cost: Decimal | None
    client_order_id: str | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class UserOrderMsg:
    order_id: str
    client_order_id: str | None
    ticker: str
    status: str
    yes_price: Decimal | None
    fill_count: Decimal
    remaining_count: Decimal
    initial_count: Decimal | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class LifecycleMsg:
    type: str
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class ServerError:
    code: int | None
    message: str
    sid: int | None
    cmd_id: int | None


WsEvent: TypeAlias = (
    Connected
    | Disconnected
    | BookSnapshot
    | BookDelta
    | BookInvalidated
    | Resynced
    | TradeMsg
    | TickerMsg
    | FillMsg
    | UserOrderMsg
    | LifecycleMsg
    | ServerError
)
EventHandler = Callable[[WsEvent], Awaitable[None]]
BadFrameHandler = Callable[[str, str], None]


class EventHandlerError(RuntimeError):
    """The ``on_event`` callback raised (the original exception is the ``__cause__``)."""


class KalshiWsAuthError(RuntimeError):
    """The server refused the handshake (HTTP 401/403): a wrong key will not get better."""

    def __init__(self, status: int, url: str) -> None:
        self.status = status
        super().__init__(f"Kalshi WebSocket {url} refused the handshake: HTTP {status}")


@dataclass
class WsStats:
    """Counters since the client was made (all connections)."""

    messages: int = 0
    connections: int = 0
    reconnects: int = 0  # attempts after a lost or failed connection
    snapshots: int = 0
    deltas: int = 0
    gaps: int = 0
    resets: int = 0
    resyncs: int = 0
    resubscribes: int = 0
    duplicates: int = 0  # exact redeliveries dropped
    stale: int = 0  # old-seq deltas during a resync, or frames for a dropped sid
    skipped_deltas: int = 0  # arrived while their book awaited a snapshot
    bad_frames: int = 0
    errors: int = 0
    unknown: int = 0


# ----------------------------------------------------------------------------- state


@dataclass
class _Subscription:
    """One channel we want; survives reconnects (``sid`` does not)."""

    channel: str
    tickers: list[str] | None  # None: no market filter
    use_yes_price: bool | None = None  # orderbook_delta only
    sid: int | None = None
    awaiting: set[str] = field(default_factory=set)  # tickers waiting for a snapshot
    resync_reason: dict[str, str] = field(default_factory=dict)
    failures: int = 0

    def subscribe_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"channels": [self.channel]}
        if self.tickers is not None:
            params["market_tickers"] = list(self.tickers)
        if self.use_yes_price is not None:
            params["use_yes_price"] = self.use_yes_price
        return params


@dataclass
class _SeqState:
    last: int
    last_frame: Mapping[str, Any]


@dataclass(frozen=True)
class _Pending:
    kind: Literal["subscribe", "unsubscribe", "get_snapshot", "add_markets"]
    sub: _Subscription | None
    tickers: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- parsing


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _decimal(value: object, field_name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ShapeError(f"{field_name}: expected a number, got {value!r}")
    try:
        result = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ShapeError(f"{field_name}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise ShapeError(f"{field_name}: must be finite, got {value!r}")
    return result


def _price(value: object, field_name: str) -> Decimal:
    try:
        return parse_dollars(value, field=field_name)
    except ValueError as exc:
        raise ShapeError(str(exc)) from None


def _opt_price(value: object, field_name: str) -> Decimal | None:
    return None if value is None else _price(value, field_name)


def _opt_count(value: object, field_name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_count(_decimal(value, field_name), field=field_name)
    except ValueError as exc:
        raise ShapeError(str(exc)) from None


def _first(d: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if d.get(name) is not None:
            return d[name]
    return None


def _msg_time(d: Mapping[str, Any], received: datetime) -> datetime:
    """``ts_ms`` (preferred), then the deprecated ``ts`` (seconds), else the receive time."""
    if d.get("ts_ms") is not None:
        return datetime.fromtimestamp(int(_decimal(d["ts_ms"], "ts_ms")) / 1000, tz=UTC)
    if d.get("ts") is not None:
        ts = d["ts"]
        if isinstance(ts, str) and not ts.strip().lstrip("-").isdigit():
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
        return datetime.fromtimestamp(int(_decimal(ts, "ts")), tz=UTC)
    return received


def _levels(raw: object, where: str) -> tuple[Level, ...]:
    """``[["0.4200", "13.00"], ...]`` (current) or legacy ``[[42, 13], ...]``; absent = empty."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ShapeError(f"{where}: expected a list of levels, got {raw!r}")
    out: list[Level] = []
    for level in raw:
        if not isinstance(level, list | tuple) or len(level) < 2:
            raise ShapeError(f"{where}: bad level {level!r}")
        size = _opt_count(level[1], f"{where} size")
        out.append((_price(level[0], f"{where} price"), size if size is not None else Decimal(0)))
    return tuple(sorted(out))


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"{where}: expected an integer, got {value!r}")
    return value


def _ticker(msg: Mapping[str, Any]) -> str:
    ticker = _first(msg, "market_ticker", "ticker")
    if not isinstance(ticker, str) or not ticker:
        raise ShapeError("missing field market_ticker")
    return ticker


# ----------------------------------------------------------------------------- client


class KalshiWebSocket:
    """One logical stream of Kalshi market (and, when signed, account) data.

    ``run(stop)`` keeps it alive until ``stop`` is set; ``books`` always holds only books the
    client believes are exact. Subscriptions: ``orderbook_delta``, ``ticker`` and ``trade`` for
    ``market_tickers``; plus ``fill``, ``user_orders`` and ``market_lifecycle_v2`` when
    ``private_channels`` is true (default: when a signer is given).
    """

    def __init__(
        self,
        url: str,
        market_tickers: Iterable[str],
        *,
        signer: KalshiSigner | None = None,
        on_event: EventHandler | None = None,
        on_bad_frame: BadFrameHandler | None = None,
        private_channels: bool | None = None,
        use_yes_price: bool = True,
        backoff: RetryPolicy = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
        open_timeout_s: float = 10.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.url = url
        self.signer = signer
        self.use_yes_price = use_yes_price
        self.backoff = backoff
        self.open_timeout_s = open_timeout_s
        self.books: dict[str, OrderBook] = {}
        self.stats = WsStats()
        self._on_event = on_event
        self._on_bad_frame = on_bad_frame
        self._rng = rng or random.Random()
        self._clock = clock
        self._bad_frames: deque[str] = deque(maxlen=BAD_FRAMES_KEPT)
        tickers = list(dict.fromkeys(market_tickers))
        self._market_subs = [
            _Subscription(channel, list(tickers), use_yes_price if channel == ORDERBOOK else None)
            for channel in MARKET_CHANNELS
        ]
        private = signer is not None if private_channels is None else private_channels
        self._private_subs = (
            [_Subscription(channel, None) for channel in PRIVATE_CHANNELS] if private else []
        )
        # Per connection:
        self._conn = 0
        self._ws: ClientConnection | None = None
        self._next_id = 1
        self._pending: dict[int, _Pending] = {}
        self._by_sid: dict[int, _Subscription] = {}
        self._seq: dict[int, _SeqState] = {}
        self._conn_open = False
        self._got_data = False

    @classmethod
    def from_settings(
        cls, settings: Settings, market_tickers: Iterable[str], **kwargs: Any
    ) -> KalshiWebSocket:
        """The configured endpoint, signed when a key id and a private key file are set."""
        signer = None
        if settings.kalshi_api_key_id is not None and settings.kalshi_private_key_path is not None:
            signer = KalshiSigner.from_pem_file(
                settings.kalshi_api_key_id.get_secret_value(), settings.kalshi_private_key_path
            )
        return cls(settings.kalshi_ws_url, market_tickers, signer=signer, **kwargs)

    # ------------------------------------------------------------------ public surface

    @property
    def market_tickers(self) -> list[str]:
        return list(self._market_subs[0].tickers or [])

    @property
    def bad_frames(self) -> list[str]:
        """The raw text of the last malformed frames, oldest first."""
        return list(self._bad_frames)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def subscriptions(self) -> dict[str, int | None]:
        """channel -> current sid (None while not subscribed)."""
        return {sub.channel: sub.sid for sub in self._all_subs()}

    async def add_markets(self, tickers: Iterable[str]) -> None:
        """Follow more markets (a new day's brackets) without dropping the stream."""
        new = [t for t in dict.fromkeys(tickers) if t not in self.market_tickers]
        if not new:
            return
        for sub in self._market_subs:
            assert sub.tickers is not None
            had_markets = bool(sub.tickers)
            sub.tickers.extend(new)
            if self._ws is None:
                continue
            if sub.channel == ORDERBOOK:
                sub.awaiting.update(new)
            if sub.sid is not None and had_markets:
                await self._send(
                    "update_subscription",
                    {"sids": [sub.sid], "market_tickers": new, "action": "add_markets"},
                    _Pending("add_markets", sub),
                )
            elif sub.sid is None and not had_markets:
                await self._subscribe(sub)

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set; reconnects on any failure except a refused key.

        Raises ``KalshiWsAuthError`` on HTTP 401/403 and ``EventHandlerError`` when the
        ``on_event`` callback fails.
        """
        attempt = 0
        try:
            while not stop.is_set():
                # Signed over the URL's own path (``/trade-api/ws/v2`` on Kalshi), fresh each time.
                headers = self.signer.headers("GET", self.url) if self.signer else None
                self._got_data = False
                try:
                    async with connect(
                        self.url,
                        additional_headers=headers,
                        open_timeout=self.open_timeout_s,
                        close_timeout=2.0,
                        max_size=2**24,
                    ) as ws:
                        await self._session(ws, stop)
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    log.warning("Kalshi WS %s: handshake refused: HTTP %d", self.url, status)
                    await self._emit(Disconnected(self._conn, str(exc), status))
                    if status in (401, 403):
                        raise KalshiWsAuthError(status, self.url) from None
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    log.warning("Kalshi WS %s: %s", self.url, reason)
                    await self._lost(reason)
                if stop.is_set():
                    break
                attempt = 0 if self._got_data else min(attempt + 1, _MAX_BACKOFF_STEP)
                self.stats.reconnects += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        stop.wait(), timeout=self.backoff.delay(attempt, self._rng)
                    )
        finally:
            self._ws = None
            self._conn_open = False

    # ------------------------------------------------------------------ connection

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        """One connection, from subscribe to close."""
        self._conn += 1
        self.stats.connections += 1
        self._ws = ws
        self._conn_open = True
        self._next_id = 1
        self._pending.clear()
        self._by_sid.clear()
        self._seq.clear()
        closer = asyncio.create_task(self._close_on(stop, ws))
        try:
            await self._emit(Connected(self.url, self._conn))
            for sub in self._all_subs():
                sub.sid = None
                sub.failures = 0
                if sub.channel == ORDERBOOK:
                    sub.awaiting = set(sub.tickers or ())
                    sub.resync_reason = {}
                if sub.tickers is None or sub.tickers:
                    await self._subscribe(sub)
            async for raw in ws:
                self._got_data = True
                await self._handle(raw)
        finally:
            closer.cancel()
        await self._lost("stopped" if stop.is_set() else f"closed (code {ws.close_code})")

    @staticmethod
    async def _close_on(stop: asyncio.Event, ws: ClientConnection) -> None:
        await stop.wait()
        await ws.close()

    async def _lost(self, reason: str) -> None:
        """The connection is gone, and every book and sid with it."""
        if not self._conn_open:
            return
        self._conn_open = False
        self._ws = None
        for sub in self._all_subs():
            sub.sid = None
        for ticker in list(self.books):
            del self.books[ticker]
            await self._emit(BookInvalidated(ticker, "disconnect"))
        await self._emit(Disconnected(self._conn, reason))

    def _all_subs(self) -> list[_Subscription]:
        return [*self._market_subs, *self._private_subs]

    async def _send(self, cmd: str, params: dict[str, Any] | None, pending: _Pending) -> int:
        ws = self._ws
        if ws is None:
            return 0
        cmd_id = self._next_id
        self._next_id += 1
        frame: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
        if params is not None:
            frame["params"] = params
        self._pending[cmd_id] = pending
        await ws.send(json.dumps(frame))
        return cmd_id

    async def _subscribe(self, sub: _Subscription) -> None:
        pending = _Pending("subscribe", sub, tuple(sub.tickers or ()))
        await self._send("subscribe", sub.subscribe_params(), pending)

    async def _emit(self, event: WsEvent) -> None:
        if self._on_event is None:
            return
        try:
            await self._on_event(event)
        except Exception as exc:
            # Wrapped so that the frame handler cannot mistake it for a parsing error.
            raise EventHandlerError(f"on_event failed on {type(event).__name__}") from exc

    # ------------------------------------------------------------------ frames

    def _bad(self, raw: str, reason: str) -> None:
        self.stats.bad_frames += 1
        self._bad_frames.append(raw)
        log.warning("Kalshi WS: bad frame (%s): %s", reason, raw[:_LOG_CHARS])
        if self._on_bad_frame is not None:
            try:
                self._on_bad_frame(raw, reason)
            except Exception:
                log.exception("on_bad_frame hook failed")

    async def _handle(self, raw: str | bytes) -> None:
        self.stats.messages += 1
        received = self._clock()
        if isinstance(raw, bytes):
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                self._bad(raw.decode(errors="replace"), "binary frame is not UTF-8")
                return
        else:
            text = raw
        try:
            data = json.loads(text)
        except ValueError as exc:
            self._bad(text, f"not JSON: {exc}")
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._bad(text, "not an object with a 'type'")
            return
        try:
            await self._dispatch(data, received)
        except (ShapeError, KeyError, TypeError, ValueError, InvalidOperation) as exc:
            self._bad(text, f"{type(exc).__name__}: {exc}")

    async def _dispatch(self, data: dict[str, Any], received: datetime) -> None:
        """Route one parsed frame. Parsing errors raise before any state changes."""
        kind: str = data["type"]
        if kind in ("orderbook_snapshot", "orderbook_delta"):
            await self._on_book(data, received)
        elif kind == "subscribed":
            await self._on_subscribed(data)
        elif kind == "ok":
            self._on_ok(data)
        elif kind == "unsubscribed":
            self._pending.pop(data.get("id", -1), None)
        elif kind == "error":
            await self._on_error(data)
        else:
            event = self._parse_data(kind, data, received)
            if event is None:
                self.stats.unknown += 1
                log.debug("Kalshi WS: ignoring message type %r", kind)
                return
            if self._track_other(data) == "duplicate":
                return
            await self._emit(event)

    def _parse_data(self, kind: str, data: Mapping[str, Any], received: datetime) -> WsEvent | None:
        msg = _mapping(data.get("msg"), kind)
        if kind == "trade":
            trade = parse_trade(msg)
            return TradeMsg(
                trade.trade_id,
                trade.ticker,
                trade.created_time,
                trade.count,
                trade.yes_price,
                trade.no_price,
                trade.taker_side,
                trade.is_block_trade,
            )
        if kind == "ticker":
            return TickerMsg(
                ticker=_ticker(msg),
                ts=_msg_time(msg, received),
                price=_opt_price(_first(msg, "price_dollars", "price"), "price"),
                yes_bid=_opt_price(_first(msg, "yes_bid_dollars", "yes_bid"), "yes_bid"),
                yes_ask=_opt_price(_first(msg, "yes_ask_dollars", "yes_ask"), "yes_ask"),
                yes_bid_size=_opt_count(msg.get("yes_bid_size_fp"), "yes_bid_size"),
                yes_ask_size=_opt_count(msg.get("yes_ask_size_fp"), "yes_ask_size"),
                volume=_opt_count(_first(msg, "volume_fp", "volume"), "volume"),
                open_interest=_opt_count(
                    _first(msg, "open_interest_fp", "open_interest"), "open_interest"
                ),
            )
        if kind == "fill":
            fill = parse_fill(msg)
            return FillMsg(
                trade_id=fill.fill_id,
                order_id=fill.order_id,
                ticker=fill.ticker,
                ts=_msg_time(msg, received) if "ts" in msg or "ts_ms" in msg else None,
                is_taker=fill.is_taker,
                yes_price=fill.yes_price,
                no_price=fill.no_price,
                count=fill.count,
                book_side=fill.book_side,
                outcome_side=fill.outcome_side,
                fee_cost=fill.fee_cost,
                client_order_id=msg.get("client_order_id") or None,
                raw=msg,
            )
        if kind == "user_order":
            order = parse_order(msg)
            return UserOrderMsg(
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                ticker=order.ticker,
                status=order.status,
                yes_price=order.yes_price,
                fill_count=order.fill_count,
                remaining_count=order.remaining_count,
                initial_count=order.initial_count,
                raw=msg,
            )
        if kind in LIFECYCLE_TYPES:
            return LifecycleMsg(kind, msg)
        return None

    def _track_other(self, data: Mapping[str, Any]) -> str:
        """Seq bookkeeping for non-book channels: drop redeliveries, count gaps, never resync."""
        sid, seq = data.get("sid"), data.get("seq")
        if not isinstance(sid, int) or not isinstance(seq, int):
            return "ok"
        state = self._seq.get(sid)
        if state is not None and seq <= state.last:
            if seq == state.last and state.last_frame == data:
                self.stats.duplicates += 1
                return "duplicate"
            self.stats.resets += 1
        elif state is not None and seq > state.last + 1:
            self.stats.gaps += 1
        self._seq[sid] = _SeqState(seq, data)
        return "ok"

    # ------------------------------------------------------------------ replies

    async def _on_subscribed(self, data: Mapping[str, Any]) -> None:
        msg = _mapping(data.get("msg"), "subscribed")
        sid = _int(msg.get("sid"), "subscribed sid")
        pending = self._pending.pop(data.get("id", -1), None)
        sub = pending.sub if pending is not None else None
        if pending is None or sub is None or msg.get("channel", sub.channel) != sub.channel:
            log.warning("Kalshi WS: unexpected 'subscribed' reply %s", dict(data))
            return
        sub.sid = sid
        self._by_sid[sid] = sub
        self._seq.pop(sid, None)
        late = [t for t in sub.tickers or () if t not in pending.tickers]
        if late and sub.tickers is not None:
            # Markets added while the subscribe was in flight.
            await self._send(
                "update_subscription",
                {"sids": [sid], "market_tickers": late, "action": "add_markets"},
                _Pending("add_markets", sub, tuple(late)),
            )

    def _on_ok(self, data: Mapping[str, Any]) -> None:
        self._pending.pop(data.get("id", -1), None)
        # Replies on a sequenced sid may take a seq of their own; accept it only in order, so
        # an echo of the current seq (or any other reading of it) never triggers a resync.
        sid, seq = data.get("sid"), data.get("seq")
        if isinstance(sid, int) and isinstance(seq, int):
            state = self._seq.get(sid)
            if state is not None and seq == state.last + 1:
                self._seq[sid] = _SeqState(seq, data)

    async def _on_error(self, data: Mapping[str, Any]) -> None:
        msg = data.get("msg")
        msg = msg if isinstance(msg, Mapping) else {}
        code = msg.get("code") if isinstance(msg.get("code"), int) else None
        cmd_id = data.get("id") if isinstance(data.get("id"), int) else None
        sid_raw = data.get("sid", msg.get("sid"))
        sid = sid_raw if isinstance(sid_raw, int) else None
        self.stats.errors += 1
        text = str(msg.get("msg", ""))
        log.warning("Kalshi WS error code=%s sid=%s id=%s: %s", code, sid, cmd_id, text)
        await self._emit(ServerError(code, text, sid, cmd_id))
        pending = self._pending.pop(cmd_id, None) if cmd_id is not None else None
        if pending is not None and pending.sub is not None:
            sub = pending.sub
            if pending.kind == "get_snapshot":
                await self._resubscribe(sub, "get_snapshot refused")
            elif pending.kind == "subscribe" and code in RESUBSCRIBE_CODES:
                await self._resubscribe(sub, f"error {code}")
            elif pending.kind == "add_markets":
                await self._resubscribe(sub, "add_markets refused")
            return
        if sid is not None and code in RESUBSCRIBE_CODES:
            by_sid = self._by_sid.get(sid)
            if by_sid is not None:
                await self._resubscribe(by_sid, f"error {code}")

    # ------------------------------------------------------------------ books

    async def _on_book(self, data: Mapping[str, Any], received: datetime) -> None:
        sid = _int(data.get("sid"), "sid")
        seq = _int(data.get("seq"), "seq")
        msg = _mapping(data.get("msg"), str(data["type"]))
        ticker = _ticker(msg)
        sub = self._by_sid.get(sid)
        use_yes = bool(sub.use_yes_price) if sub is not None else self.use_yes_price
        event: BookSnapshot | BookDelta
        if data["type"] == "orderbook_snapshot":
            event = BookSnapshot(
                ticker=ticker,
                ts=received,
                yes=_levels(_first(msg, "yes_dollars_fp", "yes_dollars", "yes"), "snapshot yes"),
                no=_levels(_first(msg, "no_dollars_fp", "no_dollars", "no"), "snapshot no"),
                sid=sid,
                seq=seq,
                use_yes_price=use_yes,
                conn=self._conn,
            )
        else:
            side = msg.get("side")
            if side not in ("yes", "no"):
                raise ShapeError(f"delta side must be 'yes' or 'no', got {side!r}")
            event = BookDelta(
                ticker=ticker,
                ts=_msg_time(msg, received),
                side=side,
                price=_price(_first(msg, "price_dollars", "price"), "price"),
                delta=_decimal(_first(msg, "delta_fp", "delta"), "delta"),
                sid=sid,
                seq=seq,
                use_yes_price=use_yes,
                client_order_id=msg.get("client_order_id") or None,
                conn=self._conn,
            )
        if sub is None or sub.channel != ORDERBOOK:
            # A sid we dropped (resubscribe in flight) or never asked for: nothing to update.
            self.stats.stale += 1
            return

        verdict = self._check_seq(sub, sid, seq, data, is_snapshot=isinstance(event, BookSnapshot))
        if verdict in ("duplicate", "stale"):
            return
        if verdict in ("gap", "reset"):
            await self._resync(sub, verdict)
        if isinstance(event, BookSnapshot):
            await self._apply_snapshot(sub, event)
        else:
            await self._apply_delta(sub, event)

    def _check_seq(
        self,
        sub: _Subscription,
        sid: int,
        seq: int,
        data: Mapping[str, Any],
        *,
        is_snapshot: bool,
    ) -> Literal["ok", "duplicate", "stale", "gap", "reset"]:
        state = self._seq.get(sid)
        verdict: Literal["ok", "duplicate", "stale", "gap", "reset"] = "ok"
        if state is None or seq == state.last + 1:
            verdict = "ok"
        elif seq <= state.last:
            if seq == state.last and state.last_frame == data:
                self.stats.duplicates += 1
                return "duplicate"
            if sub.resync_reason and not is_snapshot:
                # A resync is under way: books are discarded and snapshots requested, so an old
                # delta (say, the second half of a swapped pair) carries nothing we need.
                self.stats.stale += 1
                return "stale"
            self.stats.resets += 1
            verdict = "reset"
            log.warning("Kalshi WS sid %d: seq went back from %d to %d", sid, state.last, seq)
        else:
            self.stats.gaps += 1
            verdict = "gap"
            log.warning("Kalshi WS sid %d: gap, expected seq %d, got %d", sid, state.last + 1, seq)
        self._seq[sid] = _SeqState(seq, data)
        return verdict

    async def _discard(self, sub: _Subscription, reason: str) -> None:
        for ticker in sub.tickers or ():
            sub.awaiting.add(ticker)
            sub.resync_reason[ticker] = reason
            if self.books.pop(ticker, None) is not None:
                await self._emit(BookInvalidated(ticker, reason))

    async def _resync(self, sub: _Subscription, reason: str) -> None:
        """Discard the sid's books and ask for fresh snapshots, leaving the stream running."""
        self.stats.resyncs += 1
        await self._discard(sub, reason)
        if sub.sid is not None and sub.tickers:
            await self._send(
                "update_subscription",
                {"sids": [sub.sid], "market_tickers": list(sub.tickers), "action": "get_snapshot"},
                _Pending("get_snapshot", sub),
            )

    async def _resubscribe(self, sub: _Subscription, reason: str) -> None:
        """Drop the subscription and make it again (terminal errors, refused resyncs)."""
        sub.failures += 1
        if sub.failures > MAX_RESUBSCRIBES:
            log.error(
                "Kalshi WS: %s failed %d times in a row (%s); giving up until reconnect",
                sub.channel,
                sub.failures - 1,
                reason,
            )
            return
        self.stats.resubscribes += 1
        old = sub.sid
        sub.sid = None
        if old is not None:
            self._by_sid.pop(old, None)
            self._seq.pop(old, None)
            await self._send("unsubscribe", {"sids": [old]}, _Pending("unsubscribe", None))
        if sub.channel == ORDERBOOK:
            await self._discard(sub, reason)
        await self._subscribe(sub)

    async def _apply_snapshot(self, sub: _Subscription, event: BookSnapshot) -> None:
        book = OrderBook(event.ticker, event.use_yes_price)
        book.apply_snapshot(event.yes, event.no)
        self.books[event.ticker] = book
        self.stats.snapshots += 1
        was_awaiting = event.ticker in sub.awaiting
        sub.awaiting.discard(event.ticker)
        reason = sub.resync_reason.pop(event.ticker, None)
        await self._emit(event)
        if was_awaiting and reason is not None:
            await self._emit(Resynced(event.ticker, reason))

    async def _apply_delta(self, sub: _Subscription, event: BookDelta) -> None:
        book = self.books.get(event.ticker)
        if book is None:
            self.stats.skipped_deltas += 1
            if event.ticker not in sub.awaiting and event.ticker in (sub.tickers or ()):
                # A delta for a market we follow but hold no book for: ask for one.
                await self._resync_tickers(sub, [event.ticker], "delta without snapshot")
            return
        book.apply_delta(event.side, event.price, event.delta)
        self.stats.deltas += 1
        await self._emit(event)

    async def _resync_tickers(
        self, sub: _Subscription, tickers: Sequence[str], reason: str
    ) -> None:
        self.stats.resyncs += 1
        for ticker in tickers:
            sub.awaiting.add(ticker)
            sub.resync_reason[ticker] = reason
        if sub.sid is not None:
            await self._send(
                "update_subscription",
                {"sids": [sub.sid], "market_tickers": list(tickers), "action": "get_snapshot"},
                _Pending("get_snapshot", sub),
            )
