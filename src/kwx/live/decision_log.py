"""Every strategy evaluation in exec.decisions, not only the ones that produced an order.

The agent (:mod:`kwx.engine.agent`) logs one row per *intent* with its risk verdict and
outcome. A live run must also show the minutes at which the strategy looked and decided to do
nothing, with what it saw, so :class:`LoggedStrategy` wraps the strategy and writes one
``kind: evaluation`` row per call (ticker = the event): every bracket's quotes, p_mkt, p_wx,
p_fused_norm, the probability traded on, hazards, S_j(t) and its terms, the panel features,
our positions, resting orders and the risk state, the move classifier's calibrated P(up)
where it was asked (``model_p_up``), and the intents returned. Together with the agent's
rows, the log replays every decision.

:class:`LiveJournal` is the agent's journal flushed every minute (a live run's ledger must
be current, not written at the end), leaving out orders whose outcome is still unknown: their
``pending`` row belongs to :mod:`kwx.live.order_ledger` until they are resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kwx.engine.agent import bracket_payload, intent_payload
from kwx.engine.journal import Conn, Journal
from kwx.engine.ports import (
    AccountView,
    EventSnapshot,
    Intent,
    Order,
    Strategy,
)

__all__ = ["LiveJournal", "LoggedStrategy"]


class LoggedStrategy:
    """A strategy whose every evaluation is written to the journal (see the module notes)."""

    def __init__(
        self,
        inner: Strategy,
        journal: Journal,
        *,
        extra: Callable[[EventSnapshot], dict[str, Any]] | None = None,
    ) -> None:
        self.inner = inner
        self.journal = journal
        self.extra = extra  # more of what the strategy saw (the classifier's P(up))
        self.name = inner.name
        self.evaluations = 0

    def params(self) -> dict[str, object]:
        return self.inner.params()

    def on_event(self, snapshot: EventSnapshot, account: AccountView) -> list[Intent]:
        intents = self.inner.on_event(snapshot, account)
        self.evaluations += 1
        risk = account.risk
        self.journal.decision(
            snapshot.ts,
            snapshot.event_ticker,
            {
                "kind": "evaluation",
                "event_ticker": snapshot.event_ticker,
                "city": snapshot.city,
                "screened": snapshot.screened,
                "minutes_to_close": snapshot.minutes_to_close,
                "risk": {
                    "killed": risk.killed,
                    "kill_reason": risk.kill_reason,
                    "no_new_orders": risk.no_new_orders,
                    "time_stop": risk.time_stop,
                    "exposure": risk.exposure,
                    "day_pnl_city": risk.day_pnl_city,
                    "day_pnl_global": risk.day_pnl_global,
                },
                "positions": {
                    t: p.yes_count
                    for t, p in account.positions.items()
                    if t in snapshot.tickers and p.yes_count != 0
                },
                "resting": [_resting(o) for o in account.resting],
                "brackets": {b.ticker: bracket_payload(b) for b in snapshot.brackets},
                "intents": [intent_payload(i) for i in intents],
                **(self.extra(snapshot) if self.extra is not None else {}),
            },
        )
        return intents


def _resting(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "ticker": o.ticker,
        "side": o.side,
        "action": o.action,
        "price": o.price,
        "remaining": o.remaining,
        "created_at": o.created_at,
    }


class LiveJournal(Journal):
    """The agent's journal, minus orders a venue still holds as pending."""

    def __init__(
        self,
        conn: Conn | None,
        *,
        mode: str,
        run_id: int | None,
        pending: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(conn, mode=mode, run_id=run_id)
        self.pending = pending

    def order(self, order: Order) -> None:
        if self.pending is not None and self.pending(order.client_order_id):
            return
        super().order(order)
