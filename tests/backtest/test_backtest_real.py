"""The backtest on two real Chicago days from ../shared/data, end to end.

The files are cut to what the days need (their markets and trades, the ERA5 proxy and Visual
Crossing forecasts of the weeks before for the weather fit, the settlements), imported by the
real importer, weather-modelled by the real commands; then:

* the bulk panel equals ``feat.minute_panel_full`` row for row;
* the feed has no look-ahead (deleting later trades leaves earlier minutes unchanged);
* `run_backtest` writes the ledger and the report, and skipping idle minutes changes nothing;
* `kwx backtest --json` prints the metrics as its last line.

One database is built per module (importing and modelling takes a few seconds).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from kwx.backtest.loader import load_raw
from kwx.backtest.panel import build_panel
from kwx.backtest.runner import prepare, run_backtest
from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.registry import default_registry
from kwx.store.engine import _embedded_server_url, connect
from kwx.strategy.config import ExecutionConfig, StrategyConfig
from kwx.strategy.value import ValueStrategy
from tests.conftest import DATA, TEMPLATE_DB, needs_data, with_db

Conn = psycopg.Connection[tuple[object, ...]]
runner = CliRunner()
DAYS = [dt.date(2024, 11, 12), dt.date(2024, 11, 13)]
# The engine's mechanics (ledger, skipping, fill models) need trades: the edge gate, tested
# below with cells of its own, is off for them.
NO_GATE = StrategyConfig(execution=ExecutionConfig(edge_gate=False))
EVENTS = [f"KXHIGHCHI-{d:%y%b%d}".upper() for d in DAYS]
FIT_FROM, FIT_TO = dt.date(2024, 10, 12), dt.date(2024, 11, 11)
CHICAGO = default_registry().by_key("chicago")

pytestmark = needs_data()


def _cut(tmp: Path) -> None:
    kal, wx = DATA / "kalshi", DATA / "weather"
    (tmp / "markets").mkdir(parents=True)
    markets = pd.read_csv(kal / "markets" / "KXHIGHCHI.csv", dtype=str, keep_default_na=False)
    markets[markets["event_ticker"].isin(EVENTS)].to_csv(
        tmp / "markets" / "KXHIGHCHI.csv", index=False
    )
    (tmp / "trades").mkdir()
    trades = pd.read_parquet(kal / "trades" / "KXHIGHCHI.parquet")
    keep = trades["ticker"].str.rsplit("-", n=1).str[0].isin(EVENTS)
    trades[keep].to_parquet(tmp / "trades" / "KXHIGHCHI.parquet", index=False)
    lo = pd.Timestamp(FIT_FROM) - pd.Timedelta(days=2)
    hi = pd.Timestamp(DAYS[-1]) + pd.Timedelta(days=3)
    (tmp / "era5").mkdir()
    era5 = pd.read_csv(wx / "era5_hourly" / "KXHIGHCHI.csv", dtype=str)
    stamp = pd.to_datetime(era5["datetime"])
    era5[(stamp >= lo) & (stamp < hi)].to_csv(tmp / "era5" / "KXHIGHCHI.csv", index=False)
    (tmp / "vc").mkdir()
    vc = pd.read_parquet(wx / "vc_forecast_hourly" / "chicago.parquet")
    target = vc["target_datetime_utc"].dt.tz_localize(None)
    vc[(target >= lo) & (target < hi)].to_parquet(tmp / "vc" / "chicago.parquet", index=False)
    (tmp / "settlements").mkdir()
    shutil.copy(wx / "settlements" / "chicago.csv", tmp / "settlements" / "chicago.csv")


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"kwx {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def real(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database of its own with the two days imported and weather-modelled."""
    name = f"bt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    url = with_db(pg_admin_url, name)
    tmp = tmp_path_factory.mktemp("realbt")
    settings = Settings(kwx_database_url=SecretStr(url), kwx_data_dir=tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWX_DATABASE_URL", url)
        mp.chdir(tmp)
        get_settings.cache_clear()
        _embedded_server_url.cache_clear()
        _cut(tmp / "data")
        _ok(["import", "--from-files", str(tmp / "data")])
        _ok(["weather", "fit-params", "--city", "chicago", "--from", str(FIT_FROM),
             "--to", str(FIT_TO)])  # fmt: skip
        _ok(["weather", "backfill", "--city", "chicago", "--from", str(DAYS[0]),
             "--to", str(DAYS[-1]), "--paths", "500"])  # fmt: skip
        yield settings
        get_settings.cache_clear()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


VIEW_COLUMNS = (
    "yes_bid", "yes_ask", "last_price", "mid", "spread", "clv", "velocity", "acceleration",
    "volume_1m", "volume_delta", "volume_5m", "volume_20m", "minutes_to_close", "left_mid",
    "right_mid", "left_velocity", "right_velocity", "ras", "triad_mass", "temp_1m", "temp_5m",
    "running_max_f", "p_wx", "hazard_next_5m", "hazard_next_60m", "tmax_q50",
)  # fmt: skip


def test_bulk_panel_equals_the_view(real: Settings) -> None:
    with connect(real) as conn:
        raw = load_raw(conn, CHICAGO, DAYS[0], DAYS[-1], mc_version="v1")
        panel = build_panel(raw)
        for e, ev in enumerate(panel.events):
            select = ", ".join(f"{c}::float8" for c in VIEW_COLUMNS)
            rows = conn.execute(
                f"SELECT ticker, ts, has_trade, {select} FROM feat.minute_panel_full "
                "WHERE event_ticker = %s AND mc_version = 'v1' ORDER BY bracket_index, ts",
                (ev.event_ticker,),
            ).fetchall()
            view = pd.DataFrame(rows, columns=["ticker", "ts", "has_trade", *VIEW_COLUMNS])
            assert len(view) == 1440 * len(ev.tickers)
            for k, ticker in enumerate(ev.tickers):
                mine = view[view["ticker"] == ticker]
                assert mine["ts"].iloc[0] == ev.day_start
                np.testing.assert_array_equal(
                    panel["has_trade"][e, :, k] == 1.0, mine["has_trade"].to_numpy(bool)
                )
                for col in VIEW_COLUMNS:
                    expected = mine[col].to_numpy(dtype=float, na_value=np.nan)
                    np.testing.assert_allclose(
                        panel[col][e, :, k],
                        expected,
                        rtol=0,
                        atol=1e-9,
                        equal_nan=True,
                        err_msg=f"{ticker} {col}",
                    )
        # Real days, real values: quotes are rebuilt from trades, prices move, weather exists.
        assert np.isfinite(panel["mid"]).mean() > 0.5
        assert np.isfinite(panel["running_max_f"]).all()
        assert np.isfinite(panel["p_wx"][panel.exists]).all()


def test_feed_has_no_look_ahead(real: Settings) -> None:
    """Delete every trade (and its candle) after a cut: arrays before the cut are unchanged."""
    strategy = ValueStrategy()
    cut = dt.datetime(2024, 11, 13, 15, 0, tzinfo=dt.UTC)
    with connect(real) as conn:
        before = prepare(conn, real, "chicago", DAYS[0], DAYS[-1], strategy=strategy,
                         mc_version="v1", classifier_horizon=None)  # fmt: skip
        try:
            conn.execute("DELETE FROM md.trades WHERE created_time >= %s", (cut,))
            conn.execute("DELETE FROM md.candles_1m WHERE ts >= %s", (cut,))
            conn.execute(
                "UPDATE pmf.minute SET p_wx = 1 - p_wx, hazard_next_60m = 0.99 WHERE ts > %s",
                (cut,),
            )
            after = prepare(conn, real, "chicago", DAYS[0], DAYS[-1], strategy=strategy,
                            mc_version="v1", classifier_horizon=None)  # fmt: skip
        finally:
            conn.rollback()
    e = 1
    t = int((cut - before.panel.events[e].day_start).total_seconds() // 60)
    a, b = before.arrays, after.arrays
    for name, arr in a.columns.items():
        np.testing.assert_array_equal(arr[:e, :], b.columns[name][:e, :], err_msg=name)
        np.testing.assert_array_equal(arr[e, : t + 1], b.columns[name][e, : t + 1], err_msg=name)
    for name in ("yes_bid", "yes_ask", "screen", "exit_yes", "exit_no"):
        np.testing.assert_array_equal(getattr(a, name)[e, : t + 1], getattr(b, name)[e, : t + 1])
    changed = [
        n for n in a.columns if not np.array_equal(a.columns[n], b.columns[n], equal_nan=True)
    ]
    assert {"mid", "p", "signal"} <= set(changed)  # the future really was different


def test_backtest_writes_ledger_and_report_and_skipping_changes_nothing(
    real: Settings, tmp_path: Path
) -> None:
    with connect(real) as conn:
        out = run_backtest(conn, real, "chicago", DAYS[0], DAYS[-1], fill_model="maker-b",
                           mc_version="v1", report_path=tmp_path / "r.html",
                           config=NO_GATE)  # fmt: skip
        dense = run_backtest(conn, real, "chicago", DAYS[0], DAYS[-1], fill_model="maker-b",
                             mc_version="v1", write_report_file=False, dense=True,
                             config=NO_GATE)  # fmt: skip
        m = out.metrics
        assert m.n_fills > 0 and out.stats.snapshots < 2 * 1440
        assert dense.stats.snapshots == 2 * 1440
        key = [(f.ts, f.ticker, f.side, f.action, f.price, f.count, f.fee) for f in out.fills]
        assert key == [
            (f.ts, f.ticker, f.side, f.action, f.price, f.count, f.fee) for f in dense.fills
        ]
        assert m.net_pnl == dense.metrics.net_pnl
        # The ledger holds the run: fills match, every order and decision is there.
        row = conn.execute(
            "SELECT (SELECT count(*) FROM exec.fills WHERE run_id = %(r)s AND mode = 'backtest'),"
            " (SELECT sum(fee) FROM exec.fills WHERE run_id = %(r)s),"
            " (SELECT count(*) FROM exec.decisions WHERE run_id = %(r)s),"
            " (SELECT count(*) FROM exec.orders WHERE run_id = %(r)s AND status = 'resting')",
            {"r": out.run_id},
        ).fetchone()
        assert row is not None
        assert row[0] == m.n_fills and row[1] == m.fees
        assert row[2] == sum(out.stats.intents.values()) and row[3] == 0
        payload = conn.execute(
            "SELECT payload FROM exec.decisions WHERE run_id = %s LIMIT 1", (out.run_id,)
        ).fetchone()
        assert payload is not None and isinstance(payload[0], dict)
        for field in ("execution", "outcome", "bracket"):
            assert field in payload[0]
        for field in ("p_wx", "p_mkt", "p_fused_norm", "hazard_next_60m", "signal", "features"):
            assert field in payload[0]["bracket"]
        run = conn.execute(
            "SELECT status, report_path, metrics->>'net_pnl', params->>'fill_model' "
            "FROM backtest.runs WHERE run_id = %s",
            (out.run_id,),
        ).fetchone()
        assert run == ("done", str(tmp_path / "r.html"), str(m.net_pnl), "maker-b")
    html = (tmp_path / "r.html").read_text()
    assert "p_fused_norm missing" in html and "equity" in html.lower()
    assert any("assumed" in n or "rebuilt" in n for n in out.notes)


def test_every_fill_model_runs(real: Settings) -> None:
    with connect(real) as conn:
        nets = {}
        for name in ("taker", "maker-a", "maker-b", "queue"):
            out = run_backtest(conn, real, "chicago", DAYS[0], DAYS[-1], fill_model=name,
                               mc_version="v1", write_report_file=False, journal=False,
                               config=NO_GATE)  # fmt: skip
            nets[name] = out.metrics
            if name == "taker":
                assert out.metrics.maker_fills == 0
    # On two busy days every maker model fills some resting orders (whole-run totals are
    # path-dependent, so the models' order per order is checked in test_fills.py).
    for name in ("maker-a", "maker-b", "queue"):
        assert nets[name].maker_fills > 0, name


def test_cli_prints_metrics_json_last(real: Settings, tmp_path: Path) -> None:
    report = tmp_path / "cli.html"
    out = _ok(["backtest", "--city", "chicago", "--from", str(DAYS[0]), "--to", str(DAYS[-1]),
               "--fill-model", "queue", "--json", "--out", str(report),
               "--classifier-horizon", "none"])  # fmt: skip
    last = json.loads(out.strip().splitlines()[-1])
    assert last["city"] == "chicago" and last["fill_model"] == "queue"
    assert {"net_pnl", "sharpe_daily", "max_drawdown", "hit_rate", "fees"} <= set(last)
    assert report.is_file()
    bad = runner.invoke(app, ["backtest", "--city", "chicago", "--from", "2024-11-13",
                              "--to", "2024-11-12"])  # fmt: skip
    assert bad.exit_code == 1 and "before" in bad.output


def test_edge_gate_without_cells_enters_nothing_and_the_report_says_so(
    real: Settings, tmp_path: Path
) -> None:
    with connect(real) as conn:
        conn.execute("DELETE FROM model.edge_cells")
        conn.commit()
        out = run_backtest(conn, real, "chicago", DAYS[0], DAYS[-1], fill_model="maker-b",
                           mc_version="v1", report_path=tmp_path / "gate.html")  # fmt: skip
    assert out.metrics.n_fills == 0
    assert out.notes[0].startswith("edge gate: no measured cells for chicago")
    assert out.edge is not None and out.edge.block == out.notes[0]
    html = (tmp_path / "gate.html").read_text()
    assert "P&amp;L by edge cell" in html and "no measured cells for chicago" in html
    payload = out.metrics_dict()["edge_cells"]
    assert payload["gate_on"] is True and payload["by_cell"] == []


def test_pnl_by_edge_cell_adds_up_to_the_fills_and_only_open_cells_enter(
    real: Settings, tmp_path: Path
) -> None:
    """Cells measured by hand: open (interval above 0) at every price from local 08:00 to
    20:00, shut elsewhere. The by-cell P&L sums to the run's net P&L; every taker entry
    (placed and filled in the same minute) lies in an open cell."""
    from kwx.pmf.edge import load_edge_cells, store_cells
    from kwx.pmf.edge_cells import HOUR_EDGES, PRICE_EDGES, EdgeCell

    cells = [
        EdgeCell("chicago", h, p, 0.01, *((0.002, 0.02) if 2 <= h <= 4 else (-0.01, 0.02)), 50, 999)
        for h in range(len(HOUR_EDGES))
        for p in range(len(PRICE_EDGES))
    ]
    with connect(real) as conn:
        store_cells(conn, "chicago", cells, mc_version="v1", scored=(DAYS[0], DAYS[-1]))
        assert len(load_edge_cells(conn, ["chicago"]).open_cells("chicago")) == 3 * 7
        out = run_backtest(conn, real, "chicago", DAYS[0], DAYS[-1], fill_model="taker",
                           mc_version="v1", report_path=tmp_path / "cells.html")  # fmt: skip
        conn.execute("DELETE FROM model.edge_cells")
        conn.commit()
    assert out.edge is not None and out.edge.block is None
    by_cell = out.edge.by_cell
    assert out.metrics.n_fills > 0
    assert sum(by_cell["pnl"], start=Decimal(0)) == out.metrics.net_pnl
    assert int(by_cell["fills"].sum()) == out.metrics.n_fills
    assert sum(by_cell["fees"], start=Decimal(0)) == out.metrics.fees
    buys = [f for f in out.fills if f.action == "buy"]
    assert buys and all(8 <= _local_hour(f.ts) < 20 for f in buys)
    assert by_cell["open"].any()
    html = (tmp_path / "cells.html").read_text()
    assert 'id="edge-cells"' in html
    assert json.loads(json.dumps(out.metrics_dict()["edge_cells"]))["by_cell"]


def _local_hour(ts: dt.datetime) -> float:
    from kwx.domain.climate_day import climate_day_window

    tz = default_registry().by_key("chicago").timezone
    day = (ts - dt.timedelta(hours=6)).date()  # CST: the climate day of a UTC instant
    return (ts - climate_day_window(tz, day)[0]).total_seconds() / 3600.0
