"""`kwx evaluate` on real Chicago days cut from ../shared/data, end to end through the CLI.

Three scored days (2024-11-12 → 14) after the settled days of the 40 before; the weather
model is fitted on the 60 days before. Checked: no fit saw a scored day (every stored training
range ends two days before the first), the figures are the report's own (gain = log-loss
difference, verdict from the interval), the backtest's P&L is the ledger's, the JSON line is
last and strict, the page is written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import get_settings
from kwx.evaluate.run import verdict
from kwx.store.engine import _embedded_server_url
from tests.conftest import DATA, TEMPLATE_DB, needs_data, with_db

runner = CliRunner()
SCORED = (dt.date(2024, 11, 12), dt.date(2024, 11, 14))
WINDOW_FROM = dt.date(2024, 10, 2)  # 40 days before the fits end
WEATHER_FROM = dt.date(2024, 9, 12)
FITS_END = dt.date(2024, 11, 10)

pytestmark = needs_data()


def _cut(tmp: Path) -> None:
    kal, wx = DATA / "kalshi", DATA / "weather"
    (tmp / "markets").mkdir(parents=True)
    markets = pd.read_csv(kal / "markets" / "KXHIGHCHI.csv", dtype=str, keep_default_na=False)
    day = pd.to_datetime(markets["file_date"]).dt.date
    markets = markets[(day >= WINDOW_FROM) & (day <= SCORED[1])]
    markets.to_csv(tmp / "markets" / "KXHIGHCHI.csv", index=False)
    (tmp / "trades").mkdir()
    trades = pd.read_parquet(kal / "trades" / "KXHIGHCHI.parquet")
    keep = trades["ticker"].isin(set(markets["ticker"]))
    trades[keep].to_parquet(tmp / "trades" / "KXHIGHCHI.parquet", index=False)
    lo = pd.Timestamp(WEATHER_FROM) - pd.Timedelta(days=3)
    hi = pd.Timestamp(SCORED[1]) + pd.Timedelta(days=3)
    (tmp / "era5").mkdir()
    era5 = pd.read_csv(wx / "era5_hourly" / "KXHIGHCHI.csv", dtype=str)
    stamp = pd.to_datetime(era5["datetime"])
    era5[(stamp >= lo) & (stamp < hi)].to_csv(tmp / "era5" / "KXHIGHCHI.csv", index=False)
    (tmp / "vc").mkdir()
    vc = pd.read_parquet(wx / "vc_forecast_hourly" / "chicago.parquet")
    target = vc["target_datetime_utc"].dt.tz_localize(None)
    vc[(target >= lo) & (target < hi)].to_parquet(tmp / "vc" / "chicago.parquet", index=False)
    (tmp / "settlements").mkdir()
    settled = pd.read_csv(wx / "settlements" / "chicago.csv", dtype=str)
    settled.to_csv(tmp / "settlements" / "chicago.csv", index=False)


@pytest.fixture(scope="module")
def evaluated(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """The cut data imported into a database of its own and evaluated once."""
    name = f"ev_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    url = with_db(pg_admin_url, name)
    tmp = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWX_DATABASE_URL", url)
        mp.chdir(tmp)
        get_settings.cache_clear()
        _embedded_server_url.cache_clear()
        _cut(tmp / "data")
        result = runner.invoke(app, ["import", "--from-files", str(tmp / "data")])
        assert result.exit_code == 0, result.output
        page = tmp / "out" / "evaluate.html"
        args = [
            "evaluate", "--from", str(SCORED[0]), "--to", str(SCORED[1]), "--city", "chicago",
            "--fill-model", "taker", "--paths", "300", "--train-days", "40",
            "--weather-fit-days", "60", "--step-days", "10", "--out", str(page), "--json",
        ]  # fmt: skip
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        last = result.stdout.strip().splitlines()[-1]
        yield url, json.loads(last), page
        get_settings.cache_clear()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_no_fit_sees_a_scored_day(evaluated: tuple[str, dict[str, Any], Path]) -> None:
    url, summary, _ = evaluated
    (city,) = summary["cities"]
    assert city["fits_end"] == str(FITS_END)
    assert city["weather_fit"] == [str(WEATHER_FROM), str(FITS_END)]
    with psycopg.connect(url) as conn:
        weather = conn.execute(
            "SELECT max(date_to) FROM wx.mc_params WHERE city = 'chicago' AND version = 'eval'"
        ).fetchone()
        assert weather is not None and weather[0] == FITS_END
        shift = conn.execute(
            "SELECT max(date_to) FROM wx.tmax_shift WHERE city = 'chicago' AND version = 'eval'"
        ).fetchone()
        assert shift is not None and shift[0] == FITS_END
        train_days = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT climate_date FROM kalshi.markets WHERE series_ticker = "
                "'KXHIGHCHI' AND settled_tmax IS NOT NULL AND climate_date BETWEEN %s AND %s "
                "ORDER BY 1",
                (WINDOW_FROM, FITS_END),
            ).fetchall()
        ]
        edge_from = train_days[len(train_days) // 2]
        folds = conn.execute(
            "SELECT version, train_from, train_to FROM model.fusion_config "
            "WHERE city = 'chicago' AND version LIKE 'eval-walk@%' ORDER BY version"
        ).fetchall()
        # The anchored pool is walked forward from the middle of the training days in 10-day
        # folds, each fitted on the days up to two before its start (the day before is
        # published that morning); the scored days fall in the last folds.
        starts = [dt.date.fromisoformat(str(v).split("@")[1]) for v, _, _ in folds]
        assert starts == [edge_from + dt.timedelta(days=10 * i) for i in range(len(starts))]
        assert starts[-1] <= SCORED[1] < starts[-1] + dt.timedelta(days=10)
        for (_, train_from, train_to), start in zip(folds, starts, strict=True):
            assert train_from == train_days[0]
            assert train_to == start - dt.timedelta(days=2)
        cells = conn.execute(
            "SELECT min(scored_from), max(scored_to) FROM model.edge_cells WHERE city = 'chicago'"
        ).fetchone()
        # The edge cells the backtest trades in were measured before the range, out of sample.
        assert cells is not None and (cells[0], cells[1]) == (edge_from, FITS_END)
        runs = conn.execute(
            "SELECT params->'data'->>'date_to' FROM model.runs WHERE city = 'chicago'"
        ).fetchall()
        assert runs, "the move classifiers were not fitted"
        assert all(dt.date.fromisoformat(str(r[0])) <= FITS_END for r in runs)


def test_scores_are_the_reports_own(evaluated: tuple[str, dict[str, Any], Path]) -> None:
    _, summary, _ = evaluated
    (city,) = summary["cities"]
    hours = {h["hour"]: h for h in city["hours"]}
    assert set(hours) == {"00", "04", "08", "10", "12", "14", "16", "20", "all"}
    for h in hours.values():
        assert h["n_events"] == 3
        ll = h["log_loss"]
        assert math.isclose(h["gain_vs_mkt"], ll["p_mkt"] - ll["p_fused_norm"], abs_tol=1e-12)
        lo, hi = h["gain_ci"]
        assert lo <= h["gain_vs_mkt"] <= hi
        assert h["verdict"] == verdict(lo, hi)
    assert sum(city["verdicts"].values()) == 8
    # CRPS of the Tmax distribution (°F) at the skill hours, for p_wx, p_mkt and climatology.
    assert set(city["crps"]) == {"00", "08", "12", "16"}
    assert all(0 < city["crps"]["00"][m] < 30 for m in ("p_wx", "p_mkt", "climatology"))
    midnight = summary["pooled"]["brier_p_fused_00"]
    assert midnight == hours["00"]["brier"]["p_fused_norm"]


def test_backtest_figures_are_the_ledgers(evaluated: tuple[str, dict[str, Any], Path]) -> None:
    url, summary, page = evaluated
    (city,) = summary["cities"]
    taker = city["backtests"]["taker"]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(count_fp), 0) FROM exec.fills WHERE mode = 'backtest' "
            "AND run_id = %s",
            (int(taker["run_id"]),),
        ).fetchone()
    assert row is not None
    assert int(str(row[0])) == taker["n_fills"]
    assert Decimal(str(row[1])) == Decimal(taker["contracts_traded"])
    pooled = summary["pooled"]["backtests"]["taker"]
    assert math.isclose(pooled["net_pnl"], float(taker["net_pnl"]), abs_tol=0.005)
    lo, hi = pooled["net_pnl_ci95"]
    assert lo <= pooled["net_pnl"] <= hi
    assert len(summary["targets"]) == 6
    assert all(isinstance(t["met"], bool) for t in summary["targets"])
    html = page.read_text(encoding="utf-8")
    assert "chicago" in html and "Targets" in html and "<script" not in html
