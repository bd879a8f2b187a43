"""The ledger writer: every decision, order and fill of a run, batched into exec.*.

Rows are buffered in memory and written with COPY (through a staging table and an upsert, so
a re-flush is idempotent) when the buffer fills and at the end. Without a connection the
journal only keeps the rows (tests and dry runs read them back from memory).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import pandas as pd
import psycopg

from kwx.engine.ports import Fill, Order
from kwx.store.bulk import copy_into
from kwx.store.writers import Writer

__all__ = ["Journal"]

Conn = psycopg.Connection[tuple[object, ...]]
FLUSH_ROWS: Final = 20_000

ORDERS = Writer(
    table="exec.orders",
    stage_columns=(
        ("client_order_id", "uuid"),
        ("order_id", "text"),
        ("mode", "text"),
        ("run_id", "bigint"),
        ("ticker", "text"),
        ("event_ticker", "text"),
        ("side", "text"),
        ("action", "text"),
        ("kind", "text"),
        ("price", "numeric"),
        ("count_fp", "numeric"),
        ("filled_fp", "numeric"),
        ("status", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("raw", "jsonb"),
    ),
    upsert_sql=(
        "INSERT INTO exec.orders (client_order_id, order_id, mode, run_id, ticker, event_ticker, "
        "side, action, kind, price, count_fp, filled_fp, status, created_at, updated_at, raw) "
        "SELECT client_order_id, order_id, mode, run_id, ticker, event_ticker, side, action, "
        "kind, price, count_fp, filled_fp, status, created_at, updated_at, raw FROM {stage} "
        "ON CONFLICT (client_order_id) DO UPDATE SET status = excluded.status, "
        "filled_fp = excluded.filled_fp, updated_at = excluded.updated_at, raw = excluded.raw"
    ),
    key=("client_order_id",),
)

FILLS = Writer(
    table="exec.fills",
    stage_columns=(
        ("fill_id", "text"),
        ("client_order_id", "uuid"),
        ("order_id", "text"),
        ("mode", "text"),
        ("run_id", "bigint"),
        ("ticker", "text"),
        ("event_ticker", "text"),
        ("city", "text"),
        ("side", "text"),
        ("action", "text"),
        ("price", "numeric"),
        ("count_fp", "numeric"),
        ("fee", "numeric"),
        ("is_taker", "boolean"),
        ("ts", "timestamptz"),
        ("hazard_next_60m", "float8"),
        ("p_fused_norm", "float8"),
    ),
    upsert_sql=(
        "INSERT INTO exec.fills (fill_id, client_order_id, order_id, mode, run_id, ticker, "
        "event_ticker, city, side, action, price, count_fp, fee, is_taker, ts, "
        "hazard_next_60m, p_fused_norm) SELECT fill_id, client_order_id, order_id, mode, "
        "run_id, ticker, event_ticker, city, side, action, price, count_fp, fee, is_taker, ts, "
        "hazard_next_60m, p_fused_norm FROM {stage} ON CONFLICT (fill_id) DO NOTHING"
    ),
    key=("fill_id",),
)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {value!r}")


class Journal:
    """Buffers exec.decisions / exec.orders / exec.fills rows for one run."""

    def __init__(self, conn: Conn | None, *, mode: str, run_id: int | None) -> None:
        self.conn = conn
        self.mode = mode
        self.run_id = run_id
        self._decisions: list[tuple[datetime, str, str]] = []
        self._orders: dict[str, dict[str, Any]] = {}
        self._fills: list[dict[str, Any]] = []
        self.decisions_written = 0
        self.orders_written = 0
        self.fills_written = 0
        self.decision_count = 0

    def decision(self, ts: datetime, ticker: str, payload: Mapping[str, Any]) -> None:
        self._decisions.append((ts, ticker, json.dumps(payload, default=_json_default)))
        self.decision_count += 1
        self._maybe_flush()

    def order(self, order: Order) -> None:
        self._orders[order.client_order_id] = {
            "client_order_id": order.client_order_id,
            "order_id": order.order_id,
            "mode": self.mode,
            "run_id": self.run_id,
            "ticker": order.ticker,
            "event_ticker": order.event_ticker,
            "side": order.side,
            "action": order.action,
            "kind": order.kind,
            "price": order.price,
            "count_fp": order.count,
            "filled_fp": order.filled,
            "status": order.status,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
            "raw": json.dumps({"reason": order.reason}),
        }
        self._maybe_flush()

    def fill(
        self, fill: Fill, *, hazard_next_60m: float | None, p_fused_norm: float | None
    ) -> None:
        self._fills.append(
            {
                "fill_id": fill.fill_id,
                "client_order_id": fill.client_order_id,
                "order_id": fill.order_id,
                "mode": self.mode,
                "run_id": self.run_id,
                "ticker": fill.ticker,
                "event_ticker": fill.event_ticker,
                "city": fill.city,
                "side": fill.side,
                "action": fill.action,
                "price": fill.price,
                "count_fp": fill.count,
                "fee": fill.fee,
                "is_taker": fill.is_taker,
                "ts": fill.ts,
                "hazard_next_60m": hazard_next_60m,
                "p_fused_norm": p_fused_norm,
            }
        )
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self._decisions) + len(self._orders) + len(self._fills) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (one transaction) and clear the buffers."""
        if self.conn is None:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self._orders:
                frame = pd.DataFrame(list(self._orders.values()))
                ORDERS.write(cur, frame.astype({"price": str, "count_fp": str, "filled_fp": str}))
                self.orders_written += len(self._orders)
            if self._fills:
                frame = pd.DataFrame(self._fills)
                FILLS.write(cur, frame.astype({"price": str, "count_fp": str, "fee": str}))
                self.fills_written += len(self._fills)
            if self._decisions:
                frame = pd.DataFrame(self._decisions, columns=["ts", "ticker", "payload"])
                frame.insert(0, "mode", self.mode)
                frame.insert(1, "run_id", self.run_id)
                copy_into(
                    cur, "exec.decisions", ["mode", "run_id", "ts", "ticker", "payload"], frame
                )
                self.decisions_written += len(self._decisions)
        self._orders.clear()
        self._fills.clear()
        self._decisions.clear()
