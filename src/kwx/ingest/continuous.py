"""`kwx ingest run`: keep the store current while markets trade.

A scheduler of independent jobs, each with its own period: open markets every 15 minutes,
candles and trades every minute, station observations every 2 minutes, the NWS hourly
forecast and the station guidance (MOS, NBM) every hour, and the CLI reports each morning.
Each job reads where the store already is (the last candle, the last trade, the last
observation) and fetches only what is newer, so a restart loses nothing and repeats nothing.
A failing job is logged, kept in meta.bad_input and retried on its next turn; the others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from kwx.domain.climate_day import climate_date_of, climate_day_window
from kwx.ingest.guidance import LIVE_MODELS, maxima_frame
from kwx.ingest.normalize import ImportContext, market_record_batches
from kwx.registry import City
from kwx.sources.http import SourceError
from kwx.sources.iem import IemClient, obs_frame
from kwx.sources.kalshi_models import candles_frame, trades_frame
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.mos import mos_daily_max
from kwx.sources.nws import GridPoint, NwsClient, forecast_frame
from kwx.store import writers
from kwx.store.bad_input import record_bad_input
from kwx.store.writers import Batch

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    period: dt.timedelta


JOBS = (
    JobSpec("markets", dt.timedelta(minutes=15)),
    JobSpec("market_data", dt.timedelta(minutes=1)),
    JobSpec("observations", dt.timedelta(minutes=2)),
    JobSpec("forecast", dt.timedelta(hours=1)),
    JobSpec("cli", dt.timedelta(minutes=30)),
    JobSpec("guidance", dt.timedelta(hours=1)),
)
# The guidance job looks back over the runs of the last 13 hours (two 6-hourly MOS cycles
# and a dozen hourly NBS runs), so a missed hour or a restart loses nothing.
GUIDANCE_LOOKBACK = dt.timedelta(hours=13)


@dataclass
class JobRun:
    job: str
    city: str
    rows: int = 0
    error: str | None = None


@dataclass
class ContinuousIngest:
    """The jobs for a set of cities; `run_due(now)` runs whatever is due at `now`."""

    conn: Conn
    cities: Sequence[City]
    ctx: ImportContext
    kalshi: KalshiRest | None = None
    iem: IemClient | None = None
    nws: NwsClient | None = None
    last_run: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)
    gridpoints: dict[str, GridPoint] = field(default_factory=dict)

    def due(self, now: dt.datetime) -> list[tuple[JobSpec, City]]:
        out = []
        for spec in JOBS:
            for city in self.cities:
                last = self.last_run.get((spec.name, city.key))
                if last is None or now - last >= spec.period:
                    out.append((spec, city))
        return out

    def run_due(self, now: dt.datetime) -> list[JobRun]:
        runs = []
        for spec, city in self.due(now):
            handler: Callable[[City, dt.datetime], int] = getattr(self, f"_job_{spec.name}")
            run = JobRun(spec.name, city.key)
            try:
                run.rows = handler(city, now)
            except (SourceError, ValueError) as exc:
                run.error = str(exc)
                self.conn.rollback()
                self._keep_failure(spec.name, city, exc)
            self.last_run[(spec.name, city.key)] = now
            runs.append(run)
        return runs

    # ------------------------------------------------------------------ helpers
    def _keep_failure(self, job: str, city: City, exc: Exception) -> None:
        log.warning("ingest %s %s failed: %s", job, city.key, exc)
        with self.conn.transaction():
            body = getattr(exc, "body", None)
            record_bad_input(
                self.conn,
                source=job,
                location=f"ingest-run/{city.key}",
                field=None,
                message=str(exc),
                raw=None if body is None else str(body),
            )

    def _write(self, batches: Sequence[Batch]) -> int:
        stored = 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            for batch in batches:
                stored += batch.writer.write(cur, batch.frame, batch.params)
        return stored

    def _scalar(self, sql: str, params: Sequence[object]) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        self.conn.commit()
        return None if row is None else row[0]

    def _open_markets(self, city: City, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
        rows = self.conn.execute(
            "SELECT ticker, open_time FROM kalshi.markets WHERE series_ticker = %s "
            "AND open_time <= %s AND close_time > %s - interval '5 minutes' ORDER BY ticker",
            (city.series, now, now),
        ).fetchall()
        self.conn.commit()
        return [(str(t), o) for t, o in rows if isinstance(o, dt.datetime)]

    def open_tickers(self, now: dt.datetime) -> list[str]:
        """Every open market of the followed cities (what the WebSocket should follow)."""
        return [t for city in self.cities for t, _ in self._open_markets(city, now)]

    # ------------------------------------------------------------------ jobs
    def _job_markets(self, city: City, now: dt.datetime) -> int:
        if self.kalshi is None:
            return 0
        markets = list(self.kalshi.iter_markets(series_ticker=city.series, status="open"))
        if not markets:
            return 0
        return self._write(market_record_batches(markets, self.ctx, source="kalshi/markets"))

    def _job_market_data(self, city: City, now: dt.datetime) -> int:
        """Candles and trades of every open market since what the store already has."""
        if self.kalshi is None:
            return 0
        batches: list[Batch] = []
        for ticker, opened in self._open_markets(city, now):
            last_candle = self._scalar(
                "SELECT max(ts) FROM md.candles_1m WHERE ticker = %s AND source = 'api'", (ticker,)
            )
            start = int((last_candle or opened).timestamp())
            candles = self.kalshi.get_candlesticks(city.series, ticker, start, int(now.timestamp()))
            # The candle of the minute in progress is not closed yet: never store it.
            closed = [c for c in candles if c.end_period_ts <= now.timestamp()]
            if closed:
                batches.append(Batch(writers.CANDLES, candles_frame(closed), {"price_scale": 1}))
            last_trade = self._scalar(
                "SELECT max(created_time) FROM md.trades WHERE ticker = %s", (ticker,)
            )
            since = int((last_trade or opened).timestamp())
            trades = list(
                self.kalshi.iter_trades(ticker, min_ts=since, max_ts=int(now.timestamp()))
            )
            if trades:
                batches.append(Batch(writers.TRADES, trades_frame(trades)))
        return self._write(batches)

    def _job_observations(self, city: City, now: dt.datetime) -> int:
        if self.iem is None:
            return 0
        start, _ = climate_day_window(city.timezone, climate_date_of(city.timezone, now))
        last = self._scalar(
            "SELECT max(ts) FROM wx.obs WHERE city = %s AND source = 'metar'", (city.key,)
        )
        since = max(start, last - dt.timedelta(hours=1)) if last else start
        readings = self.iem.metar_archive(city.iem_station, since, now + dt.timedelta(minutes=1))
        return self._write([Batch(writers.OBS, obs_frame(readings, city, "metar"))])

    def _job_forecast(self, city: City, now: dt.datetime) -> int:
        if self.nws is None:
            return 0
        grid = self.gridpoints.get(city.key)
        if grid is None:
            grid = self.gridpoints[city.key] = self.nws.point(city.lat, city.lon)
        forecast = self.nws.hourly_forecast(grid)
        frame = forecast_frame(forecast.periods, city, forecast.issued_at)
        return self._write([Batch(writers.FORECAST, frame)])

    def _job_guidance(self, city: City, now: dt.datetime) -> int:
        """Station MOS and NBM maxima of the recent runs, for today's climate day onwards."""
        if self.iem is None:
            return 0
        today = climate_date_of(city.timezone, now)
        maxima = [
            m
            for model in LIVE_MODELS
            for m in mos_daily_max(self.iem, city, model, now - GUIDANCE_LOOKBACK, now)
            if m.target_date >= today
        ]
        return self._write([Batch(writers.GUIDANCE, maxima_frame(maxima, city, "iem_mos"))])

    def _job_cli(self, city: City, now: dt.datetime) -> int:
        """Yesterday's final CLI arrives in the morning; corrections may follow."""
        if self.iem is None:
            return 0
        from kwx.sources.cli_text import product_rows, settlement_rows, settlement_waves

        today = climate_date_of(city.timezone, now)
        reports = [
            r
            for r in self.iem.cli_reports(city.cli_product, today - dt.timedelta(days=2), today)
            if r.pil == city.cli_product
        ]
        stored = 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            stored += writers.PRODUCTS.write(cur, product_rows(reports, city))
            for wave in settlement_waves(settlement_rows(reports, city)):
                stored += writers.SETTLEMENTS.write(cur, wave)
        return stored


def run_forever(
    ingest: ContinuousIngest,
    *,
    duration_s: float | None = None,
    tick_s: float = 5.0,
    clock: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_runs: Callable[[list[JobRun]], None] | None = None,
) -> int:
    """Run due jobs every tick until `duration_s` passes (forever when None)."""
    clock = clock or (lambda: dt.datetime.now(dt.UTC))
    started = time.monotonic()
    cycles = 0
    while duration_s is None or time.monotonic() - started < duration_s:
        runs = ingest.run_due(clock())
        cycles += 1
        if on_runs is not None and runs:
            on_runs(runs)
        sleep(tick_s)
    return cycles
