"""Our Kalshi WebSocket client on a thread of its own; what it hears waits in a queue.

The client (:class:`kwx.sources.kalshi_ws.KalshiWebSocket`) is asyncio and keeps its books
on its own loop; the trading loop is plain blocking code. Rather than reading the client's
state across threads, every event it emits is queued and the trading loop drains the queue
when it wants (:meth:`MarketStream.drain`), rebuilding books from the snapshots and deltas the
client applied (they rebuild its books exactly, by construction) in :class:`Books`.

A stream that dies (a refused key, say) is reported by :attr:`MarketStream.error` and leaves
the loop running on REST alone: polling is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_ws import (
    DEFAULT_BACKOFF,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    Connected,
    Disconnected,
    KalshiWebSocket,
    WsEvent,
)
from kwx.sources.orderbook import OrderBook

__all__ = ["Books", "MarketStream", "StreamCounts"]

log = logging.getLogger(__name__)
_ONE = Decimal(1)


@dataclass
class StreamCounts:
    """What the stream delivered since it started (read by the loop and the reports)."""

    events: int = 0
    connects: int = 0
    disconnects: int = 0
    invalidations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class MarketStream:
    """``start()`` → events queue up → ``drain()`` from the trading loop → ``stop()``."""

    def __init__(
        self,
        url: str,
        tickers: Sequence[str],
        *,
        signer: KalshiSigner | None,
        backoff: RetryPolicy = DEFAULT_BACKOFF,
    ) -> None:
        self.url = url
        self.tickers = list(tickers)
        self.signer = signer
        self.backoff = backoff
        self.error: BaseException | None = None
        self.counts = StreamCounts()
        self.client: KalshiWebSocket | None = None
        self._queue: deque[WsEvent] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="kwx-live-ws", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> MarketStream:
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.ident is None:  # never started (the run failed before streaming)
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported through .error; REST polling carries on
            self.error = exc
            log.error("live WebSocket stream stopped: %s", exc)
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.client = KalshiWebSocket(
            self.url,
            self.tickers,
            signer=self.signer,
            on_event=self._on_event,
            backoff=self.backoff,
        )
        self._ready.set()
        await self.client.run(self._stop)

    async def _on_event(self, event: WsEvent) -> None:
        with self._lock:
            self._queue.append(event)

    # ------------------------------------------------------------------ the loop's side

    def drain(self) -> list[WsEvent]:
        """Every event queued since the last call, in the order the client emitted them."""
        with self._lock:
            out = list(self._queue)
            self._queue.clear()
        c = self.counts
        for event in out:
            c.events += 1
            kind = type(event).__name__
            c.by_kind[kind] = c.by_kind.get(kind, 0) + 1
            if isinstance(event, Connected):
                c.connects += 1
            elif isinstance(event, Disconnected):
                c.disconnects += 1
            elif isinstance(event, BookInvalidated):
                c.invalidations += 1
        return out


class Books:
    """The client's books, rebuilt on the loop's thread from the events it emitted.

    A book is usable only between a snapshot and the next invalidation (a gap, a reset, an
    error or a disconnect); :meth:`touch` says None for any other.
    """

    def __init__(self) -> None:
        self._books: dict[str, OrderBook] = {}
        self._valid: set[str] = set()

    def apply(self, events: Iterable[WsEvent]) -> None:
        for event in events:
            if isinstance(event, BookSnapshot):
                book = OrderBook(event.ticker, event.use_yes_price)
                book.apply_snapshot(event.yes, event.no)
                self._books[event.ticker] = book
                self._valid.add(event.ticker)
            elif isinstance(event, BookDelta):
                book_ = self._books.get(event.ticker)
                if book_ is not None and event.ticker in self._valid:
                    book_.apply_delta(event.side, event.price, event.delta)
            elif isinstance(event, BookInvalidated):
                self._valid.discard(event.ticker)
            elif isinstance(event, Disconnected):
                self._valid.clear()

    def valid(self, ticker: str) -> bool:
        return ticker in self._valid

    def levels(self, ticker: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
        """(YES bids, YES asks) by YES price, or None when the book is not usable."""
        if ticker not in self._valid:
            return None
        book = self._books[ticker]
        bids = dict(book.levels("yes"))
        asks = {(p if book.use_yes_price else _ONE - p): s for p, s in book.levels("no")}
        return bids, asks
