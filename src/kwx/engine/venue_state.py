"""The simulated venue's state as JSON, so a paper run can be killed and continue.

A live run restarts from the exchange (its positions and resting orders are the truth); a
paper run's exchange is :class:`~kwx.engine.sim_venue.SimulatedVenue` in memory, and a new
process used to start flat: after a kill -9 the day ended 70 contracts short where the
position limit and the uninterrupted run say 50, and the killed run's orders stayed
``resting`` in exec.orders for ever. :func:`dump_venue` captures everything the venue needs to
go on exactly where it was:

* the positions as FIFO lots (side, count, price) with realised P&L and fees, so marks, risk
  limits and later realised P&L are those of the uninterrupted run;
* the resting orders with their matching state: remaining count, placement and last-checked
  instants, and the fill model's state (the place in the queue), so a restored order is
  matched against the prints it missed while the process was down, as an exchange would have
  matched it, and against nothing twice;
* the fill counter, so the fills of restored orders get ids no earlier fill used.

:func:`restore_venue` puts back what concerns the tickers the new run trades and hands back
the rest untouched ("carried"): a run for Chicago must not lose the Miami run's state, and
must not match Miami orders against a tape that has no Miami prints. :func:`dump_venue`
writes the carried part out again.

Exactness: Decimals are stored as strings, floats as ``float.hex`` (exact, and PostgreSQL's
jsonb refuses NaN and infinities, which a queue model may hold).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from kwx.engine.ports import Order
from kwx.engine.sim_venue import SimOrder, SimulatedVenue, _Book, _Lot

__all__ = ["STATE_VERSION", "Restored", "VenueStateError", "dump_venue", "restore_venue"]

STATE_VERSION: Final = 1


class VenueStateError(ValueError):
    """A saved state this code cannot read (another version, a missing field)."""


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_venue` put back, and what it kept aside for other runs."""

    positions: int
    resting: int
    carried: dict[str, Any]

    def as_dict(self) -> dict[str, int]:
        return {
            "positions": self.positions,
            "resting": self.resting,
            "carried_books": len(self.carried.get("books", {})),
            "carried_resting": len(self.carried.get("resting", [])),
        }


def _peek_fill_seq(venue: SimulatedVenue) -> int:
    """The next fill number, without using it up."""
    n = next(venue._fill_seq)
    venue._fill_seq = itertools.count(n)
    return n


def _state_value(value: float | int) -> list[Any]:
    if isinstance(value, int):  # bool too
        return ["i", int(value)]
    return ["f", float(value).hex()]


def _state_from(value: list[Any]) -> float | int:
    kind, raw = value
    return int(raw) if kind == "i" else float.fromhex(str(raw))


def _order_json(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "client_order_id": o.client_order_id,
        "ticker": o.ticker,
        "event_ticker": o.event_ticker,
        "city": o.city,
        "side": o.side,
        "action": o.action,
        "kind": o.kind,
        "price": str(o.price),
        "count": str(o.count),
        "filled": str(o.filled),
        "status": o.status,
        "created_at": o.created_at.isoformat(),
        "updated_at": o.updated_at.isoformat(),
        "reason": o.reason,
    }


def _order_from(d: Mapping[str, Any]) -> Order:
    return Order(
        order_id=str(d["order_id"]),
        client_order_id=str(d["client_order_id"]),
        ticker=str(d["ticker"]),
        event_ticker=str(d["event_ticker"]),
        city=str(d["city"]),
        side="yes" if d["side"] == "yes" else "no",
        action="buy" if d["action"] == "buy" else "sell",
        kind="taker" if d["kind"] == "taker" else "limit",
        price=Decimal(str(d["price"])),
        count=Decimal(str(d["count"])),
        filled=Decimal(str(d["filled"])),
        status="resting",
        created_at=datetime.fromisoformat(str(d["created_at"])),
        updated_at=datetime.fromisoformat(str(d["updated_at"])),
        reason=str(d.get("reason", "")),
    )


def _resting_json(s: SimOrder) -> dict[str, Any]:
    return {
        "order": _order_json(s.order),
        "book_side": s.book_side,
        "book_price": s.book_price,
        "remaining": s.remaining,
        "placed_ns": s.placed_ns,
        "checked_ns": s.checked_ns,
        "state": {k: _state_value(v) for k, v in s.state.items()},
    }


def _resting_from(d: Mapping[str, Any]) -> SimOrder:
    return SimOrder(
        order=_order_from(d["order"]),
        book_side="yes" if d["book_side"] == "yes" else "no",
        book_price=int(d["book_price"]),
        remaining=int(d["remaining"]),
        placed_ns=int(d["placed_ns"]),
        checked_ns=int(d["checked_ns"]),
        state={str(k): _state_from(v) for k, v in dict(d["state"]).items()},
    )


def _book_json(b: _Book) -> dict[str, Any]:
    return {
        "event_ticker": b.event_ticker,
        "city": b.city,
        "side": b.side,
        "lots": [[str(lot.count), str(lot.price)] for lot in b.lots],
        "realized": str(b.realized),
        "fees": str(b.fees),
    }


def _book_from(d: Mapping[str, Any]) -> _Book:
    side = d.get("side")
    return _Book(
        event_ticker=str(d["event_ticker"]),
        city=str(d["city"]),
        side=None if side is None else ("yes" if side == "yes" else "no"),
        lots=[_Lot(Decimal(str(c)), Decimal(str(p))) for c, p in d["lots"]],
        realized=Decimal(str(d["realized"])),
        fees=Decimal(str(d["fees"])),
    )


def dump_venue(venue: SimulatedVenue, carried: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The venue's positions, resting orders and fill counter (plus ``carried``) as JSON."""
    carried = carried or {}
    books = dict(carried.get("books", {}))
    books.update({t: _book_json(b) for t, b in venue._books.items()})
    mine = {s.order.order_id for s in venue._resting.values()}
    resting = [r for r in carried.get("resting", []) if r["order"]["order_id"] not in mine]
    resting += [_resting_json(s) for s in venue._resting.values()]
    fee_types = dict(carried.get("fee_types", {}))
    fee_types.update(venue._fee_types)
    return {
        "version": STATE_VERSION,
        "fill_seq": max(_peek_fill_seq(venue), int(carried.get("fill_seq", 1))),
        "fee_types": fee_types,
        "books": books,
        "resting": resting,
    }


def restore_venue(
    venue: SimulatedVenue, state: Mapping[str, Any], tickers: Collection[str]
) -> Restored:
    """Put the saved positions and resting orders of ``tickers`` into a fresh ``venue``;
    return the rest as carried. Raises VenueStateError on a state it cannot read."""
    if state.get("version") != STATE_VERSION:
        raise VenueStateError(
            f"paper venue state version {state.get('version')!r}; this kwx reads {STATE_VERSION}"
        )
    if venue._books or venue._resting or venue.fills:
        raise VenueStateError("the venue must be fresh to restore a saved state into it")
    wanted = set(tickers)
    try:
        carried_books: dict[str, Any] = {}
        for ticker, raw in dict(state["books"]).items():
            if ticker in wanted:
                book = _book_from(raw)
                venue._books[ticker] = book
                venue._positions[ticker] = book.position(ticker)
            else:
                carried_books[ticker] = raw
        carried_resting: list[Any] = []
        restored = 0
        for raw in state["resting"]:
            if raw["order"]["ticker"] in wanted:
                sim = _resting_from(raw)
                venue._resting[sim.order.order_id] = sim
                venue._orders[sim.order.order_id] = sim.order
                restored += 1
            else:
                carried_resting.append(raw)
        fee_types = {str(k): str(v) for k, v in dict(state.get("fee_types", {})).items()}
        fill_seq = int(state["fill_seq"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise VenueStateError(f"paper venue state unreadable: {type(exc).__name__}: {exc}") from exc
    for event, fee_type in fee_types.items():
        venue._fee_types.setdefault(event, fee_type)
    venue._fill_seq = itertools.count(fill_seq)
    carried = {
        "books": carried_books,
        "resting": carried_resting,
        "fee_types": fee_types,
        "fill_seq": fill_seq,
    }
    held = sum(1 for p in venue._positions.values() if p.yes_count != 0)
    return Restored(held, restored, carried)
