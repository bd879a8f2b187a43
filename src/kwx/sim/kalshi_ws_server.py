"""A Kalshi-compatible WebSocket server on 127.0.0.1, with scripted books and injectable faults.

Tests run the real client against it over a real socket, so the signed handshake, the command
protocol, per-sid sequence numbers and every recovery path are exercised on the wire, never
against mocks. It speaks the reference's §7 shapes: ``subscribe`` / ``unsubscribe`` /
``update_subscription`` (``add_markets``, ``delete_markets``, ``get_snapshot``) /
``list_subscriptions`` commands; ``subscribed`` / ``unsubscribed`` / ``ok`` / ``error`` replies;
``orderbook_snapshot`` then ``orderbook_delta`` with ``*_dollars`` / ``*_fp`` strings; ``trade``
and ``ticker`` messages. The ``use_yes_price`` flag is honoured per subscription: the server keeps
NO levels in NO-leg prices (as Kalshi does by default) and converts them to YES-leg prices for
subscribers that asked for it.

It runs in the caller's event loop (``async with KalshiWsServer() as server``). Feeding is
synchronous: ``set_book`` / ``feed_delta`` / ``feed_trade`` / ``feed_ticker`` update the state
and queue frames per connection, and one writer task per connection sends them in order, so a
test can script a burst and then wait for the client to converge. Faults are one-shot and apply
to the next ``orderbook_delta`` frame(s): ``inject_gap`` (the frame consumes a seq but is never
sent), ``inject_duplicate``, ``inject_reorder`` (swap it with the next one), ``drop_after`` (abort
the TCP connection after N more frames), ``refuse_get_snapshot``; ``send_malformed`` and
``send_error`` (code 17 by default, which kills that sid) act at once. Not thread-safe: call it
from the loop it runs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from kwx.sources.kalshi_auth import KEY_HEADER, TIMESTAMP_HEADER, verify_signature
from kwx.sources.kalshi_models import dollars_str

__all__ = ["WS_PATH", "Handshake", "KalshiWsServer", "ServerFaults"]

log = logging.getLogger(__name__)

WS_PATH = "/trade-api/ws/v2"
ORDERBOOK = "orderbook_delta"
CHANNELS = frozenset(
    {
        ORDERBOOK,
        "ticker",
        "trade",
        "fill",
        "user_orders",
        "market_positions",
        "market_lifecycle_v2",
        "communications",
        "order_group_updates",
    }
)
_ONE = Decimal(1)

# Error codes, after the AsyncAPI list (reference §7.2: 1-28; 10/17/25 end a subscription).
E_PROCESS = 1
E_PARAMS = 2
E_CHANNELS = 3
E_SIDS = 4
E_UNKNOWN_CMD = 5
E_UNKNOWN_SID = 7
E_UNKNOWN_CHANNEL = 8
E_INVALID_PARAM = 11
E_ONE_SID = 12
E_ACTION = 13
E_TICKER_REQUIRED = 14
E_INTERNAL = 17


@dataclass(frozen=True)
class Handshake:
    """One upgrade request as the server judged it (headers as sent, for assertions)."""

    path: str
    headers: dict[str, str]
    status: int

    @property
    def accepted(self) -> bool:
        return self.status == HTTPStatus.SWITCHING_PROTOCOLS


@dataclass
class ServerFaults:
    """Armed one-shot faults; each counter is spent on the next matching frame."""

    gaps: int = 0
    duplicates: int = 0
    reorders: int = 0
    drop_after: int | None = None
    refuse_get_snapshot: int = 0


@dataclass
class _Book:
    yes: dict[Decimal, Decimal] = field(default_factory=dict)
    no: dict[Decimal, Decimal] = field(default_factory=dict)  # NO-leg prices

    def side(self, side: str) -> dict[Decimal, Decimal]:
        if side == "yes":
            return self.yes
        if side == "no":
            return self.no
        raise ValueError(f"side must be 'yes' or 'no', got {side!r}")


@dataclass
class _Sub:
    sid: int
    channel: str
    tickers: list[str] | None  # None: every market
    use_yes_price: bool
    seq: int = 0
    alive: bool = True

    def covers(self, ticker: str | None) -> bool:
        return self.alive and (self.tickers is None or ticker is None or ticker in self.tickers)


class _Session:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.subs: dict[int, _Sub] = {}
        self.sids = itertools.count(1)
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.held: str | None = None  # a frame kept back by a reorder fault
        self.busy = False
        self.sent = 0


def _count_str(value: Decimal) -> str:
    return format(value, ".2f")


def _levels(book: Mapping[Decimal, Decimal], flip: bool) -> list[list[str]]:
    pairs = sorted(((_ONE - p if flip else p), s) for p, s in book.items() if s > 0)
    return [[dollars_str(p), _count_str(s)] for p, s in pairs]


def _now_ms() -> int:
    return int(time.time() * 1000)


class KalshiWsServer:
    """The server; see the module notes. ``url`` is valid inside ``async with``."""

    def __init__(
        self,
        *,
        public_key: rsa.RSAPublicKey | None = None,
        key_id: str | None = None,
        max_skew_s: float | None = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.public_key = public_key
        self.key_id = key_id
        self.max_skew_s = max_skew_s
        self.host = host
        self.port = port
        self.books: dict[str, _Book] = {}
        self.received: list[dict[str, Any]] = []
        self.handshakes: list[Handshake] = []
        self.faults = ServerFaults()
        self.connections = 0
        self.frames_sent = 0
        self._sessions: list[_Session] = []
        self._server: Server | None = None
        self._market_ids: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handler, self.host, self.port, process_request=self._process_request
        )
        sockets = list(self._server.sockets)
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def active_connections(self) -> int:
        return len(self._sessions)

    def subscriptions(self, channel: str | None = None) -> list[tuple[int, str, list[str] | None]]:
        """(sid, channel, tickers) of live subscriptions on every connection, for assertions."""
        return [
            (sub.sid, sub.channel, None if sub.tickers is None else list(sub.tickers))
            for session in self._sessions
            for sub in session.subs.values()
            if sub.alive and (channel is None or sub.channel == channel)
        ]

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued frame has been written to its socket."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(not s.outbox.empty() or s.busy for s in self._sessions):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("frames still queued")
            await asyncio.sleep(0.002)

    async def disconnect_all(self) -> None:
        """Drop every connection abruptly (no close frame), as a network failure would."""
        for session in list(self._sessions):
            session.ws.transport.abort()

    # ------------------------------------------------------------------ handshake

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        headers = dict(request.headers.raw_items())
        status = HTTPStatus.SWITCHING_PROTOCOLS
        if path != WS_PATH:
            status = HTTPStatus.NOT_FOUND
        elif self.public_key is not None and not self._authentic(request, path):
            status = HTTPStatus.UNAUTHORIZED
        self.handshakes.append(Handshake(path, headers, int(status)))
        if status == HTTPStatus.NOT_FOUND:
            return connection.respond(status, "not found\n")
        if status == HTTPStatus.UNAUTHORIZED:
            return connection.respond(status, "invalid or missing KALSHI-ACCESS signature\n")
        return None

    def _authentic(self, request: Request, path: str) -> bool:
        assert self.public_key is not None
        if not verify_signature(self.public_key, request.headers, "GET", path):
            return False
        if self.key_id is not None and request.headers.get(KEY_HEADER) != self.key_id:
            return False
        if self.max_skew_s is not None:
            try:
                skew_ms = abs(_now_ms() - int(request.headers.get(TIMESTAMP_HEADER, "")))
            except ValueError:
                return False
            if skew_ms > self.max_skew_s * 1000:
                return False
        return True

    # ------------------------------------------------------------------ connections

    async def _handler(self, ws: ServerConnection) -> None:
        session = _Session(ws)
        self._sessions.append(session)
        self.connections += 1
        writer = asyncio.create_task(self._writer(session))
        try:
            async for raw in ws:
                self._on_command(session, raw if isinstance(raw, str) else raw.decode("utf-8"))
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._sessions.remove(session)

    async def _writer(self, session: _Session) -> None:
        while True:
            frame = await session.outbox.get()
            session.busy = True
            try:
                if frame is None:
                    session.ws.transport.abort()
                    return
                try:
                    await session.ws.send(frame)
                except ConnectionClosed:
                    return
                session.sent += 1
                self.frames_sent += 1
                if self.faults.drop_after is not None:
                    self.faults.drop_after -= 1
                    if self.faults.drop_after <= 0:
                        self.faults.drop_after = None
                        session.ws.transport.abort()
                        return
            finally:
                session.busy = False

    def _put(self, session: _Session, frame: Mapping[str, Any] | str) -> None:
        session.outbox.put_nowait(frame if isinstance(frame, str) else json.dumps(frame))

    # ------------------------------------------------------------------ commands

    def _error(
        self, session: _Session, cmd_id: object, code: int, msg: str, sid: int | None = None
    ) -> None:
        frame: dict[str, Any] = {"type": "error", "msg": {"code": code, "msg": msg}}
        if isinstance(cmd_id, int):
            frame["id"] = cmd_id
        if sid is not None:
            frame["sid"] = sid
        self._put(session, frame)

    def _on_command(self, session: _Session, raw: str) -> None:
        try:
            cmd = json.loads(raw)
        except ValueError:
            self._error(session, None, E_PROCESS, "Unable to process message")
            return
        if not isinstance(cmd, dict):
            self._error(session, None, E_PROCESS, "Unable to process message")
            return
        self.received.append(cmd)
        cmd_id = cmd.get("id")
        params = cmd.get("params") or {}
        if not isinstance(cmd_id, int) or not isinstance(params, dict):
            self._error(session, cmd_id, E_PROCESS, "Unable to process message")
            return
        name = cmd.get("cmd")
        if name == "subscribe":
            self._subscribe(session, cmd_id, params)
        elif name == "unsubscribe":
            self._unsubscribe(session, cmd_id, params)
        elif name == "update_subscription":
            self._update(session, cmd_id, params)
        elif name == "list_subscriptions":
            listing = [
                {"channel": s.channel, "sid": s.sid}
                | ({} if s.tickers is None else {"market_tickers": list(s.tickers)})
                for s in session.subs.values()
                if s.alive
            ]
            self._put(session, {"id": cmd_id, "type": "ok", "msg": listing})
        else:
            self._error(session, cmd_id, E_UNKNOWN_CMD, "Unknown command")

    @staticmethod
    def _tickers(params: Mapping[str, Any]) -> list[str] | str | None:
        """The market filter, None when absent, or an error message."""
        one, many = params.get("market_ticker"), params.get("market_tickers")
        if one is not None and many is not None:
            return "market_ticker and market_tickers are mutually exclusive"
        if one is not None:
            return [str(one)] if isinstance(one, str) and one else "bad market_ticker"
        if many is not None:
            if not isinstance(many, list) or not all(isinstance(t, str) for t in many):
                return "bad market_tickers"
            return list(dict.fromkeys(many))
        return None

    def _subscribe(self, session: _Session, cmd_id: int, params: Mapping[str, Any]) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            self._error(session, cmd_id, E_CHANNELS, "Channels required")
            return
        tickers = self._tickers(params)
        if isinstance(tickers, str):
            self._error(session, cmd_id, E_INVALID_PARAM, tickers)
            return
        use_yes = params.get("use_yes_price", False)
        if not isinstance(use_yes, bool):
            self._error(session, cmd_id, E_INVALID_PARAM, "use_yes_price must be a boolean")
            return
        for channel in channels:
            if channel not in CHANNELS:
                self._error(session, cmd_id, E_UNKNOWN_CHANNEL, "Unknown channel name")
                continue
            if channel == ORDERBOOK and not tickers:
                self._error(session, cmd_id, E_TICKER_REQUIRED, "Market Ticker required")
                continue
            sub = _Sub(next(session.sids), channel, tickers and list(tickers), use_yes)
            session.subs[sub.sid] = sub
            self._put(
                session,
                {"id": cmd_id, "type": "subscribed", "msg": {"channel": channel, "sid": sub.sid}},
            )
            if channel == ORDERBOOK:
                for ticker in sub.tickers or ():
                    self._send_snapshot(session, sub, ticker)

    def _unsubscribe(self, session: _Session, cmd_id: int, params: Mapping[str, Any]) -> None:
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            self._error(session, cmd_id, E_SIDS, "Subscription IDs required")
            return
        for sid in sids:
            sub = session.subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                self._error(session, cmd_id, E_UNKNOWN_SID, "Unknown subscription ID")
                continue
            sub.seq += 1
            self._put(
                session, {"id": cmd_id, "sid": sub.sid, "seq": sub.seq, "type": "unsubscribed"}
            )

    def _update(self, session: _Session, cmd_id: int, params: Mapping[str, Any]) -> None:
        sids = params.get("sids", [params["sid"]] if "sid" in params else None)
        if not isinstance(sids, list) or len(sids) != 1:
            self._error(session, cmd_id, E_ONE_SID, "Exactly one subscription ID is required")
            return
        sub = session.subs.get(sids[0]) if isinstance(sids[0], int) else None
        if sub is None or not sub.alive:
            self._error(session, cmd_id, E_UNKNOWN_SID, "Unknown subscription ID")
            return
        tickers = self._tickers(params)
        if isinstance(tickers, str) or not tickers:
            self._error(session, cmd_id, E_TICKER_REQUIRED, "Market Ticker required")
            return
        action = params.get("action")
        current = sub.tickers if sub.tickers is not None else []
        if action == "add_markets":
            added = [t for t in tickers if t not in current]
            sub.tickers = [*current, *added]
            self._ok(session, cmd_id, sub)
            if sub.channel == ORDERBOOK:
                for ticker in added:
                    self._send_snapshot(session, sub, ticker)
        elif action == "delete_markets":
            sub.tickers = [t for t in current if t not in tickers]
            self._ok(session, cmd_id, sub)
        elif action == "get_snapshot":
            if sub.channel != ORDERBOOK or any(t not in current for t in tickers):
                self._error(session, cmd_id, E_INVALID_PARAM, "Not subscribed to these markets")
                return
            if self.faults.refuse_get_snapshot > 0:
                self.faults.refuse_get_snapshot -= 1
                self._error(session, cmd_id, E_ACTION, "Unsupported action")
                return
            self._ok(session, cmd_id, sub)
            for ticker in tickers:
                self._send_snapshot(session, sub, ticker)
        else:
            self._error(session, cmd_id, E_ACTION, "Unsupported action")

    def _ok(self, session: _Session, cmd_id: int, sub: _Sub) -> None:
        frame: dict[str, Any] = {"id": cmd_id, "sid": sub.sid, "type": "ok"}
        if sub.channel == ORDERBOOK:
            sub.seq += 1
            frame["seq"] = sub.seq
        frame["msg"] = {"market_tickers": list(sub.tickers or [])}
        self._put(session, frame)

    # ------------------------------------------------------------------ market data

    def _market_id(self, ticker: str) -> str:
        return self._market_ids.setdefault(ticker, str(uuid.uuid5(uuid.NAMESPACE_URL, ticker)))

    def _send_snapshot(self, session: _Session, sub: _Sub, ticker: str) -> None:
        book = self.books.setdefault(ticker, _Book())
        msg: dict[str, Any] = {"market_ticker": ticker, "market_id": self._market_id(ticker)}
        if book.yes:
            msg["yes_dollars_fp"] = _levels(book.yes, flip=False)
        if book.no:
            msg["no_dollars_fp"] = _levels(book.no, flip=sub.use_yes_price)
        sub.seq += 1
        self._put(
            session, {"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.seq, "msg": msg}
        )

    def _send_delta(self, session: _Session, sub: _Sub, msg: dict[str, Any]) -> None:
        sub.seq += 1
        frame = json.dumps({"type": "orderbook_delta", "sid": sub.sid, "seq": sub.seq, "msg": msg})
        faults = self.faults
        if faults.gaps > 0:
            faults.gaps -= 1
            return  # the seq is spent, the frame is lost
        if faults.reorders > 0 and session.held is None:
            faults.reorders -= 1
            session.held = frame
            return
        self._put(session, frame)
        if faults.duplicates > 0:
            faults.duplicates -= 1
            self._put(session, frame)
        if session.held is not None:
            held, session.held = session.held, None
            self._put(session, held)

    def set_book(
        self,
        ticker: str,
        yes: Iterable[tuple[Decimal, Decimal]] = (),
        no: Iterable[tuple[Decimal, Decimal]] = (),
        *,
        client_order_id: str | None = None,
        ts_ms: int | None = None,
    ) -> int:
        """Replace a book (NO levels in NO-leg prices); subscribers get the difference as deltas
        (stamped ``ts_ms``, default now). Returns how many levels changed."""
        target = _Book(
            {Decimal(p): Decimal(s) for p, s in yes if Decimal(s) > 0},
            {Decimal(p): Decimal(s) for p, s in no if Decimal(s) > 0},
        )
        current = self.books.setdefault(ticker, _Book())
        changed = 0
        for side in ("yes", "no"):
            have, want = current.side(side), target.side(side)
            for price in sorted(set(have) | set(want)):
                change = want.get(price, Decimal(0)) - have.get(price, Decimal(0))
                if change:
                    changed += 1
                    self.feed_delta(
                        ticker, side, price, change, client_order_id=client_order_id, ts_ms=ts_ms
                    )
        return changed

    def feed_delta(
        self,
        ticker: str,
        side: str,
        price: Decimal,
        delta: Decimal,
        *,
        client_order_id: str | None = None,
        ts_ms: int | None = None,
    ) -> None:
        """Change one level (``price`` in NO-leg terms on the NO side) and broadcast it."""
        price, delta = Decimal(price), Decimal(delta)
        levels = self.books.setdefault(ticker, _Book()).side(side)
        size = levels.get(price, Decimal(0)) + delta
        if size > 0:
            levels[price] = size
        else:
            levels.pop(price, None)
        ts_ms = _now_ms() if ts_ms is None else ts_ms
        for session in self._sessions:
            for sub in list(session.subs.values()):
                if sub.channel != ORDERBOOK or not sub.covers(ticker) or sub.tickers is None:
                    continue
                shown = _ONE - price if side == "no" and sub.use_yes_price else price
                msg: dict[str, Any] = {
                    "market_ticker": ticker,
                    "market_id": self._market_id(ticker),
                    "price_dollars": dollars_str(shown),
                    "delta_fp": _count_str(delta),
                    "side": side,
                    "ts_ms": ts_ms,
                    "ts": ts_ms // 1000,
                }
                if client_order_id is not None:
                    msg["client_order_id"] = client_order_id
                self._send_delta(session, sub, msg)

    def book(self, ticker: str, use_yes_price: bool) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        """(yes, no) levels ascending, NO side in the given convention: what a client holds."""
        book = self.books.get(ticker, _Book())
        no = sorted(((_ONE - p if use_yes_price else p), s) for p, s in book.no.items())
        return sorted(book.yes.items()), no

    def feed_raw(
        self, channel: str, kind: str, msg: Mapping[str, Any], *, ticker: str | None = None
    ) -> None:
        """Send any message to the subscribers of ``channel`` (filtered by ``ticker``)."""
        for session in self._sessions:
            for sub in session.subs.values():
                if sub.channel == channel and sub.covers(ticker):
                    self._put(session, {"type": kind, "sid": sub.sid, "msg": dict(msg)})

    def publish(
        self,
        channel: str,
        kind: str,
        msg: Mapping[str, Any],
        *,
        ticker: str | None = None,
        duplicate: bool = False,
    ) -> int:
        """Send a message on a sequenced channel: each subscription's ``seq`` goes up by one.
        ``duplicate`` sends the frame twice (same ``seq``), as a redelivery would. Returns how
        many subscriptions got it."""
        sent = 0
        for session in self._sessions:
            for sub in session.subs.values():
                if sub.channel == channel and sub.covers(ticker):
                    sub.seq += 1
                    frame = json.dumps(
                        {"type": kind, "sid": sub.sid, "seq": sub.seq, "msg": dict(msg)}
                    )
                    self._put(session, frame)
                    if duplicate:
                        self._put(session, frame)
                    sent += 1
        return sent

    def feed_trade(
        self,
        ticker: str,
        yes_price: Decimal,
        count: Decimal,
        *,
        taker_side: str = "yes",
        trade_id: str | None = None,
        ts: datetime | None = None,
        is_block_trade: bool = False,
    ) -> dict[str, Any]:
        """Broadcast a public trade; returns its ``msg`` body."""
        yes_price = Decimal(yes_price)
        ts_ms = int((ts or datetime.now(UTC)).timestamp() * 1000)
        msg = {
            "trade_id": trade_id or str(uuid.uuid4()),
            "market_ticker": ticker,
            "yes_price_dollars": dollars_str(yes_price),
            "no_price_dollars": dollars_str(_ONE - yes_price),
            "count_fp": _count_str(Decimal(count)),
            "taker_outcome_side": taker_side,
            "taker_book_side": "bid" if taker_side == "yes" else "ask",
            "taker_side": taker_side,
            "is_block_trade": is_block_trade,
            "ts": ts_ms // 1000,
            "ts_ms": ts_ms,
        }
        self.feed_raw("trade", "trade", msg, ticker=ticker)
        return msg

    def feed_ticker(
        self,
        ticker: str,
        *,
        price: Decimal | None = None,
        volume: Decimal = Decimal(0),
        open_interest: Decimal = Decimal(0),
    ) -> dict[str, Any]:
        """Broadcast a ``ticker`` update with quotes computed from the current book."""
        book = self.books.get(ticker, _Book())
        yes_bid = max(book.yes) if book.yes else None
        no_bid = max(book.no) if book.no else None
        ts_ms = _now_ms()
        msg: dict[str, Any] = {
            "market_ticker": ticker,
            "market_id": self._market_id(ticker),
            "price_dollars": dollars_str(price) if price is not None else None,
            "yes_bid_dollars": dollars_str(yes_bid) if yes_bid is not None else "0.0000",
            "yes_ask_dollars": dollars_str(_ONE - no_bid) if no_bid is not None else "1.0000",
            "yes_bid_size_fp": _count_str(book.yes[yes_bid]) if yes_bid is not None else "0.00",
            "yes_ask_size_fp": _count_str(book.no[no_bid]) if no_bid is not None else "0.00",
            "volume_fp": _count_str(Decimal(volume)),
            "open_interest_fp": _count_str(Decimal(open_interest)),
            "ts_ms": ts_ms,
        }
        self.feed_raw("ticker", "ticker", msg, ticker=ticker)
        return msg

    # ------------------------------------------------------------------ faults

    def inject_gap(self, n: int = 1) -> None:
        self.faults.gaps += n

    def inject_duplicate(self, n: int = 1) -> None:
        self.faults.duplicates += n

    def inject_reorder(self, n: int = 1) -> None:
        self.faults.reorders += n

    def drop_after(self, n: int) -> None:
        """Abort the connection that sends the n-th frame from now."""
        self.faults.drop_after = n

    def refuse_get_snapshot(self, n: int = 1) -> None:
        self.faults.refuse_get_snapshot += n

    def send_malformed(self, raw: str = '{"type": "orderbook_delta", "sid": 1, "msg": ') -> None:
        for session in self._sessions:
            self._put(session, raw)

    def send_error(self, code: int = E_INTERNAL, channel: str = ORDERBOOK) -> list[int]:
        """Kill each connection's ``channel`` subscription with an error; returns the sids."""
        killed = []
        for session in self._sessions:
            for sub in session.subs.values():
                if sub.channel == channel and sub.alive:
                    sub.alive = code not in (10, 17, 25)
                    self._error(session, None, code, "Internal error", sid=sub.sid)
                    killed.append(sub.sid)
        return killed
