"""Persist the Kalshi WebSocket stream: book snapshots, book deltas and public trades.

The recorder is an ``on_event`` callback for ``KalshiWebSocket``. It buffers rows and flushes
them every ``flush_every`` events or ``flush_interval_s`` seconds, whichever comes first; each
flush is one transaction (COPY + idempotent upsert per table) run in a worker thread so the
socket keeps answering pings while PostgreSQL works. A failed flush keeps its rows for the
next attempt: nothing is dropped because the database blinked.

What lands where:

* ``md.orderbook_snapshot``: one row per level (ticker, ts, side, price, size, seq,
  use_yes_price, sid — the stored sid below, tying it to its deltas). ``ts`` is the
  client's receive time, because Kalshi's snapshot has none. An empty book has no levels and
  so leaves no row.
* ``md.orderbook_delta``: one row per applied delta, keyed (ticker, sid, seq). Kalshi's sids
  restart at 1 on every connection, so the stored sid is
  ``(connection_base + conn) * SID_STRIDE + sid`` where ``conn`` is the client's connection
  number (1, 2, ...). ``connection_base`` defaults to the highest connection already stored,
  read once at start, so a restarted recorder never collides with an earlier run; pass it
  explicitly to replay a recorded event stream onto the same keys (the column is 64-bit).
* ``md.trades``: through the shared ``TRADES`` writer; ``created_time`` is the message's
  ``ts_ms``, and a print REST already stored at microsecond precision is not stored again.

Only events the client applied are recorded (see ``kalshi_ws``): a snapshot followed by the
stored deltas of the same stored sid rebuilds the client's book. Re-recording the same events
changes nothing. Trades the table cannot hold (a trade id that is not a UUID, a zero count) are
logged and kept in ``rejected`` instead of failing the batch around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Self

import pandas as pd

from kwx.config import Settings, get_settings
from kwx.sources.kalshi_models import Trade, trades_frame
from kwx.sources.kalshi_ws import BookDelta, BookSnapshot, TradeMsg, WsEvent
from kwx.store.engine import connect
from kwx.store.writers import TRADES, Writer

__all__ = [
    "ORDERBOOK_DELTAS",
    "ORDERBOOK_SNAPSHOTS",
    "SID_STRIDE",
    "FlushCounts",
    "Recorder",
    "RecorderStats",
]

log = logging.getLogger(__name__)

SID_STRIDE = 1_000_000
REJECTED_KEPT = 1000

_SNAPSHOT_COLUMNS = (
    ("ticker", "text"),
    ("ts", "timestamptz"),
    ("side", "text"),
    ("price", "numeric"),
    ("size", "numeric"),
    ("seq", "bigint"),
    ("use_yes_price", "boolean"),
    ("sid", "bigint"),
)
_DELTA_COLUMNS = (
    ("ticker", "text"),
    ("ts", "timestamptz"),
    ("sid", "integer"),
    ("seq", "bigint"),
    ("side", "text"),
    ("price", "numeric"),
    ("delta", "numeric"),
    ("use_yes_price", "boolean"),
)


def _names(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(name for name, _ in columns)


ORDERBOOK_SNAPSHOTS = Writer(
    "md.orderbook_snapshot",
    _SNAPSHOT_COLUMNS,
    f"""
    INSERT INTO md.orderbook_snapshot ({_names(_SNAPSHOT_COLUMNS)})
    SELECT DISTINCT ON (ticker, ts, side, price) {_names(_SNAPSHOT_COLUMNS)} FROM {{stage}}
    ORDER BY ticker, ts, side, price
    ON CONFLICT (ticker, ts, side, price) DO NOTHING
    """,
    direct_copy=True,
)
ORDERBOOK_DELTAS = Writer(
    "md.orderbook_delta",
    _DELTA_COLUMNS,
    f"""
    INSERT INTO md.orderbook_delta ({_names(_DELTA_COLUMNS)})
    SELECT DISTINCT ON (ticker, sid, seq) {_names(_DELTA_COLUMNS)} FROM {{stage}}
    ORDER BY ticker, sid, seq
    ON CONFLICT (ticker, sid, seq) DO NOTHING
    """,
    direct_copy=True,
)


@dataclass(frozen=True)
class FlushCounts:
    """Rows each table gained in one flush (0 for rows that were already there)."""

    snapshot_rows: int = 0
    delta_rows: int = 0
    trade_rows: int = 0


@dataclass
class RecorderStats:
    events: int = 0
    flushes: int = 0
    flush_errors: int = 0
    snapshot_rows: int = 0
    delta_rows: int = 0
    trade_rows: int = 0
    rejected: int = 0


_SnapshotRow = tuple[str, object, str, str, str, int, bool, int]
_DeltaRow = tuple[str, object, int, int, str, str, str, bool]


def _dec(value: Decimal) -> str:
    return format(value, "f")


class Recorder:
    """Buffers ``KalshiWebSocket`` events and writes them to the store; see the module notes.

    Use as ``async with Recorder(settings) as rec: KalshiWebSocket(..., on_event=rec.on_event)``
    so that the timer runs and the last rows are flushed on the way out.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        flush_every: int = 1000,
        flush_interval_s: float = 1.0,
        connection_base: int | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self.connection_base = connection_base
        self.stats = RecorderStats()
        self.rejected: deque[tuple[TradeMsg, str]] = deque(maxlen=REJECTED_KEPT)
        self._snapshots: list[_SnapshotRow] = []
        self._deltas: list[_DeltaRow] = []
        self._trades: list[Trade] = []
        self._buffered_events = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self.connection_base is None:
            self.connection_base = await asyncio.to_thread(self._stored_connection_base)
        if self._timer is None and self.flush_interval_s > 0:
            self._timer = asyncio.create_task(self._tick())

    async def close(self) -> None:
        """Stop the timer and flush what is left (raises if that last flush fails)."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        await self.flush()

    def _stored_connection_base(self) -> int:
        with connect(self.settings) as conn:
            row = conn.execute("SELECT max(sid) FROM md.orderbook_delta").fetchone()
        top = row[0] if row is not None else None
        return 0 if not isinstance(top, int) else top // SID_STRIDE

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:
                log.exception("recorder flush failed; rows kept for the next attempt")

    # ------------------------------------------------------------------ events

    def stored_sid(self, conn: int, sid: int) -> int:
        """The sid as stored: unique across connections (and runs) of this recorder."""
        if self.connection_base is None:
            raise RuntimeError("Recorder.start() has not run")
        if not 0 <= sid < SID_STRIDE:
            raise ValueError(f"sid {sid} does not fit the stored-sid scheme")
        return (self.connection_base + conn) * SID_STRIDE + sid

    async def on_event(self, event: WsEvent) -> None:
        """The ``KalshiWebSocket`` callback."""
        if self.connection_base is None:
            await self.start()
        if isinstance(event, BookSnapshot):
            self._add_snapshot(event)
        elif isinstance(event, BookDelta):
            self._deltas.append(
                (
                    event.ticker,
                    event.ts,
                    self.stored_sid(event.conn, event.sid),
                    event.seq,
                    event.side,
                    _dec(event.price),
                    _dec(event.delta),
                    event.use_yes_price,
                )
            )
        elif isinstance(event, TradeMsg):
            if not self._add_trade(event):
                return
        else:
            return
        self.stats.events += 1
        self._buffered_events += 1
        if self._buffered_events >= self.flush_every:
            await self.flush()

    def _add_snapshot(self, event: BookSnapshot) -> None:
        for side, levels in (("yes", event.yes), ("no", event.no)):
            for price, size in levels:
                if size > 0:
                    self._snapshots.append(
                        (
                            event.ticker,
                            event.ts,
                            side,
                            _dec(price),
                            _dec(size),
                            event.seq,
                            event.use_yes_price,
                            self.stored_sid(event.conn, event.sid),
                        )
                    )

    def _add_trade(self, event: TradeMsg) -> bool:
        """Buffer a trade, or set it aside (False) when md.trades cannot hold it."""
        reason = None
        try:
            trade_id = str(uuid.UUID(event.trade_id))
        except ValueError:
            reason = "trade_id is not a UUID"
        if reason is None and event.count <= 0:
            reason = "count is not positive"
        if reason is None and event.taker_side not in (None, "yes", "no"):
            reason = f"taker_side {event.taker_side!r}"
        if reason is not None:
            self.stats.rejected += 1
            self.rejected.append((event, reason))
            log.warning("recorder: trade not stored (%s): %r", reason, event)
            return False
        self._trades.append(
            Trade(
                trade_id=trade_id,
                ticker=event.ticker,
                created_time=event.ts,
                count=event.count,
                yes_price=event.yes_price,
                no_price=event.no_price,
                taker_side=event.taker_side,
                is_block_trade=event.is_block_trade,
            )
        )
        return True

    # ------------------------------------------------------------------ writing

    @property
    def pending_events(self) -> int:
        return self._buffered_events

    async def flush(self) -> FlushCounts:
        """Write everything buffered in one transaction; on failure the rows stay buffered."""
        async with self._lock:
            snapshots, deltas, trades = self._snapshots, self._deltas, self._trades
            if not snapshots and not deltas and not trades:
                self._buffered_events = 0
                return FlushCounts()
            buffered = self._buffered_events
            self._snapshots, self._deltas, self._trades = [], [], []
            self._buffered_events = 0
            try:
                counts = await asyncio.to_thread(self._write, snapshots, deltas, trades)
            except BaseException:
                self.stats.flush_errors += 1
                self._snapshots = snapshots + self._snapshots
                self._deltas = deltas + self._deltas
                self._trades = trades + self._trades
                self._buffered_events += buffered
                raise
            self.stats.flushes += 1
            self.stats.snapshot_rows += counts.snapshot_rows
            self.stats.delta_rows += counts.delta_rows
            self.stats.trade_rows += counts.trade_rows
            return counts

    def _write(
        self,
        snapshots: list[_SnapshotRow],
        deltas: list[_DeltaRow],
        trades: list[Trade],
    ) -> FlushCounts:
        with connect(self.settings) as conn, conn.cursor() as cur:
            counts = FlushCounts(
                snapshot_rows=ORDERBOOK_SNAPSHOTS.write(
                    cur, _frame(snapshots, _SNAPSHOT_COLUMNS, ("seq",))
                ),
                delta_rows=ORDERBOOK_DELTAS.write(
                    cur, _frame(deltas, _DELTA_COLUMNS, ("sid", "seq"))
                ),
                trade_rows=TRADES.write(cur, trades_frame(trades)) if trades else 0,
            )
            conn.commit()
        return counts


def _frame(
    rows: Sequence[tuple[object, ...]],
    columns: Sequence[tuple[str, str]],
    integers: Sequence[str],
) -> pd.DataFrame:
    """Decimals travel as their exact strings; COPY reads them into numeric unchanged."""
    names = [name for name, _ in columns]
    frame = pd.DataFrame.from_records(list(rows), columns=names)
    if frame.empty:
        return frame
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for name in integers:
        frame[name] = frame[name].astype("int64")
    for name, typ in columns:
        if typ in ("text", "numeric"):
            frame[name] = frame[name].astype("string")
    frame["use_yes_price"] = frame["use_yes_price"].astype("bool")
    return frame
