"""The live loop computes what a backtest computes, from what was known at the minute.

:class:`~kwx.live.market_data.LiveMarketData` is fed the stored day as a live loop would hear
it (prints, pmf.minute and observation rows up to minute t only) and
:class:`~kwx.live.features.LiveFeatures` builds the snapshot at t; it must equal, bracket by
bracket and field by field, the backtest's snapshot at t from
:func:`kwx.backtest.runner.prepare` over the whole stored day. Adding everything after t must
not move it (no look-ahead). And the live weather model computes, for one minute, the value
the backfill stored for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from kwx.backtest.feed import HistoricalFeed
from kwx.backtest.loader import RawData
from kwx.backtest.runner import prepare
from kwx.config import Settings
from kwx.engine.ports import BracketView
from kwx.live.features import LiveFeatures
from kwx.live.market_data import LiveMarketData
from kwx.live.weather import LiveWeather
from kwx.store.engine import connect
from kwx.strategy.value import ValueStrategy
from tests.conftest import needs_data
from tests.live.conftest import CITY, DAY, EVENT

pytestmark = needs_data()
MINUTES = (0, 200, 521, 640, 641, 700, 905, 1100, 1320)


def _trades(settings: Settings) -> list[tuple[str, str, dt.datetime, Decimal, Decimal, str]]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT trade_id::text, ticker, created_time, yes_price, count_fp, taker_side "
            "FROM md.trades WHERE ticker LIKE %s ORDER BY created_time, trade_id",
            (EVENT + "-%",),
        ).fetchall()
    return [(str(r[0]), str(r[1]), r[2], r[3], r[4], str(r[5])) for r in rows]  # type: ignore[misc]


def _feed(
    market: LiveMarketData,
    raw: RawData,
    trades: list[tuple[str, str, dt.datetime, Decimal, Decimal, str]],
    upto: dt.datetime,
    after: bool = False,
) -> None:
    """Hand the stored rows known at ``upto`` (prints before it, model and observation rows
    at or before it) — or all the others, ``after`` — to the market data, as the stream and
    the store reader would."""
    for trade_id, ticker, ts, price, count, taker in trades:
        if (ts >= upto) == after:
            market.add_trade(trade_id, ticker, ts, price, count, taker)
    upto_us = int(upto.timestamp()) * 1_000_000
    rows = []
    for r in raw.pmf:
        minute_us = int(r["minute"]) * 60_000_000
        if (minute_us > upto_us) != after:  # the model's row for t is known at t
            continue
        ts = dt.datetime.fromtimestamp(minute_us // 1_000_000, tz=dt.UTC)
        vals = [None if math.isnan(float(r[c])) else float(r[c])
                for c in ("p_mkt", "p_wx", "p_fused_norm", "h5", "h60", "q50")]  # fmt: skip
        rows.append((raw.tickers[int(r["tid"])], ts, *vals))
    market.add_pmf(rows)
    market.add_obs(
        (int(o["rank"]), int(o["ts_us"]), float(o["temp"]))
        for o in raw.obs
        if (int(o["ts_us"]) > upto_us) == after
    )


def _same(a: BracketView, b: BracketView) -> None:
    for f in dataclasses.fields(BracketView):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "features":
            x, y = dict(x), dict(y)
            assert set(x) == set(y)
            for k in x:
                assert x[k] == pytest.approx(y[k], nan_ok=True, abs=1e-12), (a.ticker, k)
        elif isinstance(x, float):
            assert x == pytest.approx(y, nan_ok=True, abs=1e-12), (a.ticker, f.name)
        else:
            assert x == y, (a.ticker, f.name)


def test_live_snapshots_equal_the_backtest_and_ignore_the_future(day_settings: Settings) -> None:
    strategy = ValueStrategy()
    with connect(day_settings) as conn:
        prep = prepare(
            conn, day_settings, CITY.key, DAY, DAY, strategy=strategy, classifier_horizon=None
        )
    raw = prep.raw
    trades = _trades(day_settings)
    backtest = HistoricalFeed(prep.arrays, dense=True)
    event = raw.events[0]
    traded = 0
    for t in MINUTES:
        ts = event.day_start + dt.timedelta(minutes=t)
        market = LiveMarketData(CITY.key, [event], raw.mc_version)
        _feed(market, raw, trades, ts)
        features = LiveFeatures(strategy)
        features.compute(market.raw(), {0: t})
        live = features.snapshot(0, t)
        past = backtest.snapshot(0, t)
        assert live.screened == past.screened and live.tickers == past.tickers
        for k in range(len(live.tickers)):
            _same(live.bracket_at(k), past.bracket_at(k))
        traded += sum(b.p_wx is not None and b.yes_ask is not None for b in live.brackets)
        # Everything after t, known now, changes nothing at t.
        _feed(market, raw, trades, ts, after=True)
        features.compute(market.raw(), {0: t})
        again = features.snapshot(0, t)
        for k in range(len(live.tickers)):
            _same(again.bracket_at(k), live.bracket_at(k))
    assert traded > 10  # the comparison covered quoted, weather-modelled brackets


def test_live_weather_computes_the_backfills_minute(day_settings: Settings) -> None:
    """One minute of the model run live equals the backfill's value for that minute."""
    t = 1300
    with connect(day_settings) as conn:
        prep_rows = conn.execute(
            "SELECT ticker, ts, p_wx, hazard_next_5m, hazard_next_60m, tmax_q50 FROM pmf.minute "
            "WHERE city = %s AND mc_version = 'v1' AND ts = %s ORDER BY ticker",
            (CITY.key, _day_start() + dt.timedelta(minutes=t)),
        ).fetchall()
        assert len(prep_rows) == 6
        conn.execute(
            "DELETE FROM pmf.minute WHERE city = %s AND mc_version = 'v1' AND ts = %s",
            (CITY.key, _day_start() + dt.timedelta(minutes=t)),
        )
        conn.commit()
    event = _event(day_settings)
    weather = LiveWeather(day_settings, CITY, "v1", paths=500, background=False)
    weather.ensure(event, t)
    weather.ensure(event, t)  # asked twice, computed once
    assert (weather.stats.requested, weather.stats.computed, weather.stats.failed) == (1, 1, "")
    with connect(day_settings) as conn:
        again = conn.execute(
            "SELECT ticker, ts, p_wx, hazard_next_5m, hazard_next_60m, tmax_q50 FROM pmf.minute "
            "WHERE city = %s AND mc_version = 'v1' AND ts = %s ORDER BY ticker",
            (CITY.key, _day_start() + dt.timedelta(minutes=t)),
        ).fetchall()
    assert len(again) == len(prep_rows)
    for a, b in zip(again, prep_rows, strict=True):
        assert a[:2] == b[:2]
        np.testing.assert_allclose(
            np.array(a[2:], dtype=float), np.array(b[2:], dtype=float), rtol=0, atol=1e-12
        )


def _day_start() -> dt.datetime:
    from kwx.domain.climate_day import climate_day_window

    return climate_day_window(CITY.timezone, DAY)[0]


def _event(settings: Settings):  # type: ignore[no-untyped-def]
    from kwx.backtest.loader import load_raw

    with connect(settings) as conn:
        return load_raw(conn, CITY, DAY, DAY).events[0]
