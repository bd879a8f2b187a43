"""`run_backtest`: one city and date range through the agent, the ledger, metrics and report.

The steps, each timed (``BacktestOutcome.timings``):

1. **load**: markets, candles, trades, pmf.minute, observations and L2 depth for the range in a
   few bulk queries (:mod:`kwx.backtest.loader`);
2. **features**: the panel in numpy (:mod:`kwx.backtest.panel`), the executable touch, the
   probability traded on, S_j(t) and the strategy's screen, all vectorised and causal;
3. **agent**: the same :class:`~kwx.engine.agent.Agent` paper and live mode run, here with a
   historical clock, the historical feed and the simulated venue with the chosen fill model;
   orders, fills and decisions go to exec.* under the run id;
4. **report**: fills and settlements to :func:`kwx.backtest.metrics.compute_metrics`, the
   reliability of p_fused_norm over the run's minutes, the HTML report, and the run's row
   in backtest.runs (params, metrics, notes, report path).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from kwx.backtest.assemble import feed_arrays
from kwx.backtest.edge_pnl import EdgeSection, cell_key, pnl_by_cell
from kwx.backtest.feed import FeedArrays, HistoricalFeed
from kwx.backtest.fills import make_fill_model
from kwx.backtest.ledger import FillRecord, Settlement, fills_frame
from kwx.backtest.loader import MINUTES_PER_DAY, RawData, load_raw
from kwx.backtest.metrics import BacktestMetrics, compute_metrics
from kwx.backtest.panel import Panel, build_panel, executable_quotes
from kwx.backtest.quote_fit import latest_quote_model
from kwx.backtest.quote_model import QuoteModel
from kwx.backtest.quote_split import QuoteSourceRow, quote_source_split, rebuilt_warning
from kwx.backtest.report import metrics_dict, write_report
from kwx.config import Settings
from kwx.engine.agent import Agent, AgentStats
from kwx.engine.clock import HistoricalClock
from kwx.engine.journal import Journal
from kwx.engine.ports import Fill
from kwx.engine.sim_venue import SimulatedVenue
from kwx.engine.tape import ArrayTape, MinuteBars, Prints
from kwx.pmf.edge import load_edge_cells
from kwx.pmf.metrics import reliability_curve
from kwx.predict.features import NUMERIC_COLUMNS
from kwx.registry import default_registry
from kwx.store.engine import connect
from kwx.strategy.config import StrategyConfig
from kwx.strategy.risk import RiskManager
from kwx.strategy.signals import SignalTerms, compute_signals, pooled_probability
from kwx.strategy.value import ValueStrategy

__all__ = ["BacktestOutcome", "Prepared", "prepare", "run_backtest"]

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]
T = MINUTES_PER_DAY
RELIABILITY_EVERY_MIN = 10
QuoteMode = Literal["real", "prints"]
QUOTE_SOURCE_NAMES = ("none", "real", "rebuilt", "rebuilt")  # by executable_quotes' source code


@dataclass
class BacktestOutcome:
    """What a run produced: its id, metrics, report, ledger records and notes."""

    run_id: int
    city: str
    date_from: dt.date
    date_to: dt.date
    fill_model: str
    metrics: BacktestMetrics
    report_path: Path | None
    fills: list[FillRecord]
    settlements: list[Settlement]
    notes: list[str]
    params: dict[str, Any]
    timings: dict[str, float]
    stats: AgentStats
    quote_sources: list[QuoteSourceRow] = field(default_factory=list)
    edge: EdgeSection | None = None

    def metrics_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "city": self.city,
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "fill_model": self.fill_model,
            **metrics_dict(self.metrics),
            "by_quote_source": [r.as_dict() for r in self.quote_sources],
            "edge_cells": None if self.edge is None else self.edge.as_json(),
        }


@dataclass
class Prepared:
    """A run's data, features and feed arrays (everything before the agent)."""

    raw: RawData
    panel: Panel
    arrays: FeedArrays
    notes: list[str] = field(default_factory=list)
    classifier: str | None = None


def _classifier_probabilities(
    conn: Conn,
    settings: Settings,
    city: str,
    horizon: str,
    panel: Panel,
    rows: npt.NDArray[np.bool_],
    notes: list[str],
) -> FloatArray | None:
    """Calibrated P(up) of the default classifier at ``rows`` (E, T, K), NaN elsewhere."""
    try:
        from kwx.predict.api import load_default
    except ImportError:
        notes.append("No move classifier module (kwx.predict.api): the ε term of S is 0.")
        return None
    predictor = load_default(conn, settings, city, horizon)
    conn.commit()
    if predictor is None:
        notes.append(
            f"No default calibrated classifier for {city}/{horizon} in model.calibration: "
            "the ε term of S is 0."
        )
        return None
    c = panel.cols
    sel = rows & ~np.isnan(c["mid"])
    e_idx, t_idx, k_idx = np.nonzero(sel)
    out = np.full(sel.shape, np.nan)
    if len(e_idx) == 0:
        return out
    events = panel.events
    day_start = np.array([np.datetime64(ev.day_start.replace(tzinfo=None), "m") for ev in events])
    ts = pd.to_datetime(day_start[e_idx] + t_idx.astype("timedelta64[m]")).tz_localize("UTC")
    zone = default_registry().by_key(city).timezone
    floor_grid = np.full(panel.tid_grid.shape, np.nan)
    cap_grid = np.full(panel.tid_grid.shape, np.nan)
    kind_grid = np.full(panel.tid_grid.shape, "", dtype=object)
    for e, ev in enumerate(events):
        for k, b in enumerate(ev.brackets):
            floor_grid[e, k] = np.nan if b.floor is None else float(b.floor)
            cap_grid[e, k] = np.nan if b.cap is None else float(b.cap)
            kind_grid[e, k] = str(b.strike_type)
    frame = pd.DataFrame(
        {
            "city": city,
            "ts": ts,
            "ts_local": ts.tz_convert(zone).tz_localize(None),
            "strike_type": kind_grid[e_idx, k_idx],
            "has_trade": c["has_trade"][sel] == 1.0,
            "floor_strike": floor_grid[e_idx, k_idx],
            "cap_strike": cap_grid[e_idx, k_idx],
        }
    )
    # The classifier reads exactly the panel columns it was trained on; the strikes are above.
    for name in NUMERIC_COLUMNS:
        if name in ("floor_strike", "cap_strike"):
            continue
        frame[name] = c[name][sel]
    out[sel] = predictor.predict_up(frame)
    notes.append(
        f"S uses the calibrated {predictor.model_type}/{predictor.method} classifier "
        f"(run {predictor.run_id}, horizon {horizon}) at the {len(frame):,} bracket-minutes "
        "that pass every entry gate but |S|; elsewhere its term is 0."
    )
    return out


def prepare(
    conn: Conn,
    settings: Settings,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    strategy: ValueStrategy,
    mc_version: str | None = None,
    classifier_horizon: str | None = "5m",
    quotes: QuoteMode = "real",
    quote_model: QuoteModel | None = None,
) -> Prepared:
    """Load the range and compute every array the feed replays.

    ``quotes="prints"`` hides the exchange's bid/ask (and the p_mkt / p_fused_norm stored
    from them) before anything is computed, so the run sees only what a prints-only history
    has: the check of how far a rebuilt-quote backtest is from the real book.
    """
    target = default_registry().resolve(city)
    raw = load_raw(
        conn,
        target,
        date_from,
        date_to,
        mc_version=mc_version,
        connect_again=lambda: connect(settings),
    )
    if quotes == "prints":
        raw = hide_book(raw)
    panel = build_panel(raw)
    cfg = strategy.config
    notes = [*raw.notes, *panel.notes]
    e_n, _, k_n = panel.shape
    c = panel.cols
    exists = np.broadcast_to((panel.tid_grid >= 0)[:, None, :], (e_n, T, k_n))
    bid, ask, source = executable_quotes(panel, cfg.signals.quote_max_age_min, quote_model)
    if (source >= 2).any() and quote_model is not None:
        info = quote_model.fit_info_
        notes.append(
            "Where the data has no bid/ask the touch is rebuilt by the quote model fitted on "
            f"real quotes ({info.get('city', '?')} {info.get('fit_from', '?')} → "
            f"{info.get('fit_to', '?')}): the ask at the {quote_model.q_ask:.0%} quantile and the "
            f"bid at the {1 - quote_model.q_bid:.0%} quantile of the real touch given the "
            "prints, never through a consumed level, crossed prints widened; takers fill at "
            f"most {quote_model.touch_size_:g} contracts a level over {quote_model.levels} "
            "levels."
        )
        overlap = _fit_overlap(quote_model, date_from, date_to)
        if overlap:
            notes.append(
                f"The quote model was fitted on {overlap} of this run's days: its rebuilt "
                "quotes are in-sample there."
            )
    elif (source >= 2).any():
        notes.append(
            "Where the data has no bid/ask (every 2023–24 market here: candles are rebuilt from "
            "trades), the touch is rebuilt from the prints: the ask is the last price a YES "
            "taker paid, the bid the last price a NO taker sold YES at, each at most "
            f"{cfg.signals.quote_max_age_min} min old; a crossed pair keeps the fresher side. "
            "No quote model is fitted in this store (kwx quotes fit): these quotes are KINDER "
            "than the real book (issue 13) and the P&L is not to be believed."
        )
    n_open = int((source[exists] > 0).sum())
    share_rebuilt = int((source[exists] >= 2).sum()) / max(n_open, 1)
    notes.append(
        f"Quote source: {share_rebuilt:.0%} of the quoted bracket-minutes are rebuilt from "
        "prints, the rest the exchange's bid/ask."
    )

    def flat(x: FloatArray) -> FloatArray:
        return x.reshape(e_n * T, k_n)

    p, fallback = pooled_probability(
        flat(c["p_fused_norm"]), flat(c["p_mkt"]), flat(c["p_wx"]), cfg.signals.fallback_w_wx
    )
    p = p.reshape(e_n, T, k_n)
    p[~exists] = np.nan
    n_fallback = int(fallback.reshape(e_n, T, k_n)[exists].sum())
    if n_fallback:
        share = n_fallback / max(int((~np.isnan(p)).sum()), 1)
        notes.append(
            f"p_fused_norm missing at {share:.0%} of the bracket-minutes traded on: there the "
            f"probability is the pool {cfg.signals.fallback_w_wx}·p_wx + "
            f"{1 - cfg.signals.fallback_w_wx}·p_mkt, renormalised."
        )
    day_of_row = np.repeat(np.array([ev.climate_date.toordinal() for ev in panel.events]), T)

    def signals(p_cal: FloatArray | None) -> SignalTerms:
        return compute_signals(
            ras=flat(c["ras"]),
            velocity=flat(c["velocity"]),
            flow=flat(c["flow_20m"]),
            hazard_60m=flat(c["hazard_next_60m"]),
            p_wx=flat(c["p_wx"]),
            p_cal=None if p_cal is None else flat(p_cal),
            exists=flat(exists.astype(np.float64)) > 0,
            day_of_row=day_of_row,
            config=cfg.signals,
        )

    gates_open = strategy.screen(
        p=p, yes_bid=bid, yes_ask=ask, volume_20m=c["volume_20m"], signal=None
    )
    p_cal = (
        _classifier_probabilities(
            conn, settings, target.key, classifier_horizon, panel, gates_open & exists, notes
        )
        if classifier_horizon
        else None
    )
    terms = signals(p_cal)
    arrays = feed_arrays(panel, strategy, p=p, bid=bid, ask=ask, quote_source=source, terms=terms)
    return Prepared(raw, panel, arrays, notes)


def hide_book(raw: RawData) -> RawData:
    """``raw`` as a prints-only history would have it: no bid/ask in the candles, and no
    p_mkt / p_fused_norm from pmf.minute (both were computed from the hidden quotes; p_mkt is
    recomputed from the panel, p_fused_norm falls back to the run's pool)."""
    candles = raw.candles.copy()
    candles["bid"] = np.nan
    candles["ask"] = np.nan
    pmf = raw.pmf.copy()
    if len(pmf):
        pmf["p_mkt"] = np.nan
        pmf["p_fused_norm"] = np.nan
    notes = [
        *raw.notes,
        "Prints only: the exchange's bid/ask were hidden, and pmf.minute's p_mkt and "
        "p_fused_norm (built from them) dropped.",
    ]
    return replace(raw, candles=candles, pmf=pmf, notes=notes)


def _fit_overlap(model: QuoteModel, date_from: dt.date, date_to: dt.date) -> int:
    """How many of the days [date_from, date_to] the model was fitted on."""
    info = model.fit_info_
    if "fit_from" not in info or "fit_to" not in info:
        return 0
    lo = max(dt.date.fromisoformat(str(info["fit_from"])), date_from)
    hi = min(dt.date.fromisoformat(str(info["fit_to"])), date_to)
    return max((hi - lo).days + 1, 0)


def build_tape(raw: RawData) -> ArrayTape:
    """Prints and minute bars per market from the loaded trades and candles."""
    prints: dict[str, Prints] = {}
    bars: dict[str, MinuteBars] = {}
    tr = raw.trades
    if len(tr):
        order = np.lexsort((tr["ts_us"], tr["tid"]))
        tid = tr["tid"][order].astype(np.int64)
        cuts = np.flatnonzero(np.diff(tid)) + 1
        for chunk in np.split(np.arange(len(tid)), cuts):
            rows = order[chunk]
            ticker = raw.tickers[int(tid[chunk[0]])]
            prints[ticker] = Prints(
                ts_ns=tr["ts_us"][rows].astype(np.int64) * 1_000,
                yes_price=tr["price"][rows].astype(np.int64),
                count=tr["count"][rows].astype(np.int64),
                taker_yes=tr["taker_yes"][rows].astype(bool),
            )
    cd = raw.candles
    traded = cd[cd["has_trade"] & ~np.isnan(cd["close"].astype(np.float64))]
    if len(traded):
        order = np.lexsort((traded["minute"], traded["tid"]))
        tid = traded["tid"][order].astype(np.int64)
        cuts = np.flatnonzero(np.diff(tid)) + 1
        for chunk in np.split(np.arange(len(tid)), cuts):
            rows = order[chunk]
            ticker = raw.tickers[int(tid[chunk[0]])]

            def micro(name: str, rows: npt.NDArray[np.int64] = rows) -> npt.NDArray[np.int64]:
                return np.rint(traded[name][rows].astype(np.float64) * 1e6).astype(np.int64)

            bars[ticker] = MinuteBars(
                start_ns=traded["minute"][rows].astype(np.int64) * 60_000_000_000,
                low=micro("low"),
                high=micro("high"),
                close=micro("close"),
                volume=np.rint(traded["volume"][rows].astype(np.float64) * 100).astype(np.int64),
            )
    return ArrayTape(prints, bars, raw.books)


def settlements_of(raw: RawData) -> tuple[list[Settlement], list[str]]:
    out: list[Settlement] = []
    unsettled: list[str] = []
    for ev in raw.events:
        for ticker, result in zip(ev.tickers, ev.results, strict=True):
            if result in ("yes", "no"):
                out.append(
                    Settlement(
                        ticker=ticker,
                        event_ticker=ev.event_ticker,
                        city=ev.city,
                        climate_date=ev.climate_date,
                        result="yes" if result == "yes" else "no",
                        settled_at=ev.close_time,
                    )
                )
            else:
                unsettled.append(ticker)
    return out, unsettled


def reliability_table(prep: Prepared) -> tuple[pd.DataFrame | None, str]:
    """Reliability of p_fused_norm (or, without it, the probability traded on) against the
    settled results, over every ``RELIABILITY_EVERY_MIN``-th minute of the run."""
    panel = prep.panel
    e_n, _, k_n = panel.shape
    y = np.full((e_n, k_n), np.nan)
    for e, ev in enumerate(panel.events):
        for k, result in enumerate(ev.results):
            if result in ("yes", "no"):
                y[e, k] = 1.0 if result == "yes" else 0.0
    name = "p_fused_norm"
    p = panel.cols["p_fused_norm"]
    if np.isnan(p).all():
        name, p = "p (fallback pool)", prep.arrays.columns["p"]
    sample = p[:, ::RELIABILITY_EVERY_MIN, :]
    yy = np.broadcast_to(y[:, None, :], sample.shape)
    ok = ~np.isnan(sample) & ~np.isnan(yy)
    if not ok.any():
        return None, name
    mean_p, freq, n = reliability_curve(sample[ok], yy[ok], n_bins=10)
    return pd.DataFrame({"mean_pred": mean_p, "frac_pos": freq, "count": n}), name


def _fill_context(prep: Prepared) -> Callable[[Fill], tuple[float | None, float | None]]:
    index = {ev.event_ticker: e for e, ev in enumerate(prep.panel.events)}
    cols = prep.arrays.columns

    def context(fill: Fill) -> tuple[float | None, float | None]:
        e = index.get(fill.event_ticker)
        if e is None:
            return None, None
        ev = prep.panel.events[e]
        t = int((fill.ts - ev.day_start).total_seconds() // 60)
        t = min(max(t, 0), T - 1)
        k = ev.tickers.index(fill.ticker)
        h = float(cols["hazard_next_60m"][e, t, k])
        p = float(cols["p_fused_norm"][e, t, k])
        return (None if h != h else h), (None if p != p else p)

    return context


def _quote_source_of(prep: Prepared) -> Callable[[Fill], str]:
    """The quote source of the fill's minute (the touch the venue used, or the minute a
    resting order filled in)."""
    index = {ev.event_ticker: e for e, ev in enumerate(prep.panel.events)}
    codes = prep.arrays.quote_source

    def source(fill: Fill) -> str:
        e = index.get(fill.event_ticker)
        if e is None:
            return ""
        ev = prep.panel.events[e]
        t = min(max(int((fill.ts - ev.day_start).total_seconds() // 60), 0), T - 1)
        return QUOTE_SOURCE_NAMES[int(codes[e, t, ev.tickers.index(fill.ticker)])]

    return source


def _edge_cell_of(prep: Prepared) -> Callable[[FillRecord], str]:
    """The edge cell of a fill's minute: its city, local hour of the climate day and the
    bracket's p_mkt in the panel at that minute."""
    index = {ev.event_ticker: e for e, ev in enumerate(prep.panel.events)}
    p_mkt = prep.panel.cols["p_mkt"]

    def cell_of(fill: FillRecord) -> str:
        e = index.get(fill.event_ticker)
        if e is None:
            return cell_key(fill.city, 0.0, None)
        ev = prep.panel.events[e]
        minutes = (fill.ts - ev.day_start).total_seconds() / 60.0
        t = min(max(int(minutes), 0), T - 1)
        p = float(p_mkt[e, t, ev.tickers.index(fill.ticker)])
        return cell_key(fill.city, minutes / 60.0, None if p != p else p)

    return cell_of


def _to_record(
    fill: Fill,
    context: Callable[[Fill], tuple[float | None, float | None]],
    quote_source: Callable[[Fill], str] | None = None,
) -> FillRecord:
    hazard, p_fn = context(fill)
    return FillRecord(
        ts=fill.ts,
        ticker=fill.ticker,
        event_ticker=fill.event_ticker,
        city=fill.city,
        side=fill.side,
        action=fill.action,
        price=fill.price,
        count=fill.count,
        fee=fill.fee,
        is_taker=fill.is_taker,
        hazard_next_60m=hazard,
        p_fused_norm=p_fn,
        order_id=fill.order_id,
        quote_source=quote_source(fill) if quote_source else "",
    )


def run_backtest(
    conn: Conn,
    settings: Settings,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    fill_model: str = "queue",
    config: StrategyConfig | None = None,
    mc_version: str | None = None,
    classifier_horizon: str | None = "5m",
    report_path: Path | None = None,
    write_report_file: bool = True,
    journal: bool = True,
    dense: bool = False,
    on_stage: Callable[[str], None] | None = None,
    quotes: QuoteMode = "real",
    quote_model: QuoteModel | None = None,
    use_stored_quote_model: bool = True,
) -> BacktestOutcome:
    """Backtest the value strategy on one city's climate days [date_from, date_to].

    ``report_path`` defaults to ``reports/backtest_<city>_<from>_<to>_<model>_<run>.html``
    under the current directory. ``dense`` replays every minute instead of skipping idle
    ones (same decisions, slower: a check). ``quotes="prints"`` hides the real bid/ask (see
    :func:`prepare`). ``quote_model`` rebuilds quotes where there is no bid/ask; by default the
    newest in ``backtest.quote_model`` (``use_stored_quote_model=False``: the legacy rule),
    and it also limits taker fills to its modelled depth. Raises ValueError (with a clear
    message) when the store has no markets for the range.
    """
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    target = default_registry().resolve(city)
    # The measured edge cells, loaded once for the run (the gate is on by default).
    cells = load_edge_cells(conn, [target.key])
    strategy = ValueStrategy(config, edge_cells=cells)
    model = make_fill_model(fill_model, slippage=strategy.config.execution.taker_slippage)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    quote_version = "given" if quote_model is not None else None
    if quote_model is None and use_stored_quote_model:
        stored = latest_quote_model(conn)
        if stored is not None:
            quote_version, quote_model = stored
    params: dict[str, Any] = {
        **strategy.params(),
        "fill_model": fill_model,
        "classifier_horizon": classifier_horizon,
        "quotes": quotes,
        "quote_model": quote_version,
    }
    row = conn.execute(
        "INSERT INTO backtest.runs (city, date_from, date_to, fill_model, params) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING run_id",
        (target.key, date_from, date_to, fill_model, json.dumps(params)),
    ).fetchone()
    conn.commit()
    assert row is not None
    run_id = int(str(row[0]))

    def stage(name: str) -> None:
        if on_stage is not None:
            on_stage(name)

    stage("load")
    prep = prepare(
        conn,
        settings,
        target.key,
        date_from,
        date_to,
        strategy=strategy,
        mc_version=mc_version,
        classifier_horizon=classifier_horizon,
        quotes=quotes,
        quote_model=quote_model,
    )
    timings["prepare_s"] = time.perf_counter() - started
    params["mc_version"] = prep.raw.mc_version
    stage("agent")
    t0 = time.perf_counter()
    tape = build_tape(prep.raw)
    venue = SimulatedVenue(
        tape,
        model,
        fee_types={ev.event_ticker: ev.fee_type for ev in prep.panel.events},
        id_prefix=f"bt{run_id}",
        taker_levels=None if quote_model is None else quote_model.levels_for,
    )
    feed = HistoricalFeed(prep.arrays, dense=dense)
    context = _fill_context(prep)
    agent = Agent(
        strategy=strategy,
        risk=RiskManager(strategy.config.risk),
        clock=HistoricalClock(prep.panel.events[0].day_start),
        feed=feed,
        venue=venue,
        journal=Journal(conn if journal else None, mode="backtest", run_id=run_id),
        fill_context=context,
    )
    stats = agent.run()
    timings["agent_s"] = time.perf_counter() - t0

    stage("report")
    t0 = time.perf_counter()
    source_of = _quote_source_of(prep)
    fills = [_to_record(f, context, source_of) for f in venue.fills]
    settlements, unsettled = settlements_of(prep.raw)
    metrics = compute_metrics(fills, settlements)
    quote_sources = quote_source_split(fills, settlements)
    block = strategy.entry_block(target.key)
    edge = EdgeSection(
        gate_on=strategy.config.execution.edge_gate,
        open_cells=[c.label for c in cells.open_cells(target.key)],
        block=block,
        by_cell=pnl_by_cell(fills, settlements, _edge_cell_of(prep), cells),
    )
    notes = [*([block] if block else []), *prep.notes, *model.assumptions()]
    warning = rebuilt_warning(quote_sources)
    if warning:
        notes.insert(0, warning)
    traded_unsettled = sorted({f.ticker for f in fills} & set(unsettled))
    if traded_unsettled:
        notes.append(
            f"{len(traded_unsettled)} traded market(s) have no settled result "
            "(kalshi.markets.result and wx.settlement both missing): left out of P&L."
        )
    reliability, rel_name = reliability_table(prep)
    notes.append(
        f"Reliability: {rel_name} from pmf.minute ({prep.raw.mc_version}) against the settled "
        f"results, every {RELIABILITY_EVERY_MIN}th minute of the run's climate days."
    )
    notes.append(
        f"Run {run_id}: {len(prep.panel.events)} climate days, {stats.snapshots:,} event-minutes "
        f"visited of {len(prep.panel.events) * T:,}, {stats.strategy_calls:,} strategy calls."
    )
    path: Path | None = None
    if write_report_file:
        path = report_path or Path("reports") / (
            f"backtest_{target.key}_{date_from}_{date_to}_{fill_model}_{run_id}.html"
        )
        write_report(
            path,
            title=f"kwx backtest — {target.name} {date_from} → {date_to} ({fill_model} fills)",
            metrics=metrics,
            fills_frame=fills_frame(fills),
            settlements=settlements,
            reliability=reliability,
            notes=notes,
            quote_sources=quote_sources,
            edge=edge,
        )
    timings["report_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    outcome = BacktestOutcome(
        run_id=run_id,
        city=target.key,
        date_from=date_from,
        date_to=date_to,
        fill_model=fill_model,
        metrics=metrics,
        report_path=path,
        fills=fills,
        settlements=settlements,
        notes=notes,
        params=params,
        timings=timings,
        stats=stats,
        quote_sources=quote_sources,
        edge=edge,
    )
    conn.execute(
        "UPDATE backtest.runs SET params = %s, metrics = %s, report_path = %s, "
        "finished_at = now(), status = 'done', mc_version = %s, notes = %s, elapsed_s = %s "
        "WHERE run_id = %s",
        (
            json.dumps(params),
            json.dumps(outcome.metrics_dict(), default=str),
            str(path) if path else None,
            prep.raw.mc_version,
            json.dumps(notes),
            timings["total_s"],
            run_id,
        ),
    )
    conn.commit()
    return outcome
