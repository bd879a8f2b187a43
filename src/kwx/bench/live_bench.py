"""`kwx bench live`: tick-to-decision latency of the live loop for every bracket of one city.

A stored day is replayed event by event, in the simulator's own order
(:class:`kwx.sim.replay.ReplayData`): every print and every change of a market's book (its
visible touch: L2, top of book, candle quotes, or the trade-implied touch on days recorded as
prints only) is a *tick*, and so is every minute boundary (the minute's candle closes). For
each tick inside the event's climate day the clock starts, and the live loop's decision path
runs:

1. the tick is applied to the city's :class:`~kwx.live.market_data.LiveMarketData` (a print
   added; a new touch set as the quote of the current minute);
2. :class:`~kwx.live.features.LiveFeatures` recomputes the feed arrays with the backtest's
   functions (pooling p_mkt and p_wx with the city's newest fusion config, as the runner
   does) and builds the event's snapshot at the current minute, every bracket view built;
3. risk marks the account and decides its forced intents, the value strategy returns its
   intents, and risk checks each one;

and the clock stops when the intents are out. Orders are not sent (that is the exchange's
latency, not ours). The store's pmf.minute and wx.obs rows are read once up front and handed
to the market data as their minutes pass, as the loop's store reader would. Figures: p50, p99
and max per run; the JSON line gives the median of the runs' p50 and p99 and the worst max.
"""

from __future__ import annotations

import datetime as dt
import gc
import statistics
import time
from decimal import Decimal
from typing import Any, Final

import numpy as np
from rich.console import Console
from rich.progress import Progress

from kwx.backtest.loader import EventMeta, pick_mc_version
from kwx.config import get_settings
from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import climate_day_window
from kwx.engine.ports import AccountView
from kwx.live.features import LiveFeatures
from kwx.live.market_data import LiveMarketData
from kwx.pmf.fusion import FusionConfig, latest_config
from kwx.registry import default_registry
from kwx.sim.replay import ReplayBook, ReplayData, ReplayTrade
from kwx.store import migrate
from kwx.store.engine import connect
from kwx.strategy.risk import RiskManager
from kwx.strategy.value import ValueStrategy

__all__ = ["TARGET_P99_MS", "events_of", "run_live_benchmark"]

TARGET_P99_MS: Final = 20.0
_STRIKE_ORDER = {"less": 0, "less_or_equal": 0, "between": 1}


def events_of(data: ReplayData) -> list[EventMeta]:
    """The replayed day's event in ladder order, as the live loop builds it from the exchange."""
    markets = sorted(
        data.markets.values(),
        key=lambda m: (
            _STRIKE_ORDER.get(m.strike_type, 2),
            float(m.floor_strike if m.floor_strike is not None else m.cap_strike or 0),
            m.ticker,
        ),
    )
    start, _ = climate_day_window(data.city.timezone, data.day)
    fee_type = str(next(iter(data.series.values()), {}).get("fee_type") or "quadratic")
    return [
        EventMeta(
            event_ticker=markets[0].event_ticker,
            series_ticker=markets[0].series_ticker,
            city=data.city.key,
            climate_date=data.day,
            day_start=start,
            close_time=min(m.close_time for m in markets),
            tickers=tuple(m.ticker for m in markets),
            brackets=tuple(
                Bracket.from_strikes(m.strike_type, m.floor_strike, m.cap_strike) for m in markets
            ),
            results=tuple(None for _ in markets),
            fee_type=fee_type,
        )
    ]


def _ticks(data: ReplayData, day_start: dt.datetime) -> list[tuple[dt.datetime, str, Any]]:
    """(time, kind, payload) of every tick inside the climate day, minute boundaries
    included: ("trade", ReplayTrade), ("touch", (ticker, bid, ask)), ("minute", None)."""
    books = {t: ReplayBook(t, m.book_source, data.synthetic_size) for t, m in data.markets.items()}
    day_end = day_start + dt.timedelta(days=1)
    out: list[tuple[dt.datetime, str, Any]] = []
    next_minute = day_start
    for event in data.stream:
        if event.kind in ("close", "settle"):
            continue
        while next_minute <= event.ts and next_minute < day_end:
            out.append((next_minute, "minute", None))
            next_minute += dt.timedelta(minutes=1)
        book = books[event.ticker]
        changed = book.apply(event)
        inside = day_start <= event.ts < day_end
        if event.kind == "trade" and inside:
            out.append((event.ts, "trade", event.payload))
        if changed and inside:
            bids, asks = book.bids(), book.asks()
            out.append(
                (
                    event.ts,
                    "touch",
                    (event.ticker, bids[0][0] if bids else None, asks[0][0] if asks else None),
                )
            )
    return out


def _pmf_rows(conn: Any, tickers: list[str], mc_version: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT ticker, ts, p_mkt, p_wx, p_fused_norm, hazard_next_5m, hazard_next_60m, "
        "tmax_q50 FROM pmf.minute WHERE ticker = ANY(%s) AND mc_version = %s ORDER BY ts",
        (tickers, mc_version),
    ).fetchall()
    conn.commit()
    return list(rows)


def _one_run(
    data: ReplayData,
    events: list[EventMeta],
    mc_version: str,
    ticks: list[tuple[dt.datetime, str, Any]],
    pmf: list[tuple[Any, ...]],
    strategy: ValueStrategy,
    fusion: FusionConfig | None = None,
) -> tuple[list[float], int]:
    market = LiveMarketData(data.city.key, events, mc_version)
    features = LiveFeatures(strategy, fusion=fusion)
    risk = RiskManager(strategy.config.risk)
    day_start = events[0].day_start
    for t in data.trades:  # the prints before the climate day are history, not ticks
        if t.ts < day_start:
            market.add_trade(t.trade_id, t.ticker, t.ts, t.yes_price, t.count, t.taker_side)
    pmf_i = 0
    latencies: list[float] = []
    intents_out = 0
    gc.collect()
    for ts, kind, payload in ticks:
        minute = ts.replace(second=0, microsecond=0)
        while pmf_i < len(pmf) and pmf[pmf_i][1] <= minute:  # the store reader's job, untimed
            j = pmf_i
            while j < len(pmf) and pmf[j][1] == pmf[pmf_i][1]:
                j += 1
            market.add_pmf(pmf[pmf_i:j])
            pmf_i = j
        began = time.perf_counter()
        if kind == "trade":
            trade: ReplayTrade = payload
            market.add_trade(
                trade.trade_id,
                trade.ticker,
                trade.ts,
                trade.yes_price,
                trade.count,
                trade.taker_side,
            )
        elif kind == "touch":
            ticker, bid, ask = payload
            market.set_touch(
                ticker,
                minute,
                None if bid is None else float(bid),
                None if ask is None else float(ask),
            )
        row = market.minute_index(0, minute)
        features.compute(market.raw(), {0: row})
        snap = features.snapshot(0, row)
        snap.brackets  # noqa: B018 - every bracket view built, as the loop's log does
        state = risk.observe(snap, {}, [], [])
        account = AccountView({}, [], state)
        intents = risk.forced(snap, account) + strategy.on_event(snap, account)
        for intent in intents:
            risk.check(intent, snap, account)
        latencies.append((time.perf_counter() - began) * 1000.0)
        intents_out += len(intents)
    return latencies, intents_out


def run_live_benchmark(
    city: str = "chicago",
    day: dt.date = dt.date(2024, 12, 5),
    *,
    runs: int = 3,
    max_ticks: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Replay the day ``runs`` times through the decision path; figures as a dict."""
    target = default_registry().by_key(city)
    settings = get_settings()
    migrate.upgrade(settings)  # an empty store: the tables, then the check below says what to run
    with connect(settings) as conn:
        data = ReplayData.load(conn, target, day, synthetic_size=Decimal(25))
        events = events_of(data)
        mc_version = pick_mc_version(conn, target.key, day, day)
        pmf = _pmf_rows(conn, list(events[0].tickers), mc_version)
        if not pmf:
            raise ValueError(
                f"no pmf.minute rows of version {mc_version!r} for {target.key} on {day}: run "
                f"kwx weather backfill --city {target.key} --from {day} --to {day} first"
            )
        fusion = latest_config(conn, target.key, mc_version)  # as the live runner loads it
    ticks = _ticks(data, events[0].day_start)
    if max_ticks is not None and len(ticks) > max_ticks:
        idx = np.linspace(0, len(ticks) - 1, max_ticks).astype(int)
        ticks = [ticks[i] for i in sorted(set(idx.tolist()))]
    if not ticks:
        raise ValueError(f"{city} {day}: no ticks inside the climate day")
    strategy = ValueStrategy()
    per_run: list[dict[str, float]] = []
    worst = 0.0
    kinds: dict[str, int] = {}
    for _, kind, _ in ticks:
        kinds[kind] = kinds.get(kind, 0) + 1
    with Progress(console=console, transient=True, disable=console is None) as progress:
        task = progress.add_task("replaying ticks", total=runs)
        for _ in range(runs):
            lat, intents = _one_run(data, events, mc_version, ticks, pmf, strategy, fusion)
            arr = np.asarray(lat)
            per_run.append(
                {
                    "p50_ms": float(np.percentile(arr, 50)),
                    "p99_ms": float(np.percentile(arr, 99)),
                    "max_ms": float(arr.max()),
                    "mean_ms": float(arr.mean()),
                    "intents": float(intents),
                }
            )
            worst = max(worst, float(arr.max()))
            progress.advance(task)
    p50 = statistics.median(r["p50_ms"] for r in per_run)
    p99 = statistics.median(r["p99_ms"] for r in per_run)
    return {
        "bench": "live",
        "city": target.key,
        "date": day.isoformat(),
        "event": events[0].event_ticker,
        "brackets": len(events[0].tickers),
        "ticks": len(ticks),
        "fusion": None if fusion is None else fusion.version,
        "tick_kinds": kinds,
        "runs": runs,
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "max_ms": round(worst, 3),
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": p99 <= TARGET_P99_MS,
        "per_run": [{k: round(v, 3) for k, v in r.items()} for r in per_run],
    }
