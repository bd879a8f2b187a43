"""The durable half of order placement: exec.orders rows written before a request is sent.

Placing an order on a real exchange has a window in which a crash loses track of it: after
the decision, before the answer. The ledger closes it. Each order's ``client_order_id`` is
derived from the decision itself (:func:`client_order_id`) and written with status
``pending`` — committed, on a connection of its own — *before* the request leaves; the answer
then records the exchange's ``order_id``. A process killed anywhere in between leaves a
``pending`` row that the next start (:mod:`kwx.live.reconcile`) looks up at the exchange by
that id: adopted when the exchange has it, else sent again with the same id, which the
exchange treats as the same order (V2 idempotency). Nothing is ever sent without a row.

The agent's :class:`~kwx.engine.journal.Journal` later upserts the same rows (status, filled
count); it never clears the ``order_id`` or the exchange written here.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import psycopg

from kwx.engine.ports import Action, Side

__all__ = ["LedgerOrder", "OrderLedger", "client_order_id"]

Conn = psycopg.Connection[tuple[object, ...]]
_NAMESPACE: Final = uuid.UUID("0c4a1f9e-5b7d-4e61-9a2f-3d8c6e1b2a70")


def client_order_id(
    account: str,
    ticker: str,
    side: Side,
    action: Action,
    kind: str,
    price: Decimal,
    count: Decimal,
    decided_at: dt.datetime,
    occurrence: int,
) -> str:
    """A UUID named by the decision: account (exchange), market, side, action, kind, price,
    count, the decision minute and how many identical intents came before it in that minute.

    The same decision made again after a restart gets the same id, so even an intent whose
    pending row were lost could not be placed twice; a second identical order in the same
    minute (a cancel then a re-place) gets a new one.
    """
    key = "|".join(
        (
            account,
            ticker,
            side,
            action,
            kind,
            format(price.normalize(), "f"),
            format(count.normalize(), "f"),
            decided_at.astimezone(dt.UTC).isoformat(),
            str(occurrence),
        )
    )
    return str(uuid.uuid5(_NAMESPACE, key))


@dataclass(frozen=True)
class LedgerOrder:
    """One exec.orders row as the live venue needs it back."""

    client_order_id: str
    order_id: str | None
    run_id: int | None
    ticker: str
    event_ticker: str | None
    side: Side
    action: Action
    kind: str
    price: Decimal
    count: Decimal
    status: str
    created_at: dt.datetime
    raw: dict[str, Any]


_COLUMNS: Final = (
    "client_order_id::text, order_id, run_id, ticker, event_ticker, side, action, kind, price, "
    "count_fp, status, created_at, raw"
)


class OrderLedger:
    """exec.orders writes that must be durable before anything is sent (autocommit)."""

    def __init__(self, conn: Conn, *, mode: str, exchange: str) -> None:
        if not conn.autocommit:
            raise ValueError("OrderLedger needs an autocommit connection (each write durable)")
        self.conn = conn
        self.mode = mode
        self.exchange = exchange

    def pending(
        self,
        *,
        client_order_id: str,
        run_id: int | None,
        ticker: str,
        event_ticker: str,
        side: Side,
        action: Action,
        kind: str,
        price: Decimal,
        count: Decimal,
        decided_at: dt.datetime,
        request: dict[str, Any],
    ) -> bool:
        """Record an order about to be sent; False when the id is already known."""
        row = self.conn.execute(
            "INSERT INTO exec.orders (client_order_id, order_id, mode, run_id, ticker, "
            "event_ticker, side, action, kind, price, count_fp, filled_fp, status, created_at, "
            "updated_at, raw, exchange) VALUES (%s, NULL, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "0, 'pending', %s, now(), %s, %s) ON CONFLICT (client_order_id) DO NOTHING "
            "RETURNING client_order_id",
            (
                client_order_id,
                self.mode,
                run_id,
                ticker,
                event_ticker,
                side,
                action,
                kind,
                price,
                count,
                decided_at,
                json.dumps({"request": request}),
                self.exchange,
            ),
        ).fetchone()
        return row is not None

    def acknowledged(
        self, client_order_id: str, order_id: str, status: str, filled: Decimal
    ) -> None:
        """The exchange answered (or was found to hold the order): its id and state."""
        self.conn.execute(
            "UPDATE exec.orders SET order_id = %s, status = %s, filled_fp = %s, "
            "updated_at = now() WHERE client_order_id = %s",
            (order_id, status, filled, client_order_id),
        )

    def refused(self, client_order_id: str, reason: str) -> None:
        self.conn.execute(
            "UPDATE exec.orders SET status = 'rejected', updated_at = now(), "
            "raw = coalesce(raw, '{}'::jsonb) || jsonb_build_object('reason', %s::text) "
            "WHERE client_order_id = %s",
            (reason, client_order_id),
        )

    def expired(self, client_order_id: str, reason: str) -> None:
        """A pending order judged too old to send after a restart: never placed."""
        self.conn.execute(
            "UPDATE exec.orders SET status = 'expired', updated_at = now(), "
            "raw = coalesce(raw, '{}'::jsonb) || jsonb_build_object('reason', %s::text) "
            "WHERE client_order_id = %s AND status = 'pending'",
            (reason, client_order_id),
        )

    def unresolved(self) -> list[LedgerOrder]:
        """Pending rows of this mode and exchange, oldest first (what a restart resolves)."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM exec.orders WHERE mode = %s AND status = 'pending' "
            "AND exchange = %s ORDER BY created_at, client_order_id",
            (self.mode, self.exchange),
        ).fetchall()
        return [_order(r) for r in rows]

    def by_client_ids(self, ids: list[str]) -> dict[str, LedgerOrder]:
        if not ids:
            return {}
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM exec.orders WHERE client_order_id::text = ANY(%s)",
            (ids,),
        ).fetchall()
        return {str(r[0]): _order(r) for r in rows}

    def known_fill_ids(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT fill_id FROM exec.fills WHERE mode = %s", (self.mode,)
        ).fetchall()
        return {str(r[0]) for r in rows}


def _order(r: tuple[object, ...]) -> LedgerOrder:
    raw = r[12] if isinstance(r[12], dict) else {}
    created = r[11]
    assert isinstance(created, dt.datetime)
    side = str(r[5])
    action = str(r[6])
    if side not in ("yes", "no") or action not in ("buy", "sell"):
        raise ValueError(f"exec.orders {r[0]}: bad side/action {side!r}/{action!r}")
    return LedgerOrder(
        client_order_id=str(r[0]),
        order_id=None if r[1] is None else str(r[1]),
        run_id=None if r[2] is None else int(str(r[2])),
        ticker=str(r[3]),
        event_ticker=None if r[4] is None else str(r[4]),
        side="yes" if side == "yes" else "no",
        action="buy" if action == "buy" else "sell",
        kind=str(r[7] or "limit"),
        price=Decimal(str(r[8])),
        count=Decimal(str(r[9])),
        status=str(r[10]),
        created_at=created,
        raw=raw,
    )
