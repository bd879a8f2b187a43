"""A Kalshi-compatible REST server on 127.0.0.1, serving an in-memory dataset.

Tests and benchmarks talk to it over real HTTP, so the client's signing, pagination, retries,
rate limiting and live/historical routing are exercised exactly as against Kalshi: the same
paths under /trade-api/v2, the same 2026 wire shapes (``*_dollars`` / ``*_fp`` strings, flat
historical candles), opaque cursors, RSA-PSS signature checks on portfolio endpoints, a
server-side token bucket that answers ``429 {"error": "too many requests"}`` with no
Retry-After, and V2 orders with client_order_id idempotency. Faults (429/5xx bursts, slow
responses, malformed JSON, a repeated cursor) can be injected at run time from any thread.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from cryptography.hazmat.primitives.asymmetric import rsa
from psycopg.rows import dict_row

from kwx.sources.kalshi_auth import KEY_HEADER, TIMESTAMP_HEADER, verify_signature
from kwx.sources.kalshi_models import (
    HistoricalCutoff,
    PriceRange,
    ShapeError,
    dollars_str,
    parse_price_ranges,
    parse_time,
)
from kwx.sources.ratelimit import TokenBucket

__all__ = ["BASE_PATH", "KalshiDataset", "KalshiRestServer", "ServerStats"]

log = logging.getLogger(__name__)

BASE_PATH = "/trade-api/v2"
TOO_MANY_REQUESTS = {"error": "too many requests"}
LINEAR_CENT = [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]
# Kalshi's `status` query filter names versus the statuses markets carry.
STATUS_FILTER = {
    "unopened": {"initialized"},
    "open": {"active"},
    "paused": {"inactive"},
    "closed": {"closed", "determined", "disputed", "amended"},
    "settled": {"finalized"},
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE = Decimal(1)
_CENT = Decimal("0.01")

Json = dict[str, Any]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fp(value: Decimal | int | float | None) -> str:
    return dollars_str(Decimal(str(value if value is not None else 0)), 2)


def _dollars(value: Decimal | int | float | None) -> str | None:
    return None if value is None else dollars_str(Decimal(str(value)), 4)


def _ts(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value).timestamp()
    except ShapeError:
        return None


def select_fills(fills: Iterable[Json], request: _Request) -> list[Json]:
    """The fills a GET /portfolio/fills query asks for: ticker (repeatable), order_id and the
    min_ts/max_ts window, in the order given."""
    tickers = set(request.args("ticker"))
    order_id = request.arg("order_id")
    lo, hi = request.int_arg("min_ts"), request.int_arg("max_ts")
    out = []
    for f in fills:
        created = _ts(f.get("created_time")) or 0
        if tickers and f.get("ticker") not in tickers:
            continue
        if order_id and f.get("order_id") != order_id:
            continue
        if (lo is not None and created < lo) or (hi is not None and created > hi):
            continue
        out.append(f)
    return out


def select_orders(
    orders: Iterable[Json], request: _Request, event_of: Callable[[str], object]
) -> list[Json]:
    """The orders a GET /portfolio/orders query asks for: ticker, event_ticker (repeatable,
    matched through ``event_of(ticker)``), status and the min_ts/max_ts window, in the order
    given."""
    ticker, status = request.arg("ticker"), request.arg("status")
    events = set(request.args("event_ticker"))
    lo, hi = request.int_arg("min_ts"), request.int_arg("max_ts")
    out = []
    for order in orders:
        created = _ts(order["created_time"]) or 0
        if ticker and order["ticker"] != ticker:
            continue
        if events and event_of(str(order["ticker"])) not in events:
            continue
        if status and order["status"] != status:
            continue
        if (lo is not None and created < lo) or (hi is not None and created > hi):
            continue
        out.append(order)
    return out


# ----------------------------------------------------------------------------- dataset


@dataclass
class KalshiDataset:
    """What the server knows, in wire shape: markets/events/series keyed by ticker, trades
    (any order), 1-minute candles per ticker in the live shape, order books as
    `orderbook_fp` objects, and the account's positions, fills and cash."""

    series: dict[str, Json] = field(default_factory=dict)
    events: dict[str, Json] = field(default_factory=dict)
    markets: dict[str, Json] = field(default_factory=dict)
    trades: list[Json] = field(default_factory=list)
    candles: dict[str, list[Json]] = field(default_factory=dict)
    orderbooks: dict[str, Json] = field(default_factory=dict)
    positions: list[Json] = field(default_factory=list)
    fills: list[Json] = field(default_factory=list)
    balance_cents: int = 100_000

    @classmethod
    def from_store(
        cls,
        conn: psycopg.Connection[Any],
        series: str | Sequence[str],
        date_from: date,
        date_to: date,
    ) -> KalshiDataset:
        """Real recorded data for a benchmark: markets of `series` whose climate date is in
        [date_from, date_to], with their trades and (non-synthetic) 1-minute candles."""
        names = [series] if isinstance(series, str) else list(series)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM kalshi.markets WHERE series_ticker = ANY(%s) "
                "AND climate_date BETWEEN %s AND %s ORDER BY ticker",
                [names, date_from, date_to],
            )
            market_rows = cur.fetchall()
            tickers = [str(r["ticker"]) for r in market_rows]
            cur.execute(
                "SELECT * FROM md.candles_1m WHERE ticker = ANY(%s) AND NOT is_synthetic "
                "ORDER BY ticker, ts",
                [tickers],
            )
            candle_rows = cur.fetchall()
            cur.execute(
                "SELECT * FROM md.trades WHERE ticker = ANY(%s) ORDER BY ticker, created_time",
                [tickers],
            )
            trade_rows = cur.fetchall()
            cur.execute("SELECT * FROM kalshi.series WHERE series_ticker = ANY(%s)", [names])
            series_rows = cur.fetchall()
            cur.execute(
                "SELECT * FROM kalshi.events WHERE event_ticker = ANY(%s)",
                [sorted({str(r["event_ticker"]) for r in market_rows})],
            )
            event_rows = cur.fetchall()

        data = cls()
        for r in candle_rows:
            data.candles.setdefault(str(r["ticker"]), []).append(_candle_from_row(r))
        for r in market_rows:
            candles = data.candles.get(str(r["ticker"]))
            data.markets[str(r["ticker"])] = _market_from_row(r, candles[-1] if candles else None)
        data.trades = [
            {
                "trade_id": str(r["trade_id"]),
                "ticker": r["ticker"],
                "count_fp": _fp(r["count_fp"]),
                "yes_price_dollars": _dollars(r["yes_price"]),
                "no_price_dollars": _dollars(r["no_price"]),
                "taker_outcome_side": r["taker_side"],
                "taker_book_side": {"yes": "bid", "no": "ask"}.get(str(r["taker_side"])),
                "is_block_trade": bool(r["is_block_trade"]),
                "created_time": _iso(r["created_time"]),
            }
            for r in trade_rows
        ]
        for r in series_rows:
            raw: Json = r["raw"] if isinstance(r.get("raw"), dict) else {}
            data.series[str(r["series_ticker"])] = {
                **raw,
                "ticker": r["series_ticker"],
                "title": r["title"] or raw.get("title") or r["series_ticker"],
                "category": r["category"] or raw.get("category") or "Climate and Weather",
                "frequency": r["frequency"] or raw.get("frequency") or "daily",
                "fee_type": r["fee_type"] or raw.get("fee_type") or "quadratic",
                "fee_multiplier": float(r["fee_multiplier"] or 1),
            }
        for r in event_rows:
            event_raw: Json = r["raw"] if isinstance(r.get("raw"), dict) else {}
            data.events[str(r["event_ticker"])] = {
                **event_raw,
                "event_ticker": r["event_ticker"],
                "series_ticker": r["series_ticker"],
                "title": r["title"] or event_raw.get("title") or r["event_ticker"],
                "mutually_exclusive": bool(
                    r["mutually_exclusive"] if r["mutually_exclusive"] is not None else True
                ),
                "collateral_return_type": event_raw.get("collateral_return_type", "MECNET"),
                "strike_date": _iso(
                    datetime.combine(r["climate_date"], datetime.min.time(), tzinfo=UTC)
                ),
            }
        for r in market_rows:  # events the store lacks: rebuild them from their markets
            event = str(r["event_ticker"])
            if event not in data.events:
                data.events[event] = {
                    "event_ticker": event,
                    "series_ticker": r["series_ticker"],
                    "title": event,
                    "mutually_exclusive": True,
                    "collateral_return_type": "MECNET",
                }
            if str(r["series_ticker"]) not in data.series:
                data.series[str(r["series_ticker"])] = {
                    "ticker": r["series_ticker"],
                    "title": r["series_ticker"],
                    "category": "Climate and Weather",
                    "frequency": "daily",
                    "fee_type": "quadratic",
                    "fee_multiplier": 1,
                }
        return data


def _candle_from_row(r: Mapping[str, Any]) -> Json:
    def block(prefix: str) -> Json:
        return {f"{part}_dollars": _dollars(r[f"{prefix}_{part}"]) for part in _OHLC}

    price = block("price") if r["has_trade"] else dict.fromkeys(_PRICE_KEYS)
    if r["has_trade"]:
        price["mean_dollars"] = _dollars(r["vwap"])
    return {
        "end_period_ts": int(r["ts"].timestamp()) + 60,
        "yes_bid": block("yes_bid"),
        "yes_ask": block("yes_ask"),
        "price": price,
        "volume_fp": _fp(r["volume"]),
        "open_interest_fp": _fp(r["open_interest"]) if r["open_interest"] is not None else None,
    }


def _strike(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _market_from_row(r: Mapping[str, Any], last_candle: Json | None) -> Json:
    result = r["result"] or ""
    settled = result in ("yes", "no") or r["status"] in ("finalized", "settled")
    status = "finalized" if settled else (r["status"] or "active")
    bid, ask = "0.0000", "1.0000"
    if last_candle is not None and not settled:
        bid = last_candle["yes_bid"].get("close_dollars") or bid
        ask = last_candle["yes_ask"].get("close_dollars") or ask
    close_time: datetime | None = r["close_time"]
    expiration: datetime | None = r["expiration_time"]
    market: Json = {
        "ticker": r["ticker"],
        "event_ticker": r["event_ticker"],
        "market_type": "binary",
        "status": status,
        "strike_type": r["strike_type"],
        "floor_strike": _strike(r["floor_strike"]),
        "cap_strike": _strike(r["cap_strike"]),
        "yes_sub_title": r["yes_sub_title"],
        "no_sub_title": r["yes_sub_title"],
        "open_time": _iso(r["open_time"]) if r["open_time"] else None,
        "close_time": _iso(close_time) if close_time else None,
        "expiration_time": _iso(expiration) if expiration else None,
        "latest_expiration_time": _iso(expiration) if expiration else None,
        "result": result,
        "expiration_value": r["expiration_value"] or "",
        "yes_bid_dollars": bid,
        "yes_ask_dollars": ask,
        "no_bid_dollars": dollars_str(_ONE - Decimal(ask)),
        "no_ask_dollars": dollars_str(_ONE - Decimal(bid)),
        "last_price_dollars": _dollars(r["last_price"]) or "0.0000",
        "volume_fp": _fp(r["volume"]),
        "open_interest_fp": _fp(r["open_interest"]),
        "notional_value_dollars": "1.0000",
        "settlement_timer_seconds": 3600,
        "rules_primary": r["rules_primary"] or "",
        "price_level_structure": "linear_cent",
        "price_ranges": LINEAR_CENT,
    }
    if settled:
        settled_at = expiration or (close_time + timedelta(hours=7) if close_time else None)
        if settled_at is not None:
            market["settlement_ts"] = _iso(settled_at)
        if result in ("yes", "no"):
            market["settlement_value_dollars"] = "1.0000" if result == "yes" else "0.0000"
    return {k: v for k, v in market.items() if v is not None}


_OHLC = ("open", "high", "low", "close")
_PRICE_KEYS = tuple(f"{p}_dollars" for p in (*_OHLC, "mean"))


# ----------------------------------------------------------------------------- faults


FaultKind = Literal["status", "delay", "malformed", "repeat_cursor"]


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    status: int = 0
    seconds: float = 0.0
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path in path
        )


@dataclass
class ServerStats:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)  # "GET /markets" (no query)
    throttled: int = 0  # 429s from the token bucket (injected ones are not counted here)
    injected: int = 0

    @property
    def sent_429(self) -> int:
        return self.statuses[429]


class _HttpError(Exception):
    def __init__(self, status: int, body: Json) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _bad(message: str, code: str = "invalid_parameters") -> _HttpError:
    return _HttpError(400, {"code": code, "message": message, "details": ""})


def _not_found(what: str) -> _HttpError:
    return _HttpError(404, {"error": {"code": "not_found", "message": f"{what} not found"}})


@dataclass
class _Request:
    method: str
    path: str  # after BASE_PATH
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    match: re.Match[str]
    repeat_cursor: bool = False

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def args(self, name: str) -> list[str]:
        """A list parameter, either comma-joined or repeated."""
        out: list[str] = []
        for value in self.query.get(name, []):
            out.extend(v for v in value.split(",") if v)
        return out

    def int_arg(self, name: str) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise _bad(f"{name} must be an integer") from None

    def bool_arg(self, name: str) -> bool:
        return (self.arg(name) or "").lower() == "true"

    def json(self) -> Json:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise _bad("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _bad("request body must be a JSON object")
        return data


Handler = Callable[[_Request], tuple[int, Json]]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool = False
    write: bool = False
    per_item: str | None = None  # list parameter whose length multiplies the cost


# ----------------------------------------------------------------------------- server


class KalshiRestServer:
    """Context manager: ``with KalshiRestServer(dataset) as server: server.url``."""

    def __init__(
        self,
        dataset: KalshiDataset | None = None,
        *,
        cutoff: HistoricalCutoff | None = None,
        public_key: rsa.RSAPublicKey | None = None,
        key_id: str | None = None,
        read_rate: float = 200.0,
        read_capacity: float = 400.0,
        write_rate: float = 100.0,
        write_capacity: float = 100.0,
        cost: int = 10,
        usage_tier: str = "basic",
        rate_limit: bool = True,
        max_clock_skew_s: float = 60.0,
        trade_overlap_s: float = 0.0,
        port: int = 0,
    ) -> None:
        """`trade_overlap_s` serves trades that recently moved to the historical tier from
        the live one too, as Kalshi may while it migrates them (clients must de-duplicate)."""
        self.dataset = dataset or KalshiDataset()
        self.cutoff = cutoff or HistoricalCutoff(_EPOCH, _EPOCH, _EPOCH)
        self.public_key = public_key
        self.key_id = key_id
        self.cost = cost
        self.usage_tier = usage_tier
        self.rate_limit = rate_limit
        self.max_clock_skew_s = max_clock_skew_s
        self.trade_overlap_s = trade_overlap_s
        self.stats = ServerStats()
        self._port = port
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._orders: dict[str, Json] = {}
        self._orders_by_client_id: dict[str, str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_limits(read_rate, read_capacity, write_rate, write_capacity)
        self._routes = self._build_routes()
        self.reindex()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{BASE_PATH}"

    def start(self) -> KalshiRestServer:
        app = self

        class Handler(_RequestHandler):
            server_app = app

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kalshi-rest-sim",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KalshiRestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ knobs

    def set_limits(
        self, read_rate: float, read_capacity: float, write_rate: float, write_capacity: float
    ) -> None:
        """Resize the server's buckets (they start full), as a tier change would."""
        with self._lock:
            self.read_bucket = TokenBucket(read_rate, read_capacity)
            self.write_bucket = TokenBucket(write_rate, write_capacity)

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(
        self, n: int, status: int = 429, *, path: str | None = None, method: str | None = None
    ) -> None:
        """The next `n` matching requests get `status` (429 or 5xx) without being processed."""
        self._add_fault(_Fault("status", n, status=status, path=path, method=method))

    def delay_next(
        self,
        seconds: float,
        n: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next `n` matching requests are processed, then answered `seconds` late: past a
        client timeout the work is done but the client never hears of it."""
        self._add_fault(_Fault("delay", n, seconds=seconds, path=path, method=method))

    def malformed_next(self, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` matching requests get a 200 with truncated JSON."""
        self._add_fault(_Fault("malformed", n, path=path))

    def repeat_cursor_next(self, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` paged requests that carry a cursor get that same cursor back."""
        self._add_fault(_Fault("repeat_cursor", n, path=path))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_faults(self, method: str, path: str, has_cursor: bool) -> dict[FaultKind, _Fault]:
        taken: dict[FaultKind, _Fault] = {}
        with self._lock:
            for fault in self._faults:
                if fault.remaining <= 0 or fault.kind in taken:
                    continue
                if fault.kind == "repeat_cursor" and not has_cursor:
                    continue
                if fault.matches(method, path):
                    fault.remaining -= 1
                    taken[fault.kind] = fault
            self._faults = [f for f in self._faults if f.remaining > 0]
        return taken

    @property
    def orders(self) -> list[Json]:
        with self._lock:
            return [dict(o) for o in self._orders.values()]

    # ------------------------------------------------------------------ indexes

    def reindex(self) -> None:
        """Recompute the lookup tables after the dataset was changed in place."""
        with self._lock:
            cut_market = self.cutoff.market_settled_ts.timestamp()
            cut_trade = self.cutoff.trades_created_ts.timestamp()
            self._historical: set[str] = set()
            self._close_ts: dict[str, float | None] = {}
            self._series_of: dict[str, str] = {}
            for ticker, market in self.dataset.markets.items():
                settled = _ts(market.get("settlement_ts"))
                if settled is None and market.get("status") == "finalized":
                    settled = _ts(market.get("close_time"))
                if settled is not None and settled < cut_market:
                    self._historical.add(ticker)
                self._close_ts[ticker] = _ts(market.get("close_time"))
                event = self.dataset.events.get(str(market.get("event_ticker")))
                self._series_of[ticker] = str(
                    (event or {}).get("series_ticker")
                    or market.get("series_ticker")
                    or ticker.split("-", 1)[0]
                )
            self._sorted_markets = sorted(self.dataset.markets)
            self._event_tickers: dict[str, list[str]] = {}
            for ticker in self._sorted_markets:
                event_ticker = str(self.dataset.markets[ticker].get("event_ticker"))
                self._event_tickers.setdefault(event_ticker, []).append(ticker)
            keyed = sorted(
                (
                    (_ts(t.get("created_time")) or 0.0, str(t.get("trade_id")), t)
                    for t in self.dataset.trades
                ),
                key=lambda k: (k[0], k[1]),
            )
            self._trades: dict[bool, list[tuple[float, str, Json]]] = {
                True: [k for k in keyed if k[0] < cut_trade],
                False: [k for k in keyed if k[0] >= cut_trade - self.trade_overlap_s],
            }
            self._trades_by_ticker: dict[tuple[bool, str], list[tuple[float, str, Json]]] = {}
            for historical, rows in self._trades.items():
                for row in rows:
                    key = (historical, str(row[2].get("ticker")))
                    self._trades_by_ticker.setdefault(key, []).append(row)
            self._candles_by_ticker = {
                t: sorted(cs, key=lambda c: int(c["end_period_ts"]))
                for t, cs in self.dataset.candles.items()
            }

    # ------------------------------------------------------------------ request pipeline

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, float]:
        """(status, body, seconds to wait before answering) for one HTTP request."""
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        with self._lock:
            self.stats.requests += 1
            self.stats.paths[f"{method} {path.removeprefix(BASE_PATH)}"] += 1
        status, payload, delay = self._answer(method, path, query, headers, body)
        with self._lock:
            self.stats.statuses[status] += 1
        return status, payload, delay

    def _answer(
        self,
        method: str,
        full_path: str,
        query: dict[str, list[str]],
        headers: Any,
        body: bytes,
    ) -> tuple[int, bytes, float]:
        faults = self._take_faults(method, full_path, bool(query.get("cursor")))
        delay = faults["delay"].seconds if "delay" in faults else 0.0
        if "status" in faults:
            with self._lock:
                self.stats.injected += 1
            status = faults["status"].status
            err: Json = (
                TOO_MANY_REQUESTS
                if status == 429
                else {"code": "internal_server_error", "message": "injected failure"}
            )
            return status, json.dumps(err).encode(), delay
        if "malformed" in faults:
            with self._lock:
                self.stats.injected += 1
            return 200, b'{"markets": [{"ticker": "KXHIGHNY-26JUL', delay
        if not full_path.startswith(BASE_PATH + "/"):
            return 404, json.dumps({"error": {"code": "not_found"}}).encode(), delay
        path = full_path[len(BASE_PATH) :]
        route, match = self._route(method, path)
        if route is None or match is None:
            return 404, json.dumps({"error": {"code": "not_found"}}).encode(), delay
        request = _Request(method, path, query, headers, body, match, "repeat_cursor" in faults)
        try:
            self._authenticate(route, method, full_path, headers)
            self._charge(route, request)
            status, payload = route.handler(request)
        except _HttpError as exc:
            status, payload = exc.status, exc.body
        return status, json.dumps(payload).encode(), delay

    def _route(self, method: str, path: str) -> tuple[_Route | None, re.Match[str] | None]:
        for route in self._routes:
            if route.method != method:
                continue
            match = route.pattern.fullmatch(path)
            if match is not None:
                return route, match
        return None, None

    def _authenticate(self, route: _Route, method: str, full_path: str, headers: Any) -> None:
        """Signed requests are verified everywhere; unsigned ones only reach public data."""
        signed = bool(headers.get(KEY_HEADER) or headers.get(TIMESTAMP_HEADER))
        if not signed:
            if route.auth:
                raise _HttpError(
                    401, {"code": "authentication_error", "message": "missing API key headers"}
                )
            return
        if self.public_key is None:
            raise _HttpError(401, {"code": "authentication_error", "message": "unknown API key"})
        if self.key_id is not None and headers.get(KEY_HEADER) != self.key_id:
            raise _HttpError(401, {"code": "authentication_error", "message": "unknown API key"})
        try:
            stamp = int(headers.get(TIMESTAMP_HEADER) or "")
        except ValueError:
            stamp = 0
        if abs(time.time() * 1000 - stamp) > self.max_clock_skew_s * 1000:
            raise _HttpError(
                401, {"code": "authentication_error", "message": "timestamp out of range"}
            )
        if not verify_signature(self.public_key, headers, method, full_path):
            raise _HttpError(401, {"code": "authentication_error", "message": "invalid signature"})

    def _charge(self, route: _Route, request: _Request) -> None:
        """Kalshi's token bucket: refuse (never queue) a request the bucket cannot cover."""
        if not self.rate_limit:
            return
        cost = float(self.cost)
        if route.per_item is not None:
            cost *= max(1, len(request.args(route.per_item)))
        with self._lock:
            bucket = self.write_bucket if route.write else self.read_bucket
            if cost <= bucket.capacity and bucket.tokens >= cost:
                bucket.acquire(cost)  # covered: returns at once
                return
            self.stats.throttled += 1
        raise _HttpError(429, TOO_MANY_REQUESTS)

    # ------------------------------------------------------------------ routes

    def _build_routes(self) -> list[_Route]:
        t = r"(?P<ticker>[^/]+)"
        spec: list[tuple[str, str, Handler, dict[str, Any]]] = [
            ("GET", r"/series", self._series_list, {}),
            ("GET", r"/series/(?P<series>[^/]+)", self._series_one, {}),
            ("GET", rf"/series/(?P<series>[^/]+)/markets/{t}/candlesticks", self._candles, {}),
            ("GET", r"/events", self._events_list, {}),
            ("GET", r"/events/(?P<event>[^/]+)", self._event_one, {}),
            ("GET", r"/markets", self._markets_list, {}),
            ("GET", r"/markets/trades", self._trades_list, {}),
            ("GET", r"/markets/candlesticks", self._candles_batch, {"per_item": "market_tickers"}),
            ("GET", r"/markets/orderbooks", self._orderbooks, {"per_item": "tickers"}),
            ("GET", rf"/markets/{t}", self._market_one, {}),
            ("GET", rf"/markets/{t}/orderbook", self._orderbook, {}),
            ("GET", r"/historical/cutoff", self._cutoff, {}),
            ("GET", r"/historical/markets", self._markets_list, {}),
            ("GET", rf"/historical/markets/{t}", self._market_one, {}),
            ("GET", rf"/historical/markets/{t}/candlesticks", self._candles, {}),
            ("GET", r"/historical/trades", self._trades_list, {}),
            ("GET", r"/exchange/status", self._exchange_status, {}),
            ("GET", r"/exchange/schedule", self._exchange_schedule, {}),
            ("GET", r"/account/limits", self._limits, {"auth": True}),
            ("GET", r"/portfolio/balance", self._balance, {"auth": True}),
            ("GET", r"/portfolio/positions", self._positions, {"auth": True}),
            ("GET", r"/portfolio/fills", self._fills, {"auth": True}),
            ("GET", r"/portfolio/orders", self._orders_list, {"auth": True}),
            ("GET", r"/portfolio/orders/(?P<order>[^/]+)", self._order_one, {"auth": True}),
            ("POST", r"/portfolio/events/orders", self._create, {"auth": True, "write": True}),
            (
                "DELETE",
                r"/portfolio/events/orders",
                self._cancel_all,
                {"auth": True, "write": True},
            ),
            (
                "DELETE",
                r"/portfolio/events/orders/(?P<order>[^/]+)",
                self._cancel,
                {"auth": True, "write": True},
            ),
            (
                "POST",
                r"/portfolio/events/orders/(?P<order>[^/]+)/amend",
                self._amend,
                {"auth": True, "write": True},
            ),
            (
                "POST",
                r"/portfolio/events/orders/(?P<order>[^/]+)/decrease",
                self._decrease,
                {"auth": True, "write": True},
            ),
            ("POST", r"/portfolio/orders", self._legacy_order, {"auth": True, "write": True}),
            (
                "DELETE",
                r"/portfolio/orders/(?P<order>[^/]+)",
                self._legacy_order,
                {"auth": True, "write": True},
            ),
        ]
        return [_Route(m, re.compile(p), h, **kw) for m, p, h, kw in spec]

    # ------------------------------------------------------------------ pagination

    def _page(
        self, request: _Request, key: str, items: Sequence[Any], max_limit: int = 1000
    ) -> Json:
        """Offset paging behind an opaque cursor; `limit` is clamped to the endpoint's max."""
        limit = request.int_arg("limit") or 100
        limit = max(1, min(limit, max_limit))
        cursor = request.arg("cursor") or ""
        offset = 0
        if cursor:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
                offset = int(decoded["o"])
                if decoded["k"] != key:
                    raise ValueError(key)
            except (ValueError, KeyError, TypeError):
                raise _bad("invalid cursor") from None
        end = offset + limit
        nxt = ""
        if end < len(items):
            nxt = base64.urlsafe_b64encode(
                json.dumps({"k": key, "o": end, "n": uuid.uuid4().hex[:8]}).encode()
            ).decode()
        if request.repeat_cursor and cursor:
            nxt = cursor
        return {key: list(items[offset:end]), "cursor": nxt}

    # ------------------------------------------------------------------ market data

    def _is_historical_path(self, request: _Request) -> bool:
        return request.path.startswith("/historical/")

    def _series_list(self, request: _Request) -> tuple[int, Json]:
        category = request.arg("category")
        items = [
            s
            for _, s in sorted(self.dataset.series.items())
            if category is None or s.get("category") == category
        ]
        return 200, {"series": items}

    def _series_one(self, request: _Request) -> tuple[int, Json]:
        series = self.dataset.series.get(request.match["series"])
        if series is None:
            raise _not_found("series")
        return 200, {"series": series}

    def _markets_list(self, request: _Request) -> tuple[int, Json]:
        historical = self._is_historical_path(request)
        series = request.arg("series_ticker")
        event = request.arg("event_ticker")
        tickers = set(request.args("tickers"))
        statuses: set[str] | None = None
        if not historical and request.arg("status"):
            statuses = set()
            for name in request.args("status"):
                if name not in STATUS_FILTER:
                    raise _bad(f"unknown status filter {name!r}")
                statuses |= STATUS_FILTER[name]
        lo = None if historical else request.int_arg("min_close_ts")
        hi = None if historical else request.int_arg("max_close_ts")
        out = []
        for ticker in self._sorted_markets:
            if (ticker in self._historical) != historical:
                continue
            market = self.dataset.markets[ticker]
            if series and self._series_of[ticker] != series:
                continue
            if event and market.get("event_ticker") != event:
                continue
            if tickers and ticker not in tickers:
                continue
            if statuses is not None and market.get("status") not in statuses:
                continue
            close = self._close_ts[ticker]
            if lo is not None and (close is None or close < lo):
                continue
            if hi is not None and (close is None or close > hi):
                continue
            out.append(market)
        return 200, self._page(request, "markets", out)

    def _market_one(self, request: _Request) -> tuple[int, Json]:
        ticker = request.match["ticker"]
        market = self.dataset.markets.get(ticker)
        if market is None or (ticker in self._historical) != self._is_historical_path(request):
            raise _not_found("market")
        return 200, {"market": market}

    def _event_markets(self, event_ticker: str) -> list[Json]:
        return [
            self.dataset.markets[t]
            for t in self._event_tickers.get(event_ticker, [])
            if t not in self._historical
        ]

    def _events_list(self, request: _Request) -> tuple[int, Json]:
        series = request.arg("series_ticker")
        nested = request.bool_arg("with_nested_markets")
        statuses: set[str] | None = None
        if request.arg("status"):
            statuses = set()
            for name in request.args("status"):
                statuses |= STATUS_FILTER.get(name, set())
        lo = request.int_arg("min_close_ts")
        out = []
        for ticker, event in sorted(self.dataset.events.items()):
            if series and event.get("series_ticker") != series:
                continue
            every = [self.dataset.markets[t] for t in self._event_tickers.get(ticker, [])]
            if statuses is not None and not any(m.get("status") in statuses for m in every):
                continue
            if lo is not None and not any((_ts(m.get("close_time")) or 0) >= lo for m in every):
                continue
            item = dict(event)
            if nested:
                item["markets"] = self._event_markets(ticker)
            out.append(item)
        return 200, self._page(request, "events", out, max_limit=200)

    def _event_one(self, request: _Request) -> tuple[int, Json]:
        ticker = request.match["event"]
        event = self.dataset.events.get(ticker)
        if event is None:
            raise _not_found("event")
        item = dict(event)
        markets = self._event_markets(ticker)
        if request.bool_arg("with_nested_markets"):
            item["markets"] = markets
        return 200, {"event": item, "markets": markets}

    def _trades_list(self, request: _Request) -> tuple[int, Json]:
        historical = self._is_historical_path(request)
        ticker = request.arg("ticker")
        rows = (
            self._trades_by_ticker.get((historical, ticker), [])
            if ticker
            else self._trades[historical]
        )
        lo, hi = request.int_arg("min_ts"), request.int_arg("max_ts")
        start = 0 if lo is None else bisect.bisect_left(rows, (float(lo),))
        end = len(rows) if hi is None else bisect.bisect_left(rows, (float(hi) + 1,))
        block = request.arg("is_block_trade")
        selected = rows[start:end]
        if block is not None:
            want = block.lower() == "true"
            selected = [r for r in selected if bool(r[2].get("is_block_trade")) == want]
        newest_first = [r[2] for r in reversed(selected)]
        return 200, self._page(request, "trades", newest_first)

    def _candles_for(self, request: _Request, ticker: str, historical: bool) -> list[Json]:
        lo, hi = request.int_arg("start_ts"), request.int_arg("end_ts")
        if lo is None or hi is None:
            raise _bad("start_ts and end_ts are required")
        period = request.int_arg("period_interval") or 1
        if period not in (1, 60, 1440):
            raise _bad("period_interval must be 1, 60 or 1440")
        candles = self._candles_by_ticker.get(ticker, [])
        if period != 1:
            candles = _aggregate(candles, period)
        chosen = [c for c in candles if lo <= int(c["end_period_ts"]) <= hi]
        return [_historical_candle(c) for c in chosen] if historical else chosen

    def _candles(self, request: _Request) -> tuple[int, Json]:
        ticker = request.match["ticker"]
        historical = self._is_historical_path(request)
        if ticker not in self.dataset.markets or (ticker in self._historical) != historical:
            raise _not_found("market")
        return 200, {
            "ticker": ticker,
            "candlesticks": self._candles_for(request, ticker, historical),
        }

    def _candles_batch(self, request: _Request) -> tuple[int, Json]:
        tickers = request.args("market_tickers")
        if not tickers:
            raise _bad("market_tickers is required")
        if len(tickers) > 100:
            raise _bad("at most 100 market_tickers")
        out = [
            {"market_ticker": t, "candlesticks": self._candles_for(request, t, False)}
            for t in tickers
            if t in self.dataset.markets and t not in self._historical
        ]
        return 200, {"markets": out}

    def _orderbook_of(self, ticker: str) -> Json:
        return self.dataset.orderbooks.get(ticker) or {}

    def _orderbook(self, request: _Request) -> tuple[int, Json]:
        ticker = request.match["ticker"]
        if ticker not in self.dataset.markets:
            raise _not_found("market")
        book = dict(self._orderbook_of(ticker))
        depth = request.int_arg("depth") or 0
        if depth > 0:
            for side in ("yes_dollars", "no_dollars"):
                if side in book:
                    book[side] = book[side][-depth:]
        return 200, {"orderbook_fp": book}

    def _orderbooks(self, request: _Request) -> tuple[int, Json]:
        return 200, {
            "orderbooks": [
                {"ticker": t, "orderbook_fp": self._orderbook_of(t)}
                for t in request.args("tickers")
                if t in self.dataset.markets
            ]
        }

    def _cutoff(self, request: _Request) -> tuple[int, Json]:
        c = self.cutoff
        return 200, {
            "market_settled_ts": _iso(c.market_settled_ts),
            "trades_created_ts": _iso(c.trades_created_ts),
            "orders_updated_ts": _iso(c.orders_updated_ts),
            "market_positions_last_updated_ts": _iso(c.orders_updated_ts),
        }

    def _exchange_status(self, request: _Request) -> tuple[int, Json]:
        return 200, {
            "exchange_active": True,
            "trading_active": True,
            "exchange_estimated_resume_time": None,
        }

    def _exchange_schedule(self, request: _Request) -> tuple[int, Json]:
        day = {"open_time": "00:00", "close_time": "23:59"}
        week = {
            name: [day]
            for name in (
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            )
        }
        return 200, {"schedule": {"standard_hours": [week], "maintenance_windows": []}}

    # ------------------------------------------------------------------ account

    def _limits(self, request: _Request) -> tuple[int, Json]:
        with self._lock:
            read, write = self.read_bucket, self.write_bucket
        return 200, {
            "usage_tier": self.usage_tier,
            "read": {"refill_rate": read.rate, "bucket_capacity": read.capacity},
            "write": {"refill_rate": write.rate, "bucket_capacity": write.capacity},
            "grants": [{"exchange_instance": "event_contract", "level": self.usage_tier}],
        }

    def _balance(self, request: _Request) -> tuple[int, Json]:
        cents = self.dataset.balance_cents
        return 200, {
            "balance": cents,
            "balance_dollars": dollars_str(Decimal(cents) / 100),
            "portfolio_value": 0,
            "updated_ts": int(time.time()),
        }

    def _positions(self, request: _Request) -> tuple[int, Json]:
        ticker, event = request.arg("ticker"), request.arg("event_ticker")
        items = [
            p
            for p in self.dataset.positions
            if (ticker is None or p.get("ticker") == ticker)
            and (event is None or str(p.get("ticker", "")).startswith(event + "-"))
        ]
        page = self._page(request, "market_positions", items)
        page["event_positions"] = []
        return 200, page

    def _fills(self, request: _Request) -> tuple[int, Json]:
        return 200, self._page(request, "fills", select_fills(self.dataset.fills, request))

    # ------------------------------------------------------------------ orders

    def _orders_list(self, request: _Request) -> tuple[int, Json]:
        with self._lock:
            orders = [dict(o) for o in self._orders.values()]
        items = select_orders(
            sorted(orders, key=lambda o: str(o["created_time"]), reverse=True),
            request,
            lambda ticker: self.dataset.markets.get(ticker, {}).get("event_ticker"),
        )
        return 200, self._page(request, "orders", items)

    def _order(self, order_id: str) -> Json:
        order = self._orders.get(order_id)
        if order is None:
            raise _not_found("order")
        return order

    def _order_one(self, request: _Request) -> tuple[int, Json]:
        with self._lock:
            return 200, {"order": dict(self._order(request.match["order"]))}

    @staticmethod
    def _ack(order: Json) -> Json:
        return {
            "order_id": order["order_id"],
            "client_order_id": order["client_order_id"],
            "fill_count": order["fill_count_fp"],
            "remaining_count": order["remaining_count_fp"],
            "ts_ms": int(time.time() * 1000),
        }

    def _price_ranges(self, ticker: str) -> tuple[PriceRange, ...]:
        raw = self.dataset.markets[ticker].get("price_ranges") or LINEAR_CENT
        try:
            return parse_price_ranges(raw)
        except ShapeError:
            return parse_price_ranges(LINEAR_CENT)

    def _validated_price(self, ticker: str, raw: object) -> Decimal:
        price = _decimal(raw, "price")
        exponent = price.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -4:
            raise _bad("price accepts at most 4 decimals")
        if not Decimal(0) < price < _ONE:
            raise _bad("price must be between 0 and 1")
        if not any(r.admits(price) for r in self._price_ranges(ticker)):
            raise _bad(f"price {raw} is not a valid tick", code="invalid_price")
        return price

    def _create(self, request: _Request) -> tuple[int, Json]:
        body = request.json()
        for name in ("ticker", "side", "count", "price", "time_in_force"):
            if name not in body:
                raise _bad(f"{name} is required")
        if body.get("self_trade_prevention_type") not in ("taker_at_cross", "maker"):
            raise _bad("self_trade_prevention_type is required")
        ticker = str(body["ticker"])
        market = self.dataset.markets.get(ticker)
        if market is None or ticker in self._historical:
            raise _not_found("market")
        if market.get("status") != "active":
            raise _bad("market is not active", code="MARKET_INACTIVE")
        if body["side"] not in ("bid", "ask"):
            raise _bad("side must be bid or ask")
        tif = body["time_in_force"]
        if tif not in ("good_till_canceled", "immediate_or_cancel", "fill_or_kill"):
            raise _bad("invalid time_in_force")
        price = self._validated_price(ticker, body["price"])
        count = _decimal(body["count"], "count")
        if count < _CENT or count != count.quantize(_CENT):
            raise _bad("count must be at least 0.01 in steps of 0.01")
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        with self._lock:
            existing = self._orders_by_client_id.get(client_id)
            if existing is not None:  # idempotency: the same key names the same order
                return 201, self._ack(self._orders[existing])
            now = datetime.now(UTC)
            resting = tif == "good_till_canceled"
            order = {
                "order_id": str(uuid.uuid4()),
                "user_id": "sim-user",
                "client_order_id": client_id,
                "ticker": ticker,
                "outcome_side": "yes" if body["side"] == "bid" else "no",
                "book_side": body["side"],
                "type": "limit",
                "status": "resting" if resting else "canceled",
                "yes_price_dollars": dollars_str(price),
                "no_price_dollars": dollars_str(_ONE - price),
                "fill_count_fp": "0.00",
                "remaining_count_fp": _fp(count) if resting else "0.00",
                "initial_count_fp": _fp(count),
                "taker_fill_cost_dollars": "0.0000",
                "maker_fill_cost_dollars": "0.0000",
                "taker_fees_dollars": "0.0000",
                "maker_fees_dollars": "0.0000",
                "created_time": _iso(now),
                "last_update_time": _iso(now),
                "self_trade_prevention_type": body["self_trade_prevention_type"],
                "cancel_order_on_pause": bool(body.get("cancel_order_on_pause", False)),
                "post_only": bool(body.get("post_only", False)),
            }
            if body.get("expiration_time") is not None:
                order["expiration_time"] = _iso(
                    datetime.fromtimestamp(int(body["expiration_time"]), tz=UTC)
                )
            self._orders[order["order_id"]] = order
            self._orders_by_client_id[client_id] = order["order_id"]
            return 201, self._ack(order)

    def _cancel_resting(self, order: Json) -> Decimal:
        remaining = Decimal(order["remaining_count_fp"])
        order["status"] = "canceled"
        order["remaining_count_fp"] = "0.00"
        order["last_update_time"] = _iso(datetime.now(UTC))
        return remaining

    def _cancel(self, request: _Request) -> tuple[int, Json]:
        with self._lock:
            order = self._order(request.match["order"])
            if order["status"] != "resting":
                raise _bad("order is not resting", code="order_not_resting")
            reduced = self._cancel_resting(order)
            return 200, {
                "order_id": order["order_id"],
                "client_order_id": order["client_order_id"],
                "reduced_by": _fp(reduced),
                "ts_ms": int(time.time() * 1000),
            }

    def _cancel_all(self, request: _Request) -> tuple[int, Json]:
        with self._lock:
            cancelled = [o["order_id"] for o in self._orders.values() if o["status"] == "resting"]
            for order_id in cancelled:
                self._cancel_resting(self._orders[order_id])
        return 200, {"order_ids": cancelled}

    def _amend(self, request: _Request) -> tuple[int, Json]:
        body = request.json()
        with self._lock:
            order = self._order(request.match["order"])
            if order["status"] != "resting":
                raise _bad("order is not resting", code="order_not_resting")
            if body.get("ticker", order["ticker"]) != order["ticker"]:
                raise _bad("ticker does not match the order")
            if body.get("side", order["book_side"]) != order["book_side"]:
                raise _bad("side does not match the order")
            price = self._validated_price(order["ticker"], body.get("price"))
            total = _decimal(body.get("count"), "count")
            filled = Decimal(order["fill_count_fp"])
            if total < filled + _CENT:
                raise _bad("count must exceed the filled count")
            order["yes_price_dollars"] = dollars_str(price)
            order["no_price_dollars"] = dollars_str(_ONE - price)
            order["remaining_count_fp"] = _fp(total - filled)
            if body.get("updated_client_order_id"):
                new_id = str(body["updated_client_order_id"])
                self._orders_by_client_id.pop(order["client_order_id"], None)
                self._orders_by_client_id[new_id] = order["order_id"]
                order["client_order_id"] = new_id
            order["last_update_time"] = _iso(datetime.now(UTC))
            return 200, {**self._ack(order), "order": dict(order)}

    def _decrease(self, request: _Request) -> tuple[int, Json]:
        body = request.json()
        if ("reduce_by" in body) == ("reduce_to" in body):
            raise _bad("exactly one of reduce_by and reduce_to")
        with self._lock:
            order = self._order(request.match["order"])
            if order["status"] != "resting":
                raise _bad("order is not resting", code="order_not_resting")
            remaining = Decimal(order["remaining_count_fp"])
            if "reduce_by" in body:
                target = remaining - _decimal(body["reduce_by"], "reduce_by")
            else:
                target = _decimal(body["reduce_to"], "reduce_to")
            target = max(Decimal(0), min(remaining, target))
            reduced = remaining - target
            if target == 0:
                self._cancel_resting(order)
            else:
                order["remaining_count_fp"] = _fp(target)
                order["last_update_time"] = _iso(datetime.now(UTC))
            return 200, {
                "order_id": order["order_id"],
                "client_order_id": order["client_order_id"],
                "reduced_by": _fp(reduced),
                "ts_ms": int(time.time() * 1000),
            }

    def _legacy_order(self, request: _Request) -> tuple[int, Json]:
        raise _bad("Please switch to the V2 endpoints", code="deprecated_endpoint")


def _decimal(raw: object, name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _bad(f"{name} must be a fixed-point string")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise _bad(f"{name} is not a number") from None
    if not value.is_finite():
        raise _bad(f"{name} is not a number")
    return value


def _historical_candle(candle: Json) -> Json:
    """The live shape renamed to the historical one: flat names, still dollar strings."""

    def flat(block: object) -> Json | None:
        if not isinstance(block, dict):
            return None
        return {k.removesuffix("_dollars"): v for k, v in block.items()}

    out: Json = {
        "end_period_ts": candle["end_period_ts"],
        "yes_bid": flat(candle.get("yes_bid")),
        "yes_ask": flat(candle.get("yes_ask")),
        "price": flat(candle.get("price")),
        "volume": candle.get("volume_fp", candle.get("volume")),
        "open_interest": candle.get("open_interest_fp", candle.get("open_interest")),
    }
    return out


def _aggregate(candles: Sequence[Json], period: int) -> list[Json]:
    """1-minute candles rolled up to `period` minutes (bucket = the period's end)."""
    span = period * 60
    buckets: dict[int, list[Json]] = {}
    for c in candles:
        end = int(c["end_period_ts"])
        buckets.setdefault(-(-end // span) * span, []).append(c)
    out = []
    for end, group in sorted(buckets.items()):
        row: Json = {"end_period_ts": end}
        for side in ("yes_bid", "yes_ask", "price"):
            parts = [c.get(side) or {} for c in group]
            opens = [p.get("open_dollars") for p in parts if p.get("open_dollars") is not None]
            closes = [p.get("close_dollars") for p in parts if p.get("close_dollars") is not None]
            highs = [Decimal(p["high_dollars"]) for p in parts if p.get("high_dollars") is not None]
            lows = [Decimal(p["low_dollars"]) for p in parts if p.get("low_dollars") is not None]
            row[side] = {
                "open_dollars": opens[0] if opens else None,
                "high_dollars": dollars_str(max(highs)) if highs else None,
                "low_dollars": dollars_str(min(lows)) if lows else None,
                "close_dollars": closes[-1] if closes else None,
            }
        volume = sum((Decimal(c.get("volume_fp") or 0) for c in group), Decimal(0))
        weighted = [
            (Decimal(c["price"]["mean_dollars"]), Decimal(c.get("volume_fp") or 0))
            for c in group
            if (c.get("price") or {}).get("mean_dollars") is not None
        ]
        weight = sum((w for _, w in weighted), Decimal(0))
        row["price"]["mean_dollars"] = (
            dollars_str(
                (sum((p * w for p, w in weighted), Decimal(0)) / weight).quantize(Decimal("0.0001"))
            )
            if weight
            else None
        )
        row["volume_fp"] = _fp(volume)
        row["open_interest_fp"] = group[-1].get("open_interest_fp")
        out.append(row)
    return out


MAX_BODY: Final = 1 << 20  # bytes: an order is a few hundred


def _error(code: str, message: str) -> Json:
    return {"error": {"code": code, "message": message}}


class _RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, so a benchmark measures the client rather than reconnects."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # would stall every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    # A request line http.server cannot parse is answered with a full status line (its
    # HTTP/0.9 default sends a bare body a client cannot read as an answer).
    default_request_version = "HTTP/1.0"
    server_app: KalshiRestServer

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, headers, version) as JSON."""
        self.close_connection = True
        payload = json.dumps(
            _error("bad_request" if code < 500 else "unsupported", message or explain or "")
        ).encode()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(payload)
        except OSError:
            pass

    def _dispatch(self) -> None:
        body, problem = self._read_body()
        if problem is not None:
            # Where this request's body ends is unknown: answer, then close the connection
            # (a keep-alive client would otherwise have its next request read as this body).
            status, payload, delay = problem[0], json.dumps(problem[1]).encode(), 0.0
            self.close_connection = True
        else:
            try:
                status, payload, delay = self.server_app.handle(
                    self.command, self.path, self.headers, body
                )
            except Exception as exc:  # a bug: answer it, never drop the connection
                log.exception("kalshi-sim: %s %s failed", self.command, self.path)
                status, delay = 500, 0.0
                payload = json.dumps(
                    {"code": "internal_server_error", "message": type(exc).__name__}
                ).encode()
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (timeout) before we answered
            self.close_connection = True

    def _read_body(self) -> tuple[bytes, tuple[int, Json] | None]:
        """The request body, or (status, error) for framing we refuse: a Content-Length that
        is not one non-negative integer (several differing ones included), a body larger than
        MAX_BODY, a chunked body (Kalshi's clients always send a length), or fewer bytes than
        announced. Before this, ``int()`` raised and the connection dropped with no answer."""
        if self.headers.get("Transfer-Encoding"):
            return b"", (411, _error("length_required", "send a Content-Length, not chunks"))
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return b"", None
        texts = {v.strip() for v in values}
        if len(texts) != 1:
            return b"", (400, _error("bad_request", "conflicting Content-Length headers"))
        text = texts.pop()
        if not text.isascii() or not text.isdigit():
            return b"", (
                400,
                _error("bad_request", f"Content-Length must be a non-negative integer: {text!r}"),
            )
        length = int(text)
        if length > MAX_BODY:
            return b"", (413, _error("payload_too_large", f"body over {MAX_BODY} bytes"))
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            return b"", (
                400,
                _error("bad_request", f"body ended after {len(body)} of {length} bytes"),
            )
        return body, None

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:  # no route: a 404 with a JSON body, not http.server's 501
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kalshi-sim %s", format % args)
