"""The quote model on real quotes: Chicago, May 2025, the one window with the exchange's bid/ask.

The files are cut to four climate days (markets, 1-minute candles with bid/ask, trades,
settlements, Visual Crossing and ERA5), imported by the real importer, weather-modelled with
parameters fitted on a 2024 month; the quote model is fitted on the first two days and checked
on the last two (never the days it saw). Then:

* the rebuilt quotes are no kinder than the real book (on average, and by the consumed-level
  rule) where the old rule was;
* the same backtest on prints only takes no taker fill better than the real touch by more than
  the bound, while the real-book run pays its slippage;
* the rebuilt quotes at a minute do not move when later trades are deleted (no look-ahead);
* every fill records its quote source and the split adds up to the run's P&L.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from kwx.backtest.loader import load_raw
from kwx.backtest.panel import build_panel, executable_quotes
from kwx.backtest.quote_check import (
    PRICE_BOUND_CENTS,
    check_fills,
    load_real_book,
    pnl_interval,
    without_edge_gate,
)
from kwx.backtest.quote_fit import fit_quote_model, latest_quote_model, save_quote_model
from kwx.backtest.quote_model import QuoteModel
from kwx.backtest.runner import QuoteMode, hide_book, run_backtest
from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.registry import default_registry
from kwx.store.engine import _embedded_server_url, connect
from tests.conftest import DATA, TEMPLATE_DB, needs_data, with_db

Conn = psycopg.Connection[tuple[object, ...]]
F = npt.NDArray[np.float64]
runner = CliRunner()
FIT = (dt.date(2025, 5, 3), dt.date(2025, 5, 4))
CHECK = (dt.date(2025, 5, 5), dt.date(2025, 5, 6))
DAYS = [FIT[0] + dt.timedelta(days=i) for i in range(4)]
EVENTS = [f"KXHIGHCHI-{d:%y%b%d}".upper() for d in DAYS]
WX_FIT = (dt.date(2024, 10, 12), dt.date(2024, 11, 11))
CHICAGO = default_registry().by_key("chicago")

pytestmark = needs_data()


def _cut(tmp: Path) -> None:
    kal, wx = DATA / "kalshi", DATA / "weather"
    for sub in ("markets", "candles", "trades", "era5", "vc", "settlements"):
        (tmp / sub).mkdir(parents=True)
    markets = pd.read_csv(
        kal / "markets" / "KXHIGHCHI_2025-05.csv", dtype=str, keep_default_na=False
    )
    markets[markets["event_ticker"].isin(EVENTS)].to_csv(
        tmp / "markets" / "KXHIGHCHI_2025-05.csv", index=False
    )

    def event(tickers: pd.Series) -> pd.Series:
        return tickers.str.rsplit("-", n=1).str[0].isin(EVENTS)

    candles = pd.read_parquet(kal / "candles_1m" / "KXHIGHCHI_2025-05.parquet")
    candles[event(candles["ticker"])].to_parquet(
        tmp / "candles" / "KXHIGHCHI_2025-05.parquet", index=False
    )
    trades = pd.read_parquet(kal / "trades" / "KXHIGHCHI_2025-05.parquet")
    trades[event(trades["ticker"])].to_parquet(
        tmp / "trades" / "KXHIGHCHI_2025-05.parquet", index=False
    )
    # The weather model's parameters come from a 2024 month (as in test_backtest_real).
    lo = pd.Timestamp(WX_FIT[0]) - pd.Timedelta(days=2)
    hi = pd.Timestamp(WX_FIT[1]) + pd.Timedelta(days=3)
    era5 = pd.read_csv(wx / "era5_hourly" / "KXHIGHCHI.csv", dtype=str)
    stamp = pd.to_datetime(era5["datetime"])
    era5[(stamp >= lo) & (stamp < hi)].to_csv(tmp / "era5" / "KXHIGHCHI.csv", index=False)
    shutil.copy(wx / "era5_hourly" / "KXHIGHCHI_2025-05.csv", tmp / "era5")
    vc = pd.read_parquet(wx / "vc_forecast_hourly" / "chicago.parquet")
    target = vc["target_datetime_utc"].dt.tz_localize(None)
    vc[(target >= lo) & (target < hi)].to_parquet(tmp / "vc" / "chicago.parquet", index=False)
    shutil.copy(wx / "vc_forecast_hourly" / "chicago_2025-05.parquet", tmp / "vc")
    shutil.copy(wx / "settlements" / "chicago.csv", tmp / "settlements")
    shutil.copy(wx / "settlements" / "chicago_2025-05.csv", tmp / "settlements")


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"kwx {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def real(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database of its own with the four days imported and weather-modelled."""
    name = f"qc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    url = with_db(pg_admin_url, name)
    tmp = tmp_path_factory.mktemp("quotecheck")
    settings = Settings(kwx_database_url=SecretStr(url), kwx_data_dir=tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWX_DATABASE_URL", url)
        mp.chdir(tmp)
        get_settings.cache_clear()
        _embedded_server_url.cache_clear()
        _cut(tmp / "data")
        _ok(["import", "--from-files", str(tmp / "data")])
        _ok(["weather", "fit-params", "--city", "chicago", "--from", str(WX_FIT[0]),
             "--to", str(WX_FIT[1])])  # fmt: skip
        _ok(["weather", "backfill", "--city", "chicago", "--from", str(DAYS[0]),
             "--to", str(DAYS[-1]), "--paths", "300"])  # fmt: skip
        yield settings
        get_settings.cache_clear()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def model(real: Settings) -> QuoteModel:
    with connect(real) as conn:
        fitted = fit_quote_model(conn, real, "chicago", *FIT)
        save_quote_model(conn, fitted, "test")
        stored = latest_quote_model(conn)
    assert stored is not None and stored[0] == "test"
    return stored[1]


def _mean_kindness(
    bid: np.ndarray, ask: np.ndarray, real_bid: np.ndarray, real_ask: np.ndarray
) -> float:
    """Mean over quoted minutes of how much better than the real touch the rebuilt one is to
    a taker (¢, both sides): real ask − rebuilt ask and rebuilt bid − real bid."""
    ok_a = np.isfinite(ask) & np.isfinite(real_ask)
    ok_b = np.isfinite(bid) & np.isfinite(real_bid)
    kinder = np.concatenate([(real_ask - ask)[ok_a], (bid - real_bid)[ok_b]])
    return 100.0 * float(np.mean(np.maximum(kinder, 0.0)))


def test_rebuilt_quotes_are_no_kinder_than_the_book(real: Settings, model: QuoteModel) -> None:
    with connect(real) as conn:
        raw = load_raw(conn, CHICAGO, *CHECK)
    real_panel = build_panel(raw)
    prints_panel = build_panel(hide_book(raw))
    rb, ra = real_panel["yes_bid"], real_panel["yes_ask"]
    bid, ask, source = executable_quotes(prints_panel, 120, model)
    assert (source[np.isfinite(ask) | np.isfinite(bid)] == 2).all()  # rebuilt, not book
    old_bid, old_ask, _ = executable_quotes(prints_panel, 120)
    new, old = _mean_kindness(bid, ask, rb, ra), _mean_kindness(old_bid, old_ask, rb, ra)
    assert new < old / 2, (new, old)
    ok = np.isfinite(ask) & np.isfinite(ra)
    assert np.mean(ask[ok] < ra[ok]) < 0.2  # the old rule: about a third of minutes
    # Never a 1 ¢ market where the prints crossed.
    crossed = prints_panel["tb_bid"] >= prints_panel["tb_ask"]
    both = crossed & np.isfinite(ask) & np.isfinite(bid)
    assert both.any() and ((ask - bid)[both] > 0.015).all()


def test_prints_only_taker_fills_are_not_better_than_the_real_book(
    real: Settings, model: QuoteModel
) -> None:
    with connect(real) as conn:
        book = load_real_book(conn, real, "chicago", *CHECK)
        variants: list[tuple[str, QuoteMode, QuoteModel | None]] = [
            ("real", "real", model),
            ("prints", "prints", model),
            ("legacy", "prints", None),  # the old rule, no quote model
        ]
        runs = {
            label: run_backtest(
                conn,
                real,
                "chicago",
                *CHECK,
                fill_model="taker",
                config=without_edge_gate(),
                classifier_horizon=None,
                write_report_file=False,
                journal=False,
                quotes=quotes,
                quote_model=qm,
                use_stored_quote_model=False,
            )
            for label, quotes, qm in variants
        }
    checked = {q: check_fills(book, out.fills)["taker"] for q, out in runs.items()}
    assert checked["real"]["n"] > 0
    assert checked["real"]["mean"] == pytest.approx(-1.0)  # the real run pays its slippage
    assert checked["prints"]["n"] > 0
    assert checked["prints"]["mean"] <= PRICE_BOUND_CENTS
    # The check can fail: the old rule's prints-only fills beat the real touch by more.
    assert checked["legacy"]["mean"] > PRICE_BOUND_CENTS
    del runs["legacy"]
    for q, out in runs.items():
        sources = {f.quote_source for f in out.fills}
        assert sources <= ({"real"} if q == "real" else {"rebuilt"})
        total = sum((r.pnl for r in out.quote_sources), Decimal(0))
        assert total == out.metrics.net_pnl
    assert runs["prints"].metrics.contracts_traded <= runs["real"].metrics.contracts_traded
    real_run = runs["real"]
    per = 100 * float(real_run.metrics.net_pnl / real_run.metrics.contracts_traded)
    interval = pnl_interval(real_run)
    assert interval is not None and interval[0] <= per <= interval[1]


def test_rebuilt_quotes_have_no_look_ahead(real: Settings, model: QuoteModel) -> None:
    """Drop every trade and candle from a cut on (in memory: load_raw commits, so a DELETE
    in the store would outlive the test): the quotes before the cut do not move."""
    cut = dt.datetime(2025, 5, 6, 17, 0, tzinfo=dt.UTC)
    with connect(real) as conn:
        raw = load_raw(conn, CHICAGO, *CHECK)
    cut_us = int(cut.timestamp()) * 1_000_000
    cut_min = int(cut.timestamp()) // 60
    past = replace(
        raw,
        trades=raw.trades[raw.trades["ts_us"] < cut_us],
        candles=raw.candles[raw.candles["minute"] < cut_min],
    )
    assert len(past.trades) < len(raw.trades)
    before = executable_quotes(build_panel(hide_book(raw)), 120, model)
    after = executable_quotes(build_panel(hide_book(past)), 120, model)
    e = 1
    t = int((cut - raw.events[e].day_start).total_seconds() // 60)
    for b, a in ((before[0], after[0]), (before[1], after[1]), (before[2], after[2])):
        np.testing.assert_array_equal(b[:e], a[:e])
        np.testing.assert_array_equal(b[e, : t + 1], a[e, : t + 1])
    assert not np.array_equal(before[1], after[1], equal_nan=True)  # the future did change


def test_quote_check_refuses_days_the_model_was_fitted_on(
    real: Settings, model: QuoteModel
) -> None:
    from kwx.backtest.quote_check import quote_check

    with connect(real) as conn, pytest.raises(ValueError, match="overlaps the checked days"):
        quote_check(conn, real, "chicago", FIT[1], CHECK[0], model, fill_models=["taker"])


def test_quotes_fit_and_check_commands(real: Settings) -> None:
    out = _ok(["quotes", "fit", "--from", str(FIT[0]), "--to", str(FIT[1]), "--version", "cli"])
    assert "quote model 'cli'" in out
    with connect(real) as conn:
        stored = latest_quote_model(conn, "cli")
    assert stored is not None and stored[1].fit_info_["fit_to"] == str(FIT[1])
    out = _ok(["quotes", "check", "--from", str(CHECK[0]), "--to", str(CHECK[1]),
               "--fit-from", str(FIT[0]), "--fit-to", str(FIT[1]), "--fill-model", "taker",
               "--json"])  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    taker = result["fill_models"]["taker"]
    assert taker["real"]["taker"]["mean"] == pytest.approx(-1.0)
    assert taker["price_check"] == "ok"
    assert result["quote_model_fit"]["fit_to"] == str(FIT[1])
    bad = runner.invoke(app, ["quotes", "check", "--from", str(FIT[1]), "--to", str(CHECK[0]),
                              "--fit-from", str(FIT[0]), "--fit-to", str(FIT[1])],
                        env={"COLUMNS": "300"})  # fmt: skip
    assert bad.exit_code == 1 and "overlaps the checked days" in bad.output
