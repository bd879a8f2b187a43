"""The check that a backtest from prints alone is no kinder than the same backtest on the real book.

Why: the quote model (:mod:`kwx.backtest.quote_model`) is only believable if, where the real
book is known, a run that cannot see it does not get better prices than the book offered. On a
real-quote window this runs the same strategy on the same days twice per fill model — on the
exchange's bid/ask, and on prints only (bid/ask hidden, the quote model rebuilding them) — and
scores:

* **the price check**: for each taker fill, how much better its price was than the real
  book's touch at that minute (the close of the minute before the fill, which is what the
  real-book run saw): ``real touch − price`` for a buy, ``price − real touch`` for a sell, in
  cents per contract, contract-weighted. The real-book run reads about −1 ¢ (the slippage).
  Target for the prints-only run: at most +1 ¢;
* **maker fills**: whether a real trade went through the limit (a print on the order's side
  strictly beyond its price) in the minute of the fill, and what the real mid did in the next
  5 and 30 minutes (adverse selection: the mid's value of what we bought minus what we paid);
* P&L per contract of each run, with a 95% interval resampling whole climate days, and the
  quote-source split.

The quote model must be fitted on days other than those checked (a ValueError otherwise): the
check is out of sample by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.backtest.ledger import FillRecord
from kwx.backtest.loader import MINUTES_PER_DAY, RawData, load_raw
from kwx.backtest.metrics import fill_pnl
from kwx.backtest.panel import Panel, build_panel
from kwx.backtest.quote_model import QuoteModel
from kwx.backtest.runner import BacktestOutcome, QuoteMode, run_backtest
from kwx.config import Settings
from kwx.registry import default_registry
from kwx.store.engine import connect
from kwx.strategy.config import StrategyConfig

__all__ = [
    "ADVERSE_MINUTES",
    "PRICE_BOUND_CENTS",
    "RealBook",
    "check_fills",
    "pnl_interval",
    "quote_check",
]

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]
PRICE_BOUND_CENTS: Final = 1.0
ADVERSE_MINUTES: Final = (5, 30)
FILL_MODEL_NAMES: Final = ("taker", "maker-a", "maker-b", "queue")
QUOTE_MODES: Final[tuple[QuoteMode, ...]] = ("real", "prints")


@dataclass
class RealBook:
    """The real touch, mid and prints of the checked days, to score fills against."""

    panel: Panel
    raw: RawData

    def _cell(self, fill: FillRecord) -> tuple[int, int, int] | None:
        for e, ev in enumerate(self.panel.events):
            if ev.event_ticker == fill.event_ticker:
                t = int((fill.ts - ev.day_start).total_seconds() // 60)
                if 0 <= t < MINUTES_PER_DAY:
                    return e, t, ev.tickers.index(fill.ticker)
        return None

    def taker_improvement_cents(self, fill: FillRecord) -> float | None:
        """How much better than the real touch at the fill's minute the fill's price was (¢);
        None when the real book had no quote on that side."""
        cell = self._cell(fill)
        if cell is None:
            return None
        bid = float(self.panel.cols["yes_bid"][cell])
        ask = float(self.panel.cols["yes_ask"][cell])
        price = float(fill.price)
        if fill.side == "yes":
            touch = ask if fill.action == "buy" else bid
        else:
            touch = 1.0 - bid if fill.action == "buy" else 1.0 - ask
        if touch != touch:  # NaN: no quote on that side
            return None
        better = touch - price if fill.action == "buy" else price - touch
        return 100.0 * better

    def traded_through(self, fill: FillRecord) -> bool:
        """Did a real print go strictly through the maker fill's price in the minute up to it?
        (A YES bid at P: a NO taker sold YES below P; a NO bid at P: a YES taker paid above
        1 − P.)"""
        tr = self.raw.trades
        tid = self.raw.tickers.index(fill.ticker)
        ts_us = int(fill.ts.timestamp() * 1_000_000)
        sel = (tr["tid"] == tid) & (tr["ts_us"] <= ts_us) & (tr["ts_us"] > ts_us - 60_000_000)
        yes_price = tr["price"][sel].astype(np.float64) / 1e6
        taker_yes = tr["taker_yes"][sel].astype(bool)
        p = float(fill.price)
        # Our bid's book side: buying YES (or selling NO) rests on YES bids.
        on_yes = (fill.side == "yes") == (fill.action == "buy")
        if on_yes:
            limit = p if fill.side == "yes" else 1.0 - p
            return bool(((~taker_yes) & (yes_price < limit - 1e-9)).any())
        limit = 1.0 - p if fill.side == "no" else p
        return bool((taker_yes & (yes_price > limit + 1e-9)).any())

    def mid_move_cents(self, fill: FillRecord, minutes: int) -> float | None:
        """The real mid ``minutes`` after the fill, valued for what we hold, minus the price
        (¢ per contract; negative = the market moved against the fill)."""
        cell = self._cell(fill)
        if cell is None:
            return None
        e, t, k = cell
        t2 = t + minutes
        if t2 >= MINUTES_PER_DAY:
            return None
        mid = float(self.panel.cols["mid"][e, t2, k])
        if mid != mid:
            return None
        value = mid if fill.side == "yes" else 1.0 - mid
        gain = value - float(fill.price)
        return 100.0 * (gain if fill.action == "buy" else -gain)


def load_real_book(
    conn: Conn, settings: Settings, city: str, date_from: dt.date, date_to: dt.date
) -> RealBook:
    raw = load_raw(
        conn,
        default_registry().resolve(city),
        date_from,
        date_to,
        connect_again=lambda: connect(settings),
    )
    return RealBook(build_panel(raw), raw)


def _weighted(values: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Contract-weighted mean and quantiles of (value, contracts) pairs."""
    if not values:
        return {"n": 0, "contracts": 0.0, "mean": None, "p10": None, "p50": None, "p90": None}
    v = np.array([x for x, _ in values])
    w = np.array([c for _, c in values])
    order = np.argsort(v)
    cum = np.cumsum(w[order]) / w.sum()

    def q(p: float) -> float:
        return float(v[order][np.searchsorted(cum, p)])

    return {
        "n": len(values),
        "contracts": float(w.sum()),
        "mean": float(np.average(v, weights=w)),
        "p10": q(0.1),
        "p50": q(0.5),
        "p90": q(0.9),
    }


def check_fills(book: RealBook, fills: Sequence[FillRecord]) -> dict[str, Any]:
    """The price check of taker fills and the trade-through / adverse selection of makers."""
    taker: list[tuple[float, float]] = []
    unpriced = 0
    for f in fills:
        if not f.is_taker:
            continue
        better = book.taker_improvement_cents(f)
        if better is None:
            unpriced += 1
        else:
            taker.append((better, float(f.count)))
    makers = [f for f in fills if not f.is_taker]
    through = [book.traded_through(f) for f in makers]
    adverse: dict[str, Any] = {}
    for m in ADVERSE_MINUTES:
        moves = [(book.mid_move_cents(f, m), float(f.count)) for f in makers]
        adverse[f"{m}m"] = _weighted([(x, c) for x, c in moves if x is not None])
    return {
        "taker": {**_weighted(taker), "no_real_quote": unpriced},
        "maker": {
            "n": len(makers),
            "contracts": float(sum(float(f.count) for f in makers)),
            "traded_through_share": float(np.mean(through)) if through else None,
            "mid_move_after_cents": adverse,
        },
    }


def _per_contract(out: BacktestOutcome) -> float | None:
    n = out.metrics.contracts_traded
    return None if n == 0 else 100.0 * float(out.metrics.net_pnl / n)


def pnl_interval(
    out: BacktestOutcome, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """95% interval of the P&L per contract (¢, fills held to settlement) resampling whole
    climate days: fills of one day share one weather outcome, so days are the units."""
    value = {s.ticker: 1.0 if s.result == "yes" else 0.0 for s in out.settlements}
    by_day: dict[str, list[float]] = {}
    for f in out.fills:
        if f.ticker not in value:
            continue
        day = by_day.setdefault(f.event_ticker, [0.0, 0.0])
        day[0] += float(fill_pnl(f, Decimal(int(value[f.ticker]))))
        day[1] += float(f.count)
    if len(by_day) < 2:
        return None
    arr = np.array(list(by_day.values()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(arr), size=(n_boot, len(arr)))
    pnl, n = arr[idx, 0].sum(axis=1), arr[idx, 1].sum(axis=1)
    ratio = 100.0 * pnl[n > 0] / n[n > 0]
    lo, hi = np.quantile(ratio, [0.025, 0.975])
    return float(lo), float(hi)


def without_edge_gate(config: StrategyConfig | None = None) -> StrategyConfig:
    """The strategy the check runs: the given one (default: the default) with the edge gate
    off. The check measures how kind rebuilt quotes are against the real book, and that needs
    fills; the edge gate would shut every cell not measured as open on other days, and whether
    to trade at all is the edge's question, not the quotes'."""
    base = config or StrategyConfig()
    return base.model_copy(
        update={"execution": base.execution.model_copy(update={"edge_gate": False})}
    )


def quote_check(
    conn: Conn,
    settings: Settings,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    model: QuoteModel,
    *,
    fill_models: Sequence[str] = FILL_MODEL_NAMES,
    config: StrategyConfig | None = None,
    mc_version: str | None = None,
    on_run: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the check on [date_from, date_to] with a model fitted elsewhere; returns the table
    (one entry per fill model) and the settings it ran with."""
    info = model.fit_info_
    if "fit_from" in info and "fit_to" in info:
        lo = dt.date.fromisoformat(str(info["fit_from"]))
        hi = dt.date.fromisoformat(str(info["fit_to"]))
        if lo <= date_to and date_from <= hi:
            raise ValueError(
                f"the quote model was fitted on {lo} → {hi}, which overlaps the checked days "
                f"{date_from} → {date_to}: fit it on other days"
            )
    book = load_real_book(conn, settings, city, date_from, date_to)
    rows: dict[str, Any] = {}
    for name in fill_models:
        runs: dict[str, Any] = {}
        for quotes in QUOTE_MODES:
            if on_run is not None:
                on_run(f"{name} on {quotes} quotes")
            out = run_backtest(
                conn,
                settings,
                city,
                date_from,
                date_to,
                fill_model=name,
                config=without_edge_gate(config),
                mc_version=mc_version,
                classifier_horizon=None,
                write_report_file=False,
                journal=False,
                quotes=quotes,
                quote_model=model,
            )
            m = out.metrics
            runs[quotes] = {
                "run_id": out.run_id,
                "contracts": float(m.contracts_traded),
                "taker_contracts": float(m.taker_contracts),
                "maker_contracts": float(m.maker_contracts),
                "net_pnl": float(m.net_pnl),
                "pnl_per_contract_cents": _per_contract(out),
                "pnl_per_contract_ci95": pnl_interval(out),
                "by_quote_source": [r.as_dict() for r in out.quote_sources],
                **check_fills(book, out.fills),
            }
        mean = runs["prints"]["taker"]["mean"]
        # No prints-only taker fill is no evidence either way: say so, never "ok".
        runs["price_check"] = (
            "no prints-only taker fills"
            if mean is None
            else ("ok" if mean <= PRICE_BOUND_CENTS else "fail")
        )
        rows[name] = runs
    return {
        "city": default_registry().resolve(city).key,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "quote_model_fit": {k: info.get(k) for k in ("city", "fit_from", "fit_to", "minutes")},
        "quote_model_params": {
            "q_ask": model.q_ask,
            "q_bid": model.q_bid,
            "touch_size": model.touch_size_,
            "levels": model.levels,
        },
        "price_bound_cents": PRICE_BOUND_CENTS,
        "fill_models": rows,
        "any_price_check_failed": any(r["price_check"] == "fail" for r in rows.values()),
    }
