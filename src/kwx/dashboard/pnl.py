"""P&L of any run — backtest, paper or live — from its fills in the ledger.

Every run is measured the same way: its ``exec.fills`` rows become the backtest's
``FillRecord`` and the settled results of ``kalshi.markets`` its ``Settlement``, and
:func:`kwx.backtest.metrics.compute_metrics` does the rest (positions netted in YES terms,
P&L realised at settlement, open positions left out and listed). So paper, live and
backtest runs sit side by side on one definition, and the numbers the page shows are the
backtest report's numbers for the same fills.

The quotes and fills each figure assumed are the run's: a backtest's ``fill_model`` (its
simulated fills against recorded quotes), a paper run's fill model on live quotes, a live
run's exchange fills.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from kwx.backtest.ledger import FillRecord, Settlement
from kwx.backtest.metrics import BacktestMetrics, compute_metrics
from kwx.backtest.report import metrics_dict
from kwx.dashboard.queries import Conn, _rows, jsonable

BACKTESTS_SHOWN: Final = 3
_CACHE_SIZE: Final = 64
_finished: dict[tuple[str, int, str], dict[str, Any]] = {}
_lock = threading.Lock()


def run_fills(conn: Conn, mode: str, run_id: int) -> list[FillRecord]:
    """The run's fills as the backtest ledger records them."""
    out: list[FillRecord] = []
    for r in _rows(
        conn,
        """
        SELECT f.fill_id, f.order_id, f.ticker, coalesce(f.event_ticker, m.event_ticker)
               AS event_ticker, coalesce(f.city, s.city_key) AS city, f.side, f.action,
               f.price, f.count_fp, f.fee, f.is_taker, f.ts, f.hazard_next_60m,
               f.p_fused_norm
        FROM exec.fills f
        LEFT JOIN kalshi.markets m ON m.ticker = f.ticker
        LEFT JOIN kalshi.series s ON s.series_ticker = m.series_ticker
        WHERE f.mode = %s AND f.run_id = %s ORDER BY f.ts, f.fill_id
        """,
        (mode, run_id),
    ):
        side: Literal["yes", "no"] = "yes" if r["side"] == "yes" else "no"
        action: Literal["buy", "sell"] = "buy" if r["action"] == "buy" else "sell"
        out.append(
            FillRecord(
                ts=r["ts"],
                ticker=r["ticker"],
                event_ticker=r["event_ticker"] or "",
                city=r["city"] or "",
                side=side,
                action=action,
                price=Decimal(r["price"]),
                count=Decimal(r["count_fp"]),
                fee=Decimal(r["fee"]),
                is_taker=bool(r["is_taker"]),
                hazard_next_60m=r["hazard_next_60m"],
                p_fused_norm=r["p_fused_norm"],
                order_id=str(r["order_id"] or r["fill_id"]),
            )
        )
    return out


def settlements(conn: Conn, tickers: list[str]) -> list[Settlement]:
    """Settled results (yes/no) of these markets from kalshi.markets."""
    out: list[Settlement] = []
    for r in _rows(
        conn,
        """
        SELECT m.ticker, m.event_ticker, coalesce(s.city_key, '') AS city, m.climate_date,
               m.result, coalesce(m.close_time, m.climate_date + 1) AS settled_at
        FROM kalshi.markets m LEFT JOIN kalshi.series s ON s.series_ticker = m.series_ticker
        WHERE m.ticker = ANY(%s) AND m.result IN ('yes', 'no')
        """,
        (tickers,),
    ):
        settled = r["settled_at"]
        if not isinstance(settled, dt.datetime):
            settled = dt.datetime.combine(settled, dt.time(), tzinfo=dt.UTC)
        out.append(
            Settlement(
                ticker=r["ticker"],
                event_ticker=r["event_ticker"],
                city=r["city"],
                climate_date=r["climate_date"],
                result="yes" if r["result"] == "yes" else "no",
                settled_at=settled,
            )
        )
    return out


def run_metrics(conn: Conn, mode: str, run_id: int) -> BacktestMetrics:
    """compute_metrics over the run's fills and the settled results of what it traded."""
    fills = run_fills(conn, mode, run_id)
    return compute_metrics(fills, settlements(conn, sorted({f.ticker for f in fills})))


def daily_interval(daily_pnl: list[float], level_z: float = 1.96) -> tuple[float, float, float]:
    """Mean daily P&L and its normal-approximation 95 % interval (days as the unit: the
    fills of one climate day share its weather, so days, not fills, are the draws)."""
    n = len(daily_pnl)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(daily_pnl) / n
    if n < 2:
        return mean, math.nan, math.nan
    var = sum((x - mean) ** 2 for x in daily_pnl) / (n - 1)
    half = level_z * math.sqrt(var / n)
    return mean, mean - half, mean + half


def _money(value: Any) -> Any:
    """Money strings at their exact value, with no storage padding: ``-24.65000000`` (a sum of
    numeric(8,6) prices) shows as ``-24.65``, a sub-cent fee keeps its digits."""
    if isinstance(value, dict):
        return {k: _money(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_money(v) for v in value]
    if isinstance(value, str) and "." in value:
        try:
            d = Decimal(value)
        except InvalidOperation:
            return value
        cents = d.quantize(Decimal("0.01"))
        return str(cents) if cents == d else str(d.normalize())
    return value


def run_summary(conn: Conn, run: dict[str, Any]) -> dict[str, Any]:
    """One run's card: what it assumed, its metrics, its daily series and the interval."""
    m = run_metrics(conn, str(run["mode"]), int(run["run_id"]))
    daily = [float(x) for x in m.daily["pnl"]] if not m.daily.empty else []
    mean, lo, hi = daily_interval(daily)
    card: dict[str, Any] = dict(run)
    out: dict[str, Any] = jsonable(
        {
            **card,
            "metrics": _money(metrics_dict(m)),
            "daily": {
                "date": [d.isoformat() for d in m.daily["climate_date"]] if daily else [],
                "pnl": daily,
                "equity": [float(x) for x in m.daily["equity"]] if daily else [],
                "drawdown": [float(x) for x in m.daily["drawdown"]] if daily else [],
            },
            "daily_mean": mean,
            "daily_lo": lo,
            "daily_hi": hi,
        }
    )
    return out


def runs(conn: Conn, backtests: int = BACKTESTS_SHOWN) -> list[dict[str, Any]]:
    """Every paper and live run, and the newest backtests, each with its assumptions."""
    live = _rows(
        conn,
        """
        SELECT run_id, mode, array_to_string(cities, ',') AS city, status,
               started_at, finished_at, params->>'fill_model' AS fill_model
        FROM exec.live_runs ORDER BY run_id DESC LIMIT 20
        """,
    )
    bt = _rows(
        conn,
        """
        SELECT run_id, 'backtest' AS mode, city, status, started_at, finished_at,
               coalesce(fill_model, params->>'fill_model') AS fill_model, date_from, date_to
        FROM backtest.runs ORDER BY run_id DESC LIMIT %s
        """,
        (backtests,),
    )
    return live + bt


def cached_summary(conn: Conn, run: dict[str, Any]) -> dict[str, Any]:
    """A finished run's card is computed once per process: its fills no longer change (the
    key includes its finish time). It is kept only once every position it took has settled
    (none open), since a later settlement changes its P&L; a running run's card is computed
    every time."""
    if run.get("finished_at") is None or run.get("status") == "running":
        return run_summary(conn, run)
    key = (str(run["mode"]), int(run["run_id"]), str(run["finished_at"]))
    with _lock:
        hit = _finished.get(key)
    if hit is not None:
        return hit
    card = run_summary(conn, run)
    if not card["metrics"]["open_positions"]:
        with _lock:
            if len(_finished) >= _CACHE_SIZE:
                _finished.pop(next(iter(_finished)))
            _finished[key] = card
    return card


def pnl_page(conn: Conn, backtests: int = BACKTESTS_SHOWN) -> list[dict[str, Any]]:
    """Every run's card for the P&L page (paper and live first, then backtests)."""
    return [cached_summary(conn, r) for r in runs(conn, backtests)]
