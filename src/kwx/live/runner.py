"""`kwx run`: the backtest's agent and strategy on live data, in paper or live mode.

:class:`LiveRun` wires, for the cities asked:

* the events being traded, from the exchange (``GET /markets`` of the city's series whose
  climate day contains now, or tomorrow's when already listed);
* per city, :class:`~kwx.live.market_data.LiveMarketData` (filled from REST history at start,
  then by the stream and the minute's REST reads), a :class:`~kwx.live.store_reader.StoreReader`
  for pmf.minute / wx.obs, and :class:`~kwx.live.features.LiveFeatures` (the backtest's
  arithmetic, the cross-day signal history from the store, the default move classifier);
* the venue: paper — the backtest's simulated venue and fill model on the live prints; live —
  :class:`~kwx.live.kalshi_venue.KalshiVenue`, reconciled with the exchange
  (:func:`~kwx.live.reconcile.reconcile`) before the first decision;
* :class:`~kwx.engine.agent.Agent` with :class:`~kwx.strategy.risk.RiskManager`, the value
  strategy wrapped so that every evaluation is logged, the journal flushed each minute.

When the feed ends (``until``, ``max_steps``, ``stop``) or anything fails, resting orders
are cancelled (``cancel_on_exit``), the ledger flushed and the run row closed. Live mode needs
``TRADE_MODE=live`` in the settings *and* ``allow_live`` (the command's ``--live`` flag).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import psycopg

from kwx.backtest.loader import EventMeta, pick_mc_version
from kwx.config import Settings, TradeMode
from kwx.domain import fees
from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import climate_day_window
from kwx.domain.tickers import parse_event_ticker
from kwx.engine.agent import Agent, AgentStats
from kwx.engine.ports import Clock, EventSnapshot, Fill, Venue
from kwx.engine.sim_venue import SimulatedVenue
from kwx.engine.venue_state import Restored, VenueStateError, dump_venue, restore_venue
from kwx.live.decision_log import LiveJournal, LoggedStrategy
from kwx.live.features import ClassifierTerm, LiveFeatures, SignalHistory, load_history
from kwx.live.kalshi_venue import KalshiVenue
from kwx.live.live_feed import CityFeed, LiveFeed
from kwx.live.market_data import LiveMarketData
from kwx.live.order_ledger import OrderLedger
from kwx.live.paper import paper_venue
from kwx.live.reconcile import ReconcileReport, reconcile
from kwx.live.run_state import (
    claim_run,
    close_interrupted,
    latest_paper_state,
    release_run,
    save_paper_state,
)
from kwx.live.source import MarketSource
from kwx.live.store_reader import StoreReader
from kwx.live.stream import MarketStream
from kwx.live.weather import LiveWeather
from kwx.pmf.edge import load_edge_cells
from kwx.pmf.fusion import latest_config
from kwx.registry import City, default_registry
from kwx.sources.http import RetryPolicy, SourceError
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import parse_time
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.kalshi_ws import DEFAULT_BACKOFF
from kwx.store.engine import connect
from kwx.strategy.config import StrategyConfig
from kwx.strategy.risk import RiskManager
from kwx.strategy.value import ValueStrategy

__all__ = ["LiveError", "LiveOptions", "LiveRun", "discover_events", "refuse_live"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[object, ...]]
_STRIKE_ORDER = {"less": 0, "less_or_equal": 0, "between": 1}


class LiveError(RuntimeError):
    """A run that cannot start (refused live mode, no markets, an unreadable exchange)."""


@dataclass
class LiveOptions:
    mode: Literal["paper", "live"]
    cities: list[str]
    fill_model: str = "queue"
    config: StrategyConfig = field(default_factory=StrategyConfig)
    until: dt.datetime | None = None
    max_steps: int | None = None
    confirm_rest: bool = True
    history: bool = True
    classifier_horizon: str | None = "5m"
    cancel_on_exit: bool = True
    resend_within: dt.timedelta = dt.timedelta(minutes=2)
    allow_live: bool = False
    weather: Literal["store", "live"] = "live"
    restore_paper: bool = True  # paper: continue from the previous paper run's venue state

    def params(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cities": self.cities,
            "fill_model": self.fill_model if self.mode == "paper" else "exchange",
            "until": self.until.isoformat() if self.until else None,
            "confirm_rest": self.confirm_rest,
            "history": self.history,
            "classifier_horizon": self.classifier_horizon,
            "cancel_on_exit": self.cancel_on_exit,
            "weather": self.weather,
            "restore_paper": self.restore_paper,
            **ValueStrategy(self.config).params(),
        }


def refuse_live(settings: Settings, allow_live: bool) -> str | None:
    """Why live trading must not start, or None. Both locks must be open."""
    if settings.trade_mode != TradeMode.LIVE:
        return (
            f"live trading needs TRADE_MODE=live in the settings (it is "
            f"{settings.trade_mode.value}); paper mode needs neither"
        )
    if not allow_live:
        return "live trading needs the explicit --live flag as well as TRADE_MODE=live"
    return None


def discover_events(
    rest: KalshiRest, city: City, now: dt.datetime, *, fee_type: str | None = None
) -> list[EventMeta]:
    """The city's events whose climate day contains ``now`` or starts within a day, with
    markets not yet closed, from the exchange's market list (ladder order)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for market in rest.iter_markets(
        series_ticker=city.series, min_close_ts=now - dt.timedelta(minutes=1), tier="live"
    ):
        grouped.setdefault(str(market["event_ticker"]), []).append(market)
    if fee_type is None:
        try:
            fee_type = str(rest.get_series(city.series).get("fee_type") or fees.QUADRATIC)
        except SourceError:  # an unreadable series: every KXHIGH* series is quadratic
            fee_type = fees.QUADRATIC
    out: list[EventMeta] = []
    for event_ticker, markets in grouped.items():
        day = parse_event_ticker(event_ticker).climate_date
        start, end = climate_day_window(city.timezone, day)
        if not (start - dt.timedelta(days=1) <= now < end):
            continue
        rows = []
        for m in markets:
            bracket = Bracket.from_strikes(
                str(m["strike_type"]), m.get("floor_strike"), m.get("cap_strike")
            )
            floor = m.get("floor_strike")
            cap = m.get("cap_strike")
            order = _STRIKE_ORDER.get(str(m["strike_type"]), 2)
            level = float(floor if floor is not None else cap if cap is not None else 0)
            rows.append((order, level, str(m["ticker"]), bracket, m))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        close = min(parse_time(r[4]["close_time"], field="close_time") for r in rows)
        out.append(
            EventMeta(
                event_ticker=event_ticker,
                series_ticker=city.series,
                city=city.key,
                climate_date=day,
                day_start=start,
                close_time=close,
                tickers=tuple(r[2] for r in rows),
                brackets=tuple(r[3] for r in rows),
                results=tuple(None for _ in rows),
                fee_type=fee_type,
            )
        )
    return sorted(out, key=lambda e: e.day_start)


@dataclass
class LiveOutcome:
    run_id: int
    mode: str
    agent: AgentStats
    reconcile: ReconcileReport | None
    stats: dict[str, Any]


class LiveRun:
    """One `kwx run` (see the module notes). Build, then :meth:`run`."""

    def __init__(
        self,
        conn: Conn,
        settings: Settings,
        options: LiveOptions,
        *,
        rest: KalshiRest,
        clock: Clock,
        ws_url: str | None,
        signer: KalshiSigner | None,
        ws_backoff: RetryPolicy = DEFAULT_BACKOFF,
        stop: threading.Event | None = None,
        on_step: Callable[[dt.datetime], None] | None = None,
    ) -> None:
        if options.mode == "live":
            why = refuse_live(settings, options.allow_live)
            if why is not None:
                raise LiveError(why)
        self.conn = conn
        self.settings = settings
        self.options = options
        self.rest = rest
        self.clock = clock
        self.ws_url = ws_url
        self.signer = signer
        self.ws_backoff = ws_backoff
        self.stop = stop or threading.Event()
        self.on_step = on_step
        # The measured edge cells, loaded once for the run (the gate is on by default).
        self.strategy = ValueStrategy(options.config, edge_cells=load_edge_cells(conn))
        self.run_id = 0
        self.markets: list[LiveMarketData] = []
        self.cities: list[CityFeed] = []
        self.stream: MarketStream | None = None
        self.source: MarketSource | None = None
        self.venue: Venue | None = None
        self.journal: LiveJournal | None = None
        self.feed: LiveFeed | None = None
        self.logged: LoggedStrategy | None = None
        self.reconciled: ReconcileReport | None = None
        self.notes: list[str] = []
        self.interrupted: list[int] = []  # dead runs this start closed
        self.restored: Restored | None = None
        self.restored_from: int | None = None
        self._carried: dict[str, Any] | None = None
        self._ledger_conn: Any = None

    # ------------------------------------------------------------------ the run

    def run(self) -> LiveOutcome:
        with self._ledger_connection() as ledger_conn:
            self._ledger_conn = ledger_conn
            self._open_run()
            status = "failed"
            try:
                agent = self._build()
                stats = agent.run()
                status = "stopped" if self.stop.is_set() else "done"
            finally:
                self._shutdown(status)
        return LiveOutcome(self.run_id, self.options.mode, stats, self.reconciled, self.stats())

    @contextlib.contextmanager
    def _ledger_connection(self) -> Iterator[Conn | None]:
        if self.options.mode != "live":
            yield None
            return
        with connect(self.settings, autocommit=True) as conn:
            yield conn

    def _open_run(self) -> None:
        row = self.conn.execute(
            "INSERT INTO exec.live_runs (mode, cities, exchange, params) VALUES (%s, %s, %s, %s) "
            "RETURNING run_id",
            (
                self.options.mode,
                self.options.cities,
                self.rest.base_url,
                json.dumps(self.options.params(), default=str),
            ),
        ).fetchone()
        self.conn.commit()
        assert row is not None
        self.run_id = int(str(row[0]))
        claim_run(self.conn, self.run_id)
        self.interrupted = close_interrupted(self.conn, by_run=self.run_id)
        if self.interrupted:
            self.notes.append(
                "closed killed run(s) as interrupted: " + ", ".join(map(str, self.interrupted))
            )

    def _build(self) -> Agent:
        opts = self.options
        cfg = self.strategy.config
        now = self.clock.now()
        registry = default_registry()
        for key in opts.cities:
            city = registry.by_key(key)
            events = discover_events(self.rest, city, now)
            if not events:
                raise LiveError(
                    f"{city.key}: the exchange lists no {city.series} market whose climate day "
                    f"contains {now.isoformat()} (or starts within a day)"
                )
            first, last = events[0].climate_date, events[-1].climate_date
            mc_version = pick_mc_version(self.conn, city.key, first, last)
            market = LiveMarketData(city.key, events, mc_version)
            history = (
                load_history(self.conn, city, first, cfg.signals, mc_version)
                if opts.history
                else SignalHistory.empty(1)
            )
            classifier = self._classifier(city)
            block = self.strategy.entry_block(city.key)
            if block is not None:
                log.warning("%s: %s", city.key, block)
                self.notes.append(f"{city.key}: {block}")
            fusion = latest_config(self.conn, city.key, mc_version)
            if fusion is None:
                log.warning(
                    "%s: no fusion config for %s; minutes without a stored p_fused_norm trade "
                    "on the fixed fallback pool (run kwx fusion fit)",
                    city.key,
                    mc_version,
                )
            weather = (
                LiveWeather(self.settings, city, mc_version, paths=self.settings.mc_paths)
                if opts.weather == "live"
                else None
            )
            self.markets.append(market)
            self.cities.append(
                CityFeed(
                    market,
                    StoreReader(self.conn, market),
                    LiveFeatures(
                        self.strategy, history=history, classifier=classifier, fusion=fusion
                    ),
                    weather,
                )
            )
        tickers = [t for m in self.markets for t in m.tickers]
        fee_types = {e.event_ticker: e.fee_type for m in self.markets for e in m.events}
        if self.ws_url:
            self.stream = MarketStream(
                self.ws_url, tickers, signer=self.signer, backoff=self.ws_backoff
            )
        if opts.mode == "paper":
            paper = paper_venue(
                self.markets, opts.fill_model, cfg, run_id=self.run_id, fee_types=fee_types
            )
            if opts.restore_paper:
                self._restore_paper(paper, tickers)
            self.venue = paper
            self.journal = LiveJournal(self.conn, mode="paper", run_id=self.run_id)
            own = None
            private = None
        else:
            assert self._ledger_conn is not None
            ledger = OrderLedger(self._ledger_conn, mode="live", exchange=self.rest.base_url)
            event_info = {
                e.event_ticker: (e.city, e.fee_type) for m in self.markets for e in m.events
            }
            ticker_events = {
                t: e.event_ticker for m in self.markets for e in m.events for t in e.tickers
            }
            venue = KalshiVenue(
                self.rest,
                ledger,
                account=self.rest.base_url,
                run_id=self.run_id,
                events=event_info,
                ticker_events=ticker_events,
            )
            self.journal = LiveJournal(
                self.conn, mode="live", run_id=self.run_id, pending=venue.is_unresolved
            )
            venue.on_order = self.journal.order
            self.reconciled = reconcile(
                self.rest, ledger, venue, self.journal, now=now, resend_within=opts.resend_within
            )
            self.venue = venue
            own = venue.own_levels
            private = venue.sync
        self.source = MarketSource(
            self.rest,
            self.markets,
            stream=self.stream,
            confirm=opts.confirm_rest,
            own_levels=own,
            on_private=private,
        )
        self.source.backfill(now)
        if self.stream is not None:
            self.stream.start()
        self.feed = LiveFeed(
            clock=self.clock,
            source=self.source,
            cities=self.cities,
            until=opts.until,
            max_steps=opts.max_steps,
            stop=self.stop,
            after_step=self._after_step,
        )
        self.logged = LoggedStrategy(self.strategy, self.journal, extra=self._model_probabilities)
        return Agent(
            strategy=self.logged,
            risk=RiskManager(cfg.risk),
            clock=self.clock,
            feed=self.feed,
            venue=self.venue,
            journal=self.journal,
            fill_context=self._fill_context,
        )

    def _restore_paper(self, venue: SimulatedVenue, tickers: Sequence[str]) -> None:
        """Continue from the previous paper run on this exchange (see
        :mod:`kwx.engine.venue_state`): its positions and resting orders of our tickers."""
        found = latest_paper_state(self.conn, self.rest.base_url, self.run_id)
        if found is None:
            return
        run_id, state, alive = found
        if alive:
            # Two processes trading one paper account would each book the other's fills
            # never, and the later save would silently drop the earlier one's.
            raise LiveError(
                f"paper run {run_id} is still trading on {self.rest.base_url}: stop it first "
                "(or start this one with --fresh)"
            )
        try:
            self.restored = restore_venue(venue, state, tickers)
        except VenueStateError as exc:
            raise LiveError(f"paper run {run_id}: {exc} (start with --fresh to ignore it)") from exc
        self.restored_from = run_id
        self._carried = self.restored.carried
        self.notes.append(
            f"paper state restored from run {run_id}: {self.restored.positions} position(s), "
            f"{self.restored.resting} resting order(s)"
        )
        log.info("paper state restored from run %s: %s", run_id, self.restored.as_dict())

    def _classifier(self, city: City) -> ClassifierTerm | None:
        horizon = self.options.classifier_horizon
        if not horizon:
            return None
        # Ask the table first: importing the predict stack costs seconds (sklearn, numba).
        row = self.conn.execute(
            "SELECT 1 FROM model.calibration WHERE city = %s AND horizon = %s AND is_default",
            (city.key, horizon),
        ).fetchone()
        self.conn.commit()
        if row is None:
            self.notes.append(f"{city.key}: no default {horizon} classifier: the ε term of S is 0")
            return None
        try:
            from kwx.predict.api import load_default
        except ImportError:
            return None
        predictor = load_default(self.conn, self.settings, city.key, horizon)
        self.conn.commit()
        if predictor is None:
            self.notes.append(f"{city.key}: no default {horizon} classifier: the ε term of S is 0")
            return None
        return ClassifierTerm(predictor, city)

    def _model_probabilities(self, snap: EventSnapshot) -> dict[str, Any]:
        for city in self.cities:
            if snap.city == city.market.city:
                e = next(
                    (
                        i
                        for i, ev in enumerate(city.market.events)
                        if ev.event_ticker == snap.event_ticker
                    ),
                    None,
                )
                if e is not None:
                    t = city.market.minute_index(e, snap.ts)
                    return {"model_p_up": city.features.model_probabilities(snap.event_ticker, t)}
        return {"model_p_up": {}}

    def _fill_context(self, fill: Fill) -> tuple[float | None, float | None]:
        for city in self.cities:
            arrays = city.features.arrays
            if arrays is None or fill.ticker not in city.market.tid_of:
                continue
            for e, ev in enumerate(arrays.events):
                if fill.ticker in ev.tickers:
                    t = min(max(city.market.minute_index(e, fill.ts), 0), 1439)
                    k = ev.tickers.index(fill.ticker)
                    h = float(arrays.columns["hazard_next_60m"][e, t, k])
                    p = float(arrays.columns["p_fused_norm"][e, t, k])
                    return (None if h != h else h), (None if p != p else p)
        return None, None

    def _after_step(self, t: dt.datetime) -> None:
        self._save(t)
        if self.on_step is not None:
            self.on_step(t)

    def _save(self, t: dt.datetime) -> None:
        """The step's orders, fills, decisions, positions and (paper) venue state in one
        transaction: a kill at any instant leaves a state that matches exec.* exactly."""
        assert self.journal is not None
        with self.conn.transaction():
            self.journal.flush()
            self._write_positions(t)
            if isinstance(self.venue, SimulatedVenue):
                save_paper_state(self.conn, self.run_id, dump_venue(self.venue, self._carried), t)
        self.conn.commit()

    def _write_positions(self, t: dt.datetime) -> None:
        """exec.positions of this run (inside the caller's transaction)."""
        if self.venue is None:
            return
        rows = [
            (
                self.options.mode,
                self.run_id,
                p.ticker,
                p.yes_count,
                _q(p.cost),
                _q(p.realized),
                _q(p.fees),
                t,
            )
            for p in self.venue.positions().values()
        ]
        if not rows:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO exec.positions (mode, run_id, ticker, position_fp, cost, "
                "realized_pnl, fees, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (mode, run_id, ticker) DO UPDATE SET position_fp = "
                "excluded.position_fp, cost = excluded.cost, realized_pnl = "
                "excluded.realized_pnl, fees = excluded.fees, updated_at = excluded.updated_at",
                rows,
            )

    def cancel_all(self, reason: str) -> int:
        """Cancel every resting order of ours (the shutdown half of the kill switch)."""
        if self.venue is None:
            return 0
        now = self.clock.now()
        done = 0
        for order in list(self.venue.resting()):
            cancelled = self.venue.cancel(order.order_id, now, reason)
            if self.journal is not None:
                self.journal.order(cancelled)
            done += cancelled.status == "canceled"
        return done

    def _shutdown(self, status: str) -> None:
        try:
            if self.options.cancel_on_exit and self.venue is not None:
                n = self.cancel_all(f"run {status}: cancel on exit")
                if n:
                    self.notes.append(f"cancelled {n} resting order(s) on exit")
        finally:
            if self.stream is not None:
                self.stream.stop()
            for city in self.cities:
                if city.weather is not None:
                    city.weather.stop()
            if self.journal is not None:
                self._save(self.clock.now())
            self.conn.execute(
                "UPDATE exec.live_runs SET finished_at = now(), status = %s, stats = %s, "
                "notes = %s WHERE run_id = %s",
                (
                    status,
                    json.dumps(self.stats(), default=str),
                    json.dumps(self.notes),
                    self.run_id,
                ),
            )
            self.conn.commit()
            release_run(self.conn, self.run_id)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.run_id, "mode": self.options.mode}
        if self.feed is not None:
            steps = self.feed.stats
            out["steps"] = steps.steps
            out["snapshots"] = steps.snapshots
            out["late_steps"] = steps.late_steps
        if self.logged is not None:
            out["evaluations"] = self.logged.evaluations
        if self.journal is not None:
            out["decisions_logged"] = self.journal.decision_count
        if self.source is not None:
            out["source"] = {k: v for k, v in vars(self.source.stats).items() if k != "notes"}
        if self.stream is not None:
            out["stream"] = {
                "connects": self.stream.counts.connects,
                "disconnects": self.stream.counts.disconnects,
                "invalidations": self.stream.counts.invalidations,
                "events": self.stream.counts.events,
                "error": None if self.stream.error is None else str(self.stream.error),
            }
        if isinstance(self.venue, KalshiVenue):
            out["venue"] = vars(self.venue.stats)
        elif isinstance(self.venue, SimulatedVenue):
            out["venue"] = {"fills": len(self.venue.fills), "orders": len(self.venue.all_orders())}
        if self.reconciled is not None:
            out["reconcile"] = self.reconciled.as_dict()
        if self.restored is not None:
            out["restored"] = {"from_run": self.restored_from, **self.restored.as_dict()}
        if self.interrupted:
            out["interrupted_runs"] = self.interrupted
        out["weather"] = {
            c.market.city: vars(c.weather.stats) for c in self.cities if c.weather is not None
        }
        out["fusion"] = {
            c.market.city: None if c.features.fusion is None else c.features.fusion.version
            for c in self.cities
        }
        return out


def _q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001"))


def settings_signer(settings: Settings) -> KalshiSigner | None:
    if settings.kalshi_api_key_id is None or settings.kalshi_private_key_path is None:
        return None
    return KalshiSigner.from_pem_file(
        settings.kalshi_api_key_id.get_secret_value(), settings.kalshi_private_key_path
    )


def city_keys(names: Sequence[str]) -> list[str]:
    registry = default_registry()
    return [registry.by_key(n).key for n in names]
