"""The Kalshi REST server in front of the simulated exchange, answering as of the sim clock.

It is `KalshiRestServer` (same paths, wire shapes, signature checks, token buckets, cursors and
injected faults) with its data and portfolio endpoints answered by an `Exchange`:

* markets carry the replayed quotes, last price, volume, status and (after settlement only)
  result; trades and candles stop at the clock, so nothing after it can be read;
* orders, fills, positions, balance and settlements are the exchange's account;
* ``GET /exchange/status`` says when the maintenance pause is on; ``/exchange/schedule`` lists
  the pauses of the replayed span.

Random REST faults (``429`` bursts, ``5xx``, slow answers) are drawn per request from the
simulator's `FaultConfig`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.sim.exchange import Exchange, ExchangeError
from kwx.sim.faults import FaultConfig
from kwx.sim.kalshi_rest_server import (
    Handler,
    Json,
    KalshiDataset,
    KalshiRestServer,
    _aggregate,
    _bad,
    _historical_candle,
    _HttpError,
    _iso,
    _Request,
    _Route,
    select_fills,
    select_orders,
)
from kwx.sources.kalshi_models import dollars_str

__all__ = ["QUIET_AFTER_FAULT", "ExchangeRestServer"]

log = logging.getLogger("kwx.sim.exchange")

QUIET_AFTER_FAULT = 3


def _http(exc: ExchangeError) -> _HttpError:
    if exc.status == 404:
        return _HttpError(404, {"error": {"code": "not_found", "message": exc.message}})
    return _HttpError(exc.status, {"code": exc.code, "message": exc.message, "details": ""})


class ExchangeRestServer(KalshiRestServer):
    """``with ExchangeRestServer(exchange, ...) as srv: srv.url``."""

    def __init__(
        self,
        exchange: Exchange,
        *,
        faults: FaultConfig | None = None,
        public_key: rsa.RSAPublicKey | None = None,
        key_id: str | None = None,
        rate_limit: bool = True,
        port: int = 0,
        **limits: Any,
    ) -> None:
        data = exchange.data
        dataset = KalshiDataset(
            series=dict(data.series),
            events=dict(data.events_meta),
            markets=exchange.market_wires(),
        )
        self.exchange = exchange
        self.faults = faults or FaultConfig()
        self._quiet = 0
        super().__init__(
            dataset,
            public_key=public_key,
            key_id=key_id,
            rate_limit=rate_limit,
            port=port,
            **limits,
        )

    # ------------------------------------------------------------------ pipeline

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, float]:
        """Refresh the as-of market views, draw the random faults, then answer as usual."""
        self.dataset.markets.update(self.exchange.market_wires())
        faults = self.faults
        with self._lock:
            # A fault is followed by a few clean requests, so that a retrying client is not
            # starved by bursts drawn back to back (which no exchange does for long).
            quiet = self._quiet > 0
            self._quiet = max(0, self._quiet - 1)
        if quiet:
            pass
        elif faults.roll(faults.rest_429):
            self._arm(faults.burst_429, lambda: self.fail_next(faults.burst_429, 429))
        elif faults.roll(faults.rest_5xx):
            self._arm(1, lambda: self.fail_next(1, 503))
        elif faults.roll(faults.rest_slow):
            self._arm(1, lambda: self.delay_next(faults.slow_s))
        return super().handle(method, raw_path, headers, body)

    def _arm(self, requests: int, arm: Callable[[], None]) -> None:
        with self._lock:
            self._quiet = requests + QUIET_AFTER_FAULT
        arm()

    def _build_routes(self) -> list[_Route]:
        extra: list[tuple[str, str, Handler]] = [
            ("GET", r"/portfolio/settlements", self._settlements),
            ("GET", r"/portfolio/orders/queue_positions", self._queue_positions),
            ("GET", r"/portfolio/orders/(?P<order>[^/]+)/queue_position", self._queue_position),
        ]
        mine = [_Route(m, re.compile(p), h, auth=True) for m, p, h in extra]
        return mine + super()._build_routes()

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ExchangeError as exc:
            raise _http(exc) from None

    # ------------------------------------------------------------------ market data

    def _trades_list(self, request: _Request) -> tuple[int, Json]:
        ticker = request.arg("ticker")
        lo, hi = request.int_arg("min_ts"), request.int_arg("max_ts")
        trades = self.exchange.data.trades_until(self.exchange.clock.now())
        chosen = [
            t.wire()
            for t in reversed(trades)
            if (not ticker or t.ticker == ticker)
            and (lo is None or t.ts.timestamp() >= lo)
            and (hi is None or t.ts.timestamp() < hi + 1)
        ]
        return 200, self._page(request, "trades", chosen)

    def _candles_for(self, request: _Request, ticker: str, historical: bool) -> list[Json]:
        lo, hi = request.int_arg("start_ts"), request.int_arg("end_ts")
        if lo is None or hi is None:
            raise _bad("start_ts and end_ts are required")
        period = request.int_arg("period_interval") or 1
        if period not in (1, 60, 1440):
            raise _bad("period_interval must be 1, 60 or 1440")
        now = self.exchange.clock.now()
        candles = self.exchange.data.candles_until(ticker, now)
        if period != 1:  # a period still open at the clock has no candle yet
            limit = now.timestamp()
            candles = [c for c in _aggregate(candles, period) if c["end_period_ts"] <= limit]
        chosen = [c for c in candles if lo <= int(c["end_period_ts"]) <= hi]
        return [_historical_candle(c) for c in chosen] if historical else chosen

    def _orderbook_of(self, ticker: str) -> Json:
        result: Json = self._call(self.exchange.orderbook, ticker)
        return result

    def _exchange_status(self, request: _Request) -> tuple[int, Json]:
        return 200, self.exchange.exchange_status()

    def _exchange_schedule(self, request: _Request) -> tuple[int, Json]:
        status, body = super()._exchange_schedule(request)
        body["schedule"]["maintenance_windows"] = [
            {"start_datetime": _iso(a), "end_datetime": _iso(b)}
            for a, b in self.exchange.maintenance_windows()
        ]
        return status, body

    # ------------------------------------------------------------------ account

    def _balance(self, request: _Request) -> tuple[int, Json]:
        return 200, self.exchange.balance()

    def _positions(self, request: _Request) -> tuple[int, Json]:
        ticker, event = request.arg("ticker"), request.arg("event_ticker")
        status = request.arg("settlement_status") or "unsettled"
        markets, events = self._call(self.exchange.positions, status)
        count_filter = set(request.args("count_filter"))
        items = [
            p
            for p in markets
            if (ticker is None or p["ticker"] == ticker)
            and (event is None or str(p["ticker"]).startswith(event + "-"))
            and (
                not count_filter
                or ("position" in count_filter and Decimal(p["position_fp"]) != 0)
                or ("total_traded" in count_filter and Decimal(p["total_traded_dollars"]) != 0)
            )
        ]
        page = self._page(request, "market_positions", items)
        page["event_positions"] = [e for e in events if event is None or e["event_ticker"] == event]
        return 200, page

    def _fills(self, request: _Request) -> tuple[int, Json]:
        return 200, self._page(request, "fills", select_fills(self.exchange.fills(), request))

    def _orders_list(self, request: _Request) -> tuple[int, Json]:
        items = select_orders(
            self.exchange.orders(), request, lambda ticker: ticker.rsplit("-", 1)[0]
        )
        return 200, self._page(request, "orders", items)

    def _order_one(self, request: _Request) -> tuple[int, Json]:
        return 200, {"order": self._call(self.exchange.order, request.match["order"])}

    def _settlements(self, request: _Request) -> tuple[int, Json]:
        return 200, self._page(request, "settlements", self.exchange.settlements())

    def _queue_position(self, request: _Request) -> tuple[int, Json]:
        ahead: Decimal = self._call(self.exchange.queue_position, request.match["order"])
        return 200, {"queue_position_fp": dollars_str(ahead, 2)}

    def _queue_positions(self, request: _Request) -> tuple[int, Json]:
        tickers = set(request.args("market_tickers"))
        out = []
        for order in self.exchange.orders():
            if order["status"] != "resting" or (tickers and order["ticker"] not in tickers):
                continue
            ahead = self.exchange.queue_position(order["order_id"])
            out.append(
                {
                    "order_id": order["order_id"],
                    "market_ticker": order["ticker"],
                    "queue_position_fp": dollars_str(ahead, 2),
                }
            )
        return 200, {"queue_positions": out}

    # ------------------------------------------------------------------ orders

    def _create(self, request: _Request) -> tuple[int, Json]:
        body = request.json()
        try:
            return 201, self.exchange.create(body)
        except ExchangeError as exc:
            log.info("order refused (%s %s): %s", exc.status, exc.code, exc.message)
            raise _http(exc) from None

    def _cancel(self, request: _Request) -> tuple[int, Json]:
        return 200, self._call(self.exchange.cancel, request.match["order"])

    def _cancel_all(self, request: _Request) -> tuple[int, Json]:
        return 200, {"order_ids": self._call(self.exchange.cancel_all)}

    def _amend(self, request: _Request) -> tuple[int, Json]:
        return 200, self._call(self.exchange.amend, request.match["order"], request.json())

    def _decrease(self, request: _Request) -> tuple[int, Json]:
        return 200, self._call(self.exchange.decrease, request.match["order"], request.json())
