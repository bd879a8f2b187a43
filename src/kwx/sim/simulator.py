"""`kwx sim serve` as an object: the replay clock, the exchange and three loopback servers.

    with Simulator.from_store(conn, city, day, SimConfig(speed=60)) as sim:
        sim.rest_url, sim.ws_url, sim.weather_url   # KALSHI_REST_BASE_URL, KALSHI_WS_URL, …

Threads: the REST and weather servers answer from their own threads; the WebSocket server and
the replay driver share one asyncio loop on a thread of their own. The exchange is the only
shared state (one lock). Everything it reports reaches the WebSocket through
``call_soon_threadsafe``, in the order it happened, so a fill made by a REST call and a print
replayed by the driver are published in their true order.

Speeds (see `kwx.sim.clock`): a multiplier of wall time, ``"max"`` (event by event, each step
waiting until the WebSocket frames of the previous one were written to the clients) or
``"manual"`` (``advance_to``/``advance_by`` from the caller: what tests use).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.registry import City
from kwx.sim.clock import SimClock, Speed
from kwx.sim.exchange import Exchange, Json
from kwx.sim.exchange_rest import ExchangeRestServer
from kwx.sim.faults import FaultConfig, maintenance_windows
from kwx.sim.fills import fill_model
from kwx.sim.kalshi_ws_server import KalshiWsServer
from kwx.sim.replay import DEFAULT_SYNTHETIC_SIZE, ReplayData, ReplayTrade
from kwx.sim.weather_replay import WeatherSummary, load_weather
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.kalshi_models import dollars_str

__all__ = ["SimConfig", "Simulator"]

log = logging.getLogger("kwx.sim")

T = TypeVar("T")
_ONE = Decimal(1)
_TICK_S = 0.02  # the driver's longest sleep at multiplier speeds


@dataclass
class SimConfig:
    speed: Speed = "manual"
    start: datetime | None = None  # default: midnight local standard time of the climate day
    fill_model: str = "cross"
    faults: FaultConfig = field(default_factory=FaultConfig)
    balance: Decimal = Decimal(1000)
    synthetic_size: Decimal = DEFAULT_SYNTHETIC_SIZE
    settle_delay: timedelta = timedelta(0)
    public_key: rsa.RSAPublicKey | None = None
    key_id: str | None = None
    rate_limit: bool = True
    rest_limits: dict[str, float] = field(default_factory=dict)  # read_rate=…, write_capacity=…
    rest_port: int = 0
    ws_port: int = 0
    weather_port: int = 0


class _Publisher:
    """The exchange's listener: turns its reports into WebSocket frames on the loop."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def _soon(self, fn: Callable[[], Any]) -> None:
        loop = self.sim._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    @property
    def ws(self) -> KalshiWsServer:
        return self.sim.ws

    def _ms(self) -> int:
        return self.sim.clock.now_ms()

    def on_user_order(self, order: Json) -> None:
        self._soon(
            lambda: self.ws.publish("user_orders", "user_order", order, ticker=order["ticker"])
        )

    def on_fill(self, fill: Json, duplicate_ok: bool) -> None:
        dup = duplicate_ok and self.sim.config.faults.roll(self.sim.config.faults.dup)
        self._soon(
            lambda: self.ws.publish(
                "fill", "fill", fill, ticker=fill["market_ticker"], duplicate=dup
            )
        )

    def on_position(self, position: Json) -> None:
        self._soon(
            lambda: self.ws.publish(
                "market_positions", "market_position", position, ticker=position["market_ticker"]
            )
        )

    def on_book(
        self,
        ticker: str,
        yes: list[tuple[Decimal, Decimal]],
        no: list[tuple[Decimal, Decimal]],
        client_order_id: str | None,
    ) -> None:
        faults = self.sim.config.faults
        gap, dup = faults.roll(faults.gap), faults.roll(faults.dup)
        swap = faults.roll(faults.reorder)
        ts_ms = self._ms()

        def send() -> None:
            if gap:
                self.ws.inject_gap()
            if dup:
                self.ws.inject_duplicate()
            if swap:
                self.ws.inject_reorder()
            self.ws.set_book(ticker, yes, no, client_order_id=client_order_id, ts_ms=ts_ms)

        self._soon(send)

    def on_trade(self, trade: ReplayTrade) -> None:
        ts_ms = int(trade.ts.timestamp() * 1000)
        msg = {
            "trade_id": trade.trade_id,
            "market_ticker": trade.ticker,
            "yes_price_dollars": dollars_str(trade.yes_price),
            "no_price_dollars": dollars_str(_ONE - trade.yes_price),
            "count_fp": dollars_str(trade.count, 2),
            "taker_outcome_side": trade.taker_side,
            "taker_book_side": {"yes": "bid", "no": "ask"}.get(trade.taker_side or ""),
            "taker_side": trade.taker_side,
            "is_block_trade": trade.is_block_trade,
            "ts": ts_ms // 1000,
            "ts_ms": ts_ms,
        }
        self._soon(lambda: self.ws.publish("trade", "trade", msg, ticker=trade.ticker))

    def on_ticker(self, ticker: Json) -> None:
        msg = {**ticker, "market_id": self.ws._market_id(ticker["market_ticker"])}
        self._soon(lambda: self.ws.publish("ticker", "ticker", msg, ticker=ticker["market_ticker"]))

    def on_lifecycle(self, msg: Json) -> None:
        self._soon(
            lambda: self.ws.publish(
                "market_lifecycle_v2", "market_lifecycle_v2", msg, ticker=msg.get("market_ticker")
            )
        )

    def on_pause(self, paused: bool) -> None:
        if paused:  # Kalshi: "expect WebSocket disconnects" in the maintenance window
            self._soon(lambda: asyncio.ensure_future(self.ws.disconnect_all()))


class Simulator:
    """See the module notes. Start with ``with`` (or ``start()``/``stop()``)."""

    def __init__(
        self,
        data: ReplayData,
        config: SimConfig | None = None,
        *,
        weather: WeatherReplayServer | None = None,
        weather_summary: WeatherSummary | None = None,
    ) -> None:
        self.data = data
        self.config = config or SimConfig()
        # Nothing happens before the first stored fact: an earlier start begins there.
        start = max(self.config.start or data.day_start(), data.first_ts)
        self.clock = SimClock(start, self.config.speed)
        windows = (
            maintenance_windows(min(start, data.first_ts), max(start, data.last_ts))
            if self.config.faults.maintenance
            else []
        )
        self.exchange = Exchange(
            data,
            self.clock,
            fill_model(self.config.fill_model),
            balance=self.config.balance,
            maintenance=windows,
        )
        self.ws = KalshiWsServer(
            public_key=self.config.public_key, key_id=self.config.key_id, port=self.config.ws_port
        )
        self.rest = ExchangeRestServer(
            self.exchange,
            faults=self.config.faults,
            public_key=self.config.public_key,
            key_id=self.config.key_id,
            rate_limit=self.config.rate_limit,
            port=self.config.rest_port,
            **self.config.rest_limits,
        )
        self.weather = weather
        self.weather_summary = weather_summary
        if weather is not None:
            weather.follow(self.clock.now)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.finished = threading.Event()

    @classmethod
    def from_store(
        cls,
        conn: psycopg.Connection[Any],
        city: City,
        day: date,
        config: SimConfig | None = None,
        *,
        weather: bool = True,
    ) -> Simulator:
        """Load the city-day's market data (and weather) from the store."""
        config = config or SimConfig()
        data = ReplayData.load(
            conn,
            city,
            day,
            synthetic_size=config.synthetic_size,
            settle_delay=config.settle_delay,
        )
        server = summary = None
        if weather:
            start = max(config.start or data.day_start(), data.first_ts)
            server = WeatherReplayServer(port=config.weather_port)
            summary = load_weather(conn, server, city, min(start, data.first_ts), data.last_ts)
        return cls(data, config, weather=server, weather_summary=summary)

    # ------------------------------------------------------------------ urls

    @property
    def rest_url(self) -> str:
        return self.rest.url

    @property
    def ws_url(self) -> str:
        return self.ws.url

    @property
    def weather_url(self) -> str:
        if self.weather is None:
            raise RuntimeError("this simulator serves no weather")
        return self.weather.url

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        self.rest.start()
        if self.weather is not None:
            self.weather.start()
        self._thread = threading.Thread(target=self._run_loop, name="kwx-sim-loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"the simulator's WebSocket loop did not start: {self._failure}")
        self.exchange.listener = _Publisher(self)
        self.clock.reanchor()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.rest.stop()
        if self.weather is not None:
            self.weather.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() or logged
            self._failure = exc
            log.exception("simulator loop failed")
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.ws:
            for ticker, (yes, no) in self.exchange.published_books().items():
                self.ws.set_book(ticker, yes, no, ts_ms=self.clock.now_ms())
            self._ready.set()
            tasks = [asyncio.create_task(self._drive(), name="kwx-sim-driver")]
            if self.config.faults.disconnect > 0:
                tasks.append(asyncio.create_task(self._disconnects(), name="kwx-sim-disconnects"))
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ------------------------------------------------------------------ driving

    async def _drive(self) -> None:
        """Move the clock by the configured speed, applying the replay as it passes."""
        while True:
            speed = self.clock.speed
            upcoming = self.exchange.next_event_time()
            if upcoming is None:
                self._finish()
            if speed == "manual" or upcoming is None:
                await asyncio.sleep(0.05)
                continue
            if speed == "max":
                self.exchange.advance_to(upcoming)
                await asyncio.sleep(0)  # let the published frames be queued
                with contextlib.suppress(TimeoutError):
                    await self.ws.drain(timeout_s=5.0)
                continue
            target = self.clock.target()
            if target is not None and target > self.clock.now():
                self.exchange.advance_to(target)
            wait = self.clock.wall_seconds_until(upcoming)
            await asyncio.sleep(min(max(wait, 0.001), _TICK_S))

    def _finish(self) -> None:
        if not self.finished.is_set():
            self.finished.set()
            log.info("replay finished at %s", self.clock.now().isoformat())

    async def _disconnects(self) -> None:
        while True:
            await asyncio.sleep(self.config.faults.disconnect)
            if self.ws.active_connections:
                log.info("fault: dropping %d WebSocket connection(s)", self.ws.active_connections)
                await self.ws.disconnect_all()

    def _on_loop(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        if self._loop is None:
            raise RuntimeError("the simulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # callbacks queued before this coroutine run first
        await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):
            await self.ws.drain(timeout_s=5.0)

    def flush(self) -> None:
        """Wait until everything published so far was written to the sockets."""
        self._on_loop(self._flush())

    def advance_to(self, when: datetime) -> None:
        """Manual speed: replay everything up to ``when`` and publish it (then return)."""
        when = when.astimezone(UTC)
        if when < self.clock.now():
            raise ValueError(f"cannot go back to {when} from {self.clock.now()}")
        self.exchange.advance_to(when)
        if self.exchange.next_event_time() is None:
            self._finish()
        if self._loop is not None:
            self.flush()

    def advance_by(self, delta: timedelta) -> None:
        self.advance_to(self.clock.now() + delta)

    def wait_finished(self, timeout_s: float) -> bool:
        return self.finished.wait(timeout_s)

    # ------------------------------------------------------------------ faults on demand

    def on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the WebSocket server's loop (its state is not thread-safe)."""

        async def call() -> T:
            return fn()

        return self._on_loop(call())

    def disconnect_clients(self) -> None:
        """Drop every WebSocket connection now (no close frame)."""
        self._on_loop(self.ws.disconnect_all())

    def banner(self) -> list[str]:
        """What `kwx sim serve` prints at start-up."""
        data = self.data
        sources: dict[str, int] = {}
        for m in data.markets.values():
            sources[m.book_source] = sources.get(m.book_source, 0) + 1
        lines = [
            f"replaying {data.city.key} {data.day}: {len(data.markets)} markets, "
            f"{len(data.trades)} trades, from {self.clock.now().isoformat()} "
            f"to {data.last_ts.isoformat()}",
            "books: "
            + ", ".join(f"{k} ×{v}" for k, v in sorted(sources.items()))
            + (
                f" (synthetic one-level books assume {data.synthetic_size} contracts at the touch)"
                if set(sources) - {"l2"}
                else ""
            ),
            f"speed: {self.clock.speed}; fill model: {self.config.fill_model}; "
            f"faults: {self.config.faults.describe()}; balance: ${self.config.balance}",
            f"KALSHI_REST_BASE_URL={self.rest_url}",
            f"KALSHI_WS_URL={self.ws_url}",
        ]
        if self.weather is not None:
            lines += [
                f"IEM_BASE_URL={self.weather.url}",
                f"NWS_BASE_URL={self.weather.url}",
                f"VC_BASE_URL={self.weather.vc_url}",
            ]
            if self.weather_summary is not None:
                lines.append("weather " + self.weather_summary.describe())
        return lines
