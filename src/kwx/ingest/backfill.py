"""`kwx ingest backfill`: fetch a city's history from the real services into the store.

Work is cut into units — one source, one city, one climate day — each written in one
transaction together with its entry in meta.backfill_state. A unit is marked done only when
its data can no longer change (the markets are settled, the climate day is long over), so a
re-run fetches exactly what is missing or still moving, and an interrupted run resumes.
A unit that fails (a source down, a malformed payload) is recorded with the reason, keeps
nothing half-written, and the backfill goes on with the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg

from kwx.config import Settings
from kwx.domain.climate_day import climate_day_window
from kwx.domain.tickers import TickerError, parse_market_ticker
from kwx.ingest.guidance import LIVE_MODELS, maxima_frame
from kwx.ingest.normalize import ImportContext, market_record_batches
from kwx.ingest.state import done_units, mark
from kwx.registry import City
from kwx.sources.http import SourceError
from kwx.sources.iem import IemClient, obs_frame
from kwx.sources.kalshi_models import candles_frame, trades_frame
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.mos import mos_daily_max
from kwx.sources.nws import NwsClient, observations_frame
from kwx.sources.visualcrossing import VisualCrossingClient, vc_forecast_frame, vc_obs_frame
from kwx.store import writers
from kwx.store.bad_input import record_bad_input
from kwx.store.writers import Batch

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]

SOURCES = ("kalshi", "iem", "cli", "nws", "vc", "guidance")
# api.weather.gov keeps only about a week of station observations.
NWS_OBS_HISTORY = dt.timedelta(days=7)
SETTLED_STATUSES = frozenset({"finalized", "settled", "determined"})
# Observations of a climate day are final a few hours after it ends (late METAR corrections).
OBS_SETTLE_DELAY = dt.timedelta(hours=6)
# The final CLI of day D is issued the next morning; corrections can follow for days.
CLI_SETTLE_DELAY = dt.timedelta(days=3)


@dataclass
class UnitOutcome:
    source: str
    unit: str
    status: str  # done | partial | failed | skipped
    rows: int = 0
    message: str = ""


@dataclass
class BackfillSummary:
    outcomes: list[UnitOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes)


UnitHook = Callable[[UnitOutcome], None]


def job_name(source: str, city: City) -> str:
    return f"{source}:{city.key}"


def dates_between(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    return [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]


def _write_unit(
    conn: Conn,
    job: str,
    unit: str,
    batches: Iterable[Batch],
    status: str,
    detail: str | None = None,
) -> int:
    stored = 0
    with conn.transaction(), conn.cursor() as cur:
        for batch in batches:
            stored += batch.writer.write(cur, batch.frame, batch.params)
        mark(conn, job, unit, status, stored, detail)
    return stored


def _record_failure(conn: Conn, job: str, unit: str, exc: Exception) -> UnitOutcome:
    """Keep the failure (and any raw payload) for inspection; the unit stays to-do."""
    body = getattr(exc, "body", None)
    with conn.transaction():
        record_bad_input(
            conn,
            source=job.split(":", 1)[0],
            location=f"{job}/{unit}",
            field=None,
            message=str(exc),
            raw=None if body is None else str(body),
        )
        mark(conn, job, unit, "failed", 0, str(exc)[:1000])
    log.warning("backfill %s %s failed: %s", job, unit, exc)
    return UnitOutcome(job.split(":", 1)[0], unit, "failed", message=str(exc))


# --------------------------------------------------------------------------- kalshi
def _epoch(ts: object) -> int | None:
    if ts in (None, ""):
        return None
    return int(pd.Timestamp(str(ts)).timestamp())


def _markets_by_date(
    markets: Iterable[dict[str, Any]], dates: set[dt.date]
) -> dict[dt.date, list[dict[str, Any]]]:
    out: dict[dt.date, list[dict[str, Any]]] = {}
    for market in markets:
        try:
            day = parse_market_ticker(str(market.get("ticker", ""))).event.climate_date
        except TickerError:
            continue
        if day in dates:
            out.setdefault(day, []).append(market)
    return out


def backfill_kalshi(
    conn: Conn,
    rest: KalshiRest,
    city: City,
    dates: Sequence[dt.date],
    ctx: ImportContext,
    *,
    force: bool = False,
    on_unit: UnitHook | None = None,
) -> list[UnitOutcome]:
    """Markets, every public trade and the 1-minute candles of each climate day's event."""
    job = job_name("kalshi", city)
    done = set() if force else done_units(conn, job)
    todo = [d for d in dates if d.isoformat() not in done]
    outcomes = [
        UnitOutcome("kalshi", d.isoformat(), "skipped", message="already done")
        for d in dates
        if d.isoformat() in done
    ]
    if not todo:
        return outcomes
    # Markets of day D close around D+1 04:59Z-06:00Z; a two-day margin catches every zone.
    lo = dt.datetime.combine(min(todo), dt.time(), dt.UTC)
    hi = dt.datetime.combine(max(todo) + dt.timedelta(days=2), dt.time(), dt.UTC)
    try:
        markets = list(
            rest.iter_markets(series_ticker=city.series, min_close_ts=lo, max_close_ts=hi)
        )
    except SourceError as exc:
        return outcomes + [_record_failure(conn, job, d.isoformat(), exc) for d in todo]
    by_date = _markets_by_date(markets, set(todo))
    for day in todo:
        unit = day.isoformat()
        day_markets = by_date.get(day, [])
        if not day_markets:
            outcome = UnitOutcome("kalshi", unit, "partial", message="no markets listed")
            _write_unit(conn, job, unit, [], "partial", outcome.message)
        else:
            try:
                outcome = _kalshi_day(conn, rest, city, job, unit, day_markets, ctx)
            except (SourceError, ValueError) as exc:
                outcome = _record_failure(conn, job, unit, exc)
        outcomes.append(outcome)
        if on_unit is not None:
            on_unit(outcome)
    return outcomes


def _kalshi_day(
    conn: Conn,
    rest: KalshiRest,
    city: City,
    job: str,
    unit: str,
    markets: list[dict[str, Any]],
    ctx: ImportContext,
) -> UnitOutcome:
    batches = market_record_batches(markets, ctx, source=f"{rest.base_url}/markets")
    for market in markets:
        ticker = str(market["ticker"])
        start, end = _epoch(market.get("open_time")), _epoch(market.get("close_time"))
        trades = list(rest.iter_trades(ticker, min_ts=start, max_ts=end))
        if trades:
            batches.append(Batch(writers.TRADES, trades_frame(trades)))
        if start is not None and end is not None:
            candles = rest.get_candlesticks(city.series, ticker, start, end + 60)
            if candles:
                batches.append(Batch(writers.CANDLES, candles_frame(candles), {"price_scale": 1}))
    settled = all(str(m.get("status", "")) in SETTLED_STATUSES for m in markets)
    status = "done" if settled else "partial"
    rows = _write_unit(conn, job, unit, batches, status)
    return UnitOutcome("kalshi", unit, status, rows)


# --------------------------------------------------------------------------- IEM obs
def backfill_iem(
    conn: Conn,
    iem: IemClient,
    city: City,
    dates: Sequence[dt.date],
    *,
    now: dt.datetime,
    force: bool = False,
    one_minute: bool = True,
    on_unit: UnitHook | None = None,
) -> list[UnitOutcome]:
    """Station-exact observations: 1-minute ASOS and the METAR archive, per climate day."""

    def fetch(day: dt.date, start: dt.datetime, end: dt.datetime) -> list[Batch]:
        batches = [
            Batch(
                writers.OBS,
                obs_frame(iem.metar_archive(city.iem_station, start, end), city, "metar"),
            )
        ]
        if one_minute:
            batches.append(
                Batch(
                    writers.OBS,
                    obs_frame(iem.asos_1min(city.iem_station, start, end), city, "asos1min"),
                )
            )
        return batches

    return _per_day(
        conn,
        job_name("iem", city),
        "iem",
        dates,
        city,
        now=now,
        force=force,
        on_unit=on_unit,
        fetch=fetch,
    )


# Guidance for climate day D: the runs of D-2 00Z up to the end of D (day-ahead and same day).
GUIDANCE_RUNS_BEFORE = dt.timedelta(days=2)


def backfill_guidance(
    conn: Conn,
    iem: IemClient,
    city: City,
    dates: Sequence[dt.date],
    *,
    now: dt.datetime,
    force: bool = False,
    models: Sequence[str] = LIVE_MODELS,
    on_unit: UnitHook | None = None,
) -> list[UnitOutcome]:
    """Station MOS and NBM maxima (IEM's MOS archive) for each climate day, by issue time."""

    def fetch(day: dt.date, start: dt.datetime, end: dt.datetime) -> list[Batch]:
        runs_to = min(end, now)
        maxima = [
            m
            for model in models
            for m in mos_daily_max(iem, city, model, start - GUIDANCE_RUNS_BEFORE, runs_to)
            if m.target_date == day
        ]
        return [Batch(writers.GUIDANCE, maxima_frame(maxima, city, "iem_mos"))]

    return _per_day(
        conn,
        job_name("guidance", city),
        "guidance",
        dates,
        city,
        now=now,
        force=force,
        on_unit=on_unit,
        fetch=fetch,
    )


# --------------------------------------------------------------------------- NWS, VC
def _per_day(
    conn: Conn,
    job: str,
    source: str,
    dates: Sequence[dt.date],
    city: City,
    *,
    now: dt.datetime,
    force: bool,
    on_unit: UnitHook | None,
    fetch: Callable[[dt.date, dt.datetime, dt.datetime], list[Batch]],
    available: Callable[[dt.datetime, dt.datetime], str | None] | None = None,
) -> list[UnitOutcome]:
    """The common loop of the per-climate-day observation sources."""
    done = set() if force else done_units(conn, job)
    outcomes = []
    for day in dates:
        unit = day.isoformat()
        start, end = climate_day_window(city.timezone, day)
        why_not = (
            "already done"
            if unit in done
            else (
                "in the future" if start > now else (available(start, end) if available else None)
            )
        )
        if why_not:
            outcomes.append(UnitOutcome(source, unit, "skipped", message=why_not))
            continue
        try:
            batches = fetch(day, start, end)
            status = "done" if end + OBS_SETTLE_DELAY <= now else "partial"
            outcome = UnitOutcome(
                source, unit, status, _write_unit(conn, job, unit, batches, status)
            )
        except (SourceError, ValueError) as exc:
            outcome = _record_failure(conn, job, unit, exc)
        outcomes.append(outcome)
        if on_unit is not None:
            on_unit(outcome)
    return outcomes


def backfill_nws(
    conn: Conn,
    nws: NwsClient,
    city: City,
    dates: Sequence[dt.date],
    *,
    now: dt.datetime,
    force: bool = False,
    on_unit: UnitHook | None = None,
) -> list[UnitOutcome]:
    """api.weather.gov station observations (only the last week or so is served)."""

    def fetch(day: dt.date, start: dt.datetime, end: dt.datetime) -> list[Batch]:
        found = nws.station_observations(city.station_icao, start, end)
        return [Batch(writers.OBS, observations_frame(found, city))]

    def available(start: dt.datetime, end: dt.datetime) -> str | None:
        return "older than api.weather.gov keeps" if end < now - NWS_OBS_HISTORY else None

    return _per_day(
        conn,
        job_name("nws", city),
        "nws",
        dates,
        city,
        now=now,
        force=force,
        on_unit=on_unit,
        fetch=fetch,
        available=available,
    )


def backfill_vc(
    conn: Conn,
    vc: VisualCrossingClient,
    city: City,
    dates: Sequence[dt.date],
    *,
    now: dt.datetime,
    force: bool = False,
    on_unit: UnitHook | None = None,
) -> list[UnitOutcome]:
    """Visual Crossing: 5-minute observations pinned to the station, and the forecast as it
    was issued on the day (a historical forecast by basis date)."""

    def fetch(day: dt.date, start: dt.datetime, end: dt.datetime) -> list[Batch]:
        observed = vc.timeline(
            city.station_icao,
            start,
            end,
            include=("obs", "hours"),
            minute_interval=5,
            station=city.station_icao,
        )
        forecast = vc.timeline(
            f"{city.lat},{city.lon}",
            day,
            day + dt.timedelta(days=1),
            include=("fcst", "hours"),
            forecast_basis_date=day,
        )
        return [
            Batch(writers.OBS, vc_obs_frame(observed, city)),
            Batch(writers.FORECAST, vc_forecast_frame(forecast, city)),
        ]

    return _per_day(
        conn,
        job_name("vc", city),
        "vc",
        dates,
        city,
        now=now,
        force=force,
        on_unit=on_unit,
        fetch=fetch,
    )


# --------------------------------------------------------------------------- CLI
def backfill_cli(
    conn: Conn,
    iem: IemClient,
    city: City,
    dates: Sequence[dt.date],
    *,
    now: dt.datetime,
    force: bool = False,
    on_unit: UnitHook | None = None,
) -> list[UnitOutcome]:
    """The NWS climate reports (the settlement value), kept verbatim and as settlements.

    The CLI for day D is issued on D+1 (and corrected later), so the product list is read
    for the range plus a few days. Reports are written oldest first so the first-published
    final value stays in tmax_first.
    """
    from kwx.sources.cli_text import product_rows, settlement_rows, settlement_waves

    job = job_name("cli", city)
    done = set() if force else done_units(conn, job)
    todo = [d for d in dates if d.isoformat() not in done]
    outcomes = [
        UnitOutcome("cli", d.isoformat(), "skipped", message="already done")
        for d in dates
        if d.isoformat() in done
    ]
    if not todo:
        return outcomes
    try:
        reports = iem.cli_reports(city.cli_product, min(todo), max(todo) + dt.timedelta(days=4))
    except (SourceError, ValueError) as exc:
        return outcomes + [_record_failure(conn, job, d.isoformat(), exc) for d in todo]
    mine = [r for r in reports if r.pil == city.cli_product and r.climate_date in set(todo)]
    products = product_rows(mine, city)
    waves = settlement_waves(settlement_rows(mine, city))
    finals = {r.climate_date for r in mine if r.is_final and r.max_temp_f is not None}
    with conn.transaction(), conn.cursor() as cur:
        writers.PRODUCTS.write(cur, products)
        for wave in waves:
            writers.SETTLEMENTS.write(cur, wave)
        for day in todo:
            have = day in finals
            settled = day + CLI_SETTLE_DELAY <= now.date()
            status = "done" if have and settled else "partial"
            mark(
                conn, job, day.isoformat(), status, int(have), None if have else "no final CLI yet"
            )
            outcomes.append(UnitOutcome("cli", day.isoformat(), status, int(have)))
    if on_unit is not None:
        for outcome in outcomes:
            on_unit(outcome)
    return outcomes


def run_backfill(
    settings: Settings,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    sources: Sequence[str] = SOURCES,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    kalshi: KalshiRest | None = None,
    iem: IemClient | None = None,
    on_unit: UnitHook | None = None,
) -> BackfillSummary:
    """Every requested source for one city over a date range; clients default to settings."""
    from kwx.registry import default_registry
    from kwx.store.engine import connect

    now = now or dt.datetime.now(dt.UTC)
    dates = dates_between(date_from, date_to)
    ctx = ImportContext(default_registry(), settings.top_of_book_timezone)
    summary = BackfillSummary()
    own: list[KalshiRest | IemClient | NwsClient | VisualCrossingClient] = []
    try:
        with connect(settings, bulk=True) as conn:
            if "kalshi" in sources:
                if kalshi is None:
                    kalshi = KalshiRest.from_settings(settings)
                    own.append(kalshi)
                summary.outcomes += backfill_kalshi(
                    conn, kalshi, city, dates, ctx, force=force, on_unit=on_unit
                )
            if ("iem" in sources or "cli" in sources or "guidance" in sources) and iem is None:
                iem = IemClient.from_settings(settings)
                own.append(iem)
            if "iem" in sources:
                assert iem is not None
                summary.outcomes += backfill_iem(
                    conn, iem, city, dates, now=now, force=force, on_unit=on_unit
                )
            if "cli" in sources:
                assert iem is not None
                summary.outcomes += backfill_cli(
                    conn, iem, city, dates, now=now, force=force, on_unit=on_unit
                )
            if "guidance" in sources:
                assert iem is not None
                summary.outcomes += backfill_guidance(
                    conn, iem, city, dates, now=now, force=force, on_unit=on_unit
                )
            if "nws" in sources:
                nws = NwsClient.from_settings(settings)
                own.append(nws)
                summary.outcomes += backfill_nws(
                    conn, nws, city, dates, now=now, force=force, on_unit=on_unit
                )
            if "vc" in sources:
                if settings.vc_api_key is None:
                    summary.outcomes += [
                        UnitOutcome("vc", d.isoformat(), "skipped", message="VC_API_KEY is not set")
                        for d in dates
                    ]
                else:
                    vc = VisualCrossingClient.from_settings(settings)
                    own.append(vc)
                    summary.outcomes += backfill_vc(
                        conn, vc, city, dates, now=now, force=force, on_unit=on_unit
                    )
    finally:
        for client in own:
            client.close()
    return summary
