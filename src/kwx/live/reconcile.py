"""Restart safety: before a live run trades, the exchange and the ledger are made to agree.

The exchange is the truth; exec.* is our record of it. In this order:

1. **pending orders** (exec.orders rows written before a request was sent and never
   answered, see :mod:`kwx.live.order_ledger`): each is looked up at the exchange by its
   ``client_order_id``. Found: adopted (its ``order_id`` and state recorded). Not found: the
   request never arrived, and it is sent again *with the same id* — if it is younger than
   ``resend_within``; an older decision is stale (prices moved while we were down) and is
   marked ``expired`` instead. Either way it can exist at the exchange at most once;
2. **resting orders** (``GET /portfolio/orders?status=resting``): taken into the venue, ours
   matched to their ledger rows by client id, anyone else's kept as outside orders (they use
   the same position limits and are cancelled by the kill switch);
3. **positions** (``GET /portfolio/positions``): the venue's book starts from them;
4. **fills** (``GET /portfolio/fills``): every fill the ledger lacks is written to exec.fills
   (already part of the positions above, so never booked twice), and all are marked seen;
5. exec.positions gets the exchange's positions under the new run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import psycopg

from kwx.engine.journal import Journal
from kwx.live.kalshi_venue import KalshiVenue
from kwx.live.order_ledger import OrderLedger
from kwx.sources.http import SourceError
from kwx.sources.kalshi_models import OrderRequest
from kwx.sources.kalshi_rest import KalshiApiError, KalshiRest

__all__ = ["ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[object, ...]]


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)  # client ids found at the exchange
    resent: list[str] = field(default_factory=list)  # client ids sent again (same id)
    expired: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    resting: int = 0
    positions: int = 0
    fills_recorded: int = 0
    fills_known: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "adopted": self.adopted,
            "resent": self.resent,
            "expired": self.expired,
            "refused": self.refused,
            "resting": self.resting,
            "positions": self.positions,
            "fills_recorded": self.fills_recorded,
            "fills_known": self.fills_known,
        }


def reconcile(
    rest: KalshiRest,
    ledger: OrderLedger,
    venue: KalshiVenue,
    journal: Journal,
    *,
    now: dt.datetime,
    resend_within: dt.timedelta = dt.timedelta(minutes=2),
) -> ReconcileReport:
    """Steps 1–4 of the module notes; raises SourceError when the exchange cannot be read
    (trading must not start on a book we do not know)."""
    report = ReconcileReport()
    for row in ledger.unresolved():
        found = rest.find_order_by_client_id(row.client_order_id, ticker=row.ticker)
        if found is not None:
            venue.adopt(found)
            report.adopted.append(row.client_order_id)
            continue
        if now - row.created_at > resend_within:
            ledger.expired(row.client_order_id, f"not at the exchange at restart {now}")
            report.expired.append(row.client_order_id)
            continue
        body = row.raw.get("request")
        if not isinstance(body, dict):
            ledger.expired(row.client_order_id, "no request stored to resend")
            report.expired.append(row.client_order_id)
            continue
        request = _request(body)
        try:
            rest.create_order(request)
        except KalshiApiError as exc:
            ledger.refused(row.client_order_id, f"resend: {exc}")
            report.refused.append(row.client_order_id)
            continue
        again = rest.find_order_by_client_id(row.client_order_id, ticker=row.ticker)
        if again is None:
            raise SourceError("kalshi", f"resent order {row.client_order_id} is not listed")
        venue.adopt(again)
        report.resent.append(row.client_order_id)
    for wire in rest.iter_orders(status="resting"):
        venue.adopt(wire)
        report.resting += 1
    for pos in rest.iter_positions(settlement_status="unsettled"):
        venue.seed_position(pos)
        report.positions += 1
    known = ledger.known_fill_ids()
    for wf in rest.iter_fills():
        venue.mark_fill_seen(wf.fill_id)
        if not venue.knows_order(wf.order_id):
            # An order the exchange no longer lists is booked as an outside one.
            with contextlib.suppress(KalshiApiError):
                venue.adopt(rest.get_order(wf.order_id))
        if wf.fill_id in known:
            report.fills_known += 1
            continue
        journal.fill(venue.fill_of(wf), hazard_next_60m=None, p_fused_norm=None)
        report.fills_recorded += 1
    for order in venue.all_orders():
        journal.order(order)
    journal.flush()
    venue.start_fill_cursor(now)
    log.info("reconciled: %s", json.dumps(report.as_dict()))
    return report


def _request(body: dict[str, object]) -> OrderRequest:
    """The stored V2 body back as a request (same client id, same everything)."""
    from decimal import Decimal

    return OrderRequest(
        ticker=str(body["ticker"]),
        side="bid" if body["side"] == "bid" else "ask",
        count=Decimal(str(body["count"])),
        price=Decimal(str(body["price"])),
        time_in_force=(
            "immediate_or_cancel"
            if body["time_in_force"] == "immediate_or_cancel"
            else "fill_or_kill"
            if body["time_in_force"] == "fill_or_kill"
            else "good_till_canceled"
        ),
        client_order_id=str(body["client_order_id"]),
        post_only=bool(body.get("post_only", False)),
        reduce_only=bool(body.get("reduce_only", False)),
        cancel_order_on_pause=bool(body.get("cancel_order_on_pause", True)),
    )
