"""Fusion end to end on real Chicago days from ../shared/data, through the public commands:
import → weather fit-params → weather backfill → fusion fit → fusion run → fusion report.

The files are cut down to a few weeks (markets and trades of four events, the ERA5 proxy and
Visual Crossing forecasts around them, the settlements) and imported by the real importer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.pmf.fusion import WALK_GAP_DAYS, fit_fusion, load_config, run_fusion, walk_forward
from kwx.pmf.report import CEILING, HOURS, MODELS, fusion_report
from kwx.store.engine import _embedded_server_url
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
runner = CliRunner()
DAYS = [dt.date(2024, 9, 10) + dt.timedelta(days=i) for i in range(4)]
EVENTS = [f"HIGHCHI-{d:%y%b%d}".upper() for d in DAYS]
FIT_FROM, FIT_TO = dt.date(2024, 8, 1), dt.date(2024, 9, 9)


def _cut(tmp: Path) -> None:
    """Real files, cut to the weeks the test needs, in the layout the importer recognises."""
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
    lo, hi = (
        pd.Timestamp(FIT_FROM) - pd.Timedelta(days=2),
        pd.Timestamp(DAYS[-1]) + pd.Timedelta(days=3),
    )
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


@pytest.fixture
def fused(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Conn]:
    """A test database with four real days imported, weather-modelled and fused."""
    from kwx.store.engine import connect

    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    _cut(tmp_path / "data")
    _ok(["import", "--from-files", str(tmp_path / "data")])
    _ok(["weather", "fit-params", "--city", "chicago", "--from", str(FIT_FROM), "--to",
         str(FIT_TO)])  # fmt: skip
    _ok(["weather", "backfill", "--city", "chicago", "--from", str(DAYS[0]), "--to",
         str(DAYS[-1]), "--paths", "1000"])  # fmt: skip
    days = ["--city", "chicago", "--from", str(DAYS[0])]
    _ok(["fusion", "fit", *days, "--to", str(DAYS[2])])
    _ok(["fusion", "run", *days, "--to", str(DAYS[-1])])
    with connect(settings) as conn:
        yield conn
    get_settings.cache_clear()


@needs_data()
def test_fit_run_report_on_real_days(fused: Conn, tmp_path: Path) -> None:
    config = load_config(fused, "chicago", "f1")
    assert (config.train_from, config.train_to, config.mc_version) == (DAYS[0], DAYS[2], "v1")
    assert len(config.alpha) == 5 and all(np.isfinite(config.alpha))
    assert config.metrics["n_events"] == 3
    assert config.metrics["nll"] <= config.metrics["grid_nll"] + 1e-9

    rows = fused.execute(
        "SELECT event_ticker, ts, p_mkt, p_wx, w_mkt, p_fused, p_fused_norm FROM pmf.minute "
        "WHERE mc_version = 'v1'"
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["event", "ts", "p_mkt", "p_wx", "w", "fused", "norm"])
    assert set(frame["event"]) == set(EVENTS)
    has = frame.dropna(subset=["norm"])
    # Every minute with both inputs is fused; fused PMFs sum to one per event and minute.
    both = frame.dropna(subset=["p_mkt", "p_wx"])
    assert len(has) == len(both) > 0.9 * len(frame)
    sums = has.groupby(["event", "ts"])["norm"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-9)
    assert ((has["w"] >= 0) & (has["w"] <= 1)).all()
    # p_fused is the unnormalised pool: p_mkt^w · p_wx^(1−w), p_wx with the fitted floor.
    floor = config.p_floor
    w = has["w"].to_numpy(dtype=float)
    expect = np.exp(
        w * np.log(has["p_mkt"].to_numpy(dtype=float))
        + (1 - w) * np.log(np.maximum(has["p_wx"].to_numpy(dtype=float), floor))
    )
    np.testing.assert_allclose(has["fused"].to_numpy(dtype=float), expect, rtol=1e-9)

    # The report, through the command (CSV + one JSON line last) and the function alike.
    csv = tmp_path / "report.csv"
    out = _ok(["fusion", "report", "--city", "chicago", "--from", str(DAYS[3]), "--to",
               str(DAYS[3]), "--csv", str(csv), "--json", "--ceiling"])  # fmt: skip
    last = json.loads(out.strip().splitlines()[-1])
    assert set(last["ceiling_margin_vs_mkt"]) == set(last["logloss_margin_vs_mkt"])
    assert last["city"] == "chicago" and set(last["logloss_margin_vs_mkt"]) <= {
        f"{h:02d}" for h in HOURS
    }
    table = fusion_report(fused, "chicago", DAYS[3], DAYS[3])
    assert set(table["model"]) == set(MODELS)
    assert set(table["hour"]) <= {*(f"{h:02d}" for h in HOURS), "all"}
    assert (table["n_events"] == 1).all()
    assert table[["log_loss", "brier", "rps", "ece"]].notna().all().all()
    # p_fused's gain over p_mkt is the difference of their log-losses, inside its interval;
    # the other models carry none.
    wide_ll = table.pivot(index="hour", columns="model", values="log_loss")
    fused_rows = table[table["model"] == "p_fused_norm"].set_index("hour")
    np.testing.assert_allclose(
        fused_rows["gain_vs_mkt"],
        (wide_ll["p_mkt"] - wide_ll["p_fused_norm"]).loc[fused_rows.index],
        atol=1e-12,
    )
    assert (fused_rows["gain_lo"] <= fused_rows["gain_vs_mkt"] + 1e-12).all()
    assert (fused_rows["gain_vs_mkt"] <= fused_rows["gain_hi"] + 1e-12).all()
    others = table[table["model"] != "p_fused_norm"]
    assert others[["gain_vs_mkt", "gain_lo", "gain_hi"]].isna().all().all()
    assert set(last["verdict_vs_mkt"]) == set(last["logloss_margin_vs_mkt"])
    assert set(last["verdict_vs_mkt"].values()) <= {"ahead", "tie", "behind"}
    # The in-sample ceiling: a weight in [0, 1] per hour that never scores worse than the
    # market alone (w = 1 is p_mkt exactly and is among the candidates).
    ceiling = fusion_report(fused, "chicago", DAYS[3], DAYS[3], ceiling=True)
    assert set(ceiling["model"]) == {*MODELS, CEILING}
    wide = ceiling.pivot(index="hour", columns="model", values="log_loss")
    assert (wide[CEILING] <= wide["p_mkt"] + 1e-12).all()
    weights = ceiling.loc[(ceiling["model"] == CEILING) & (ceiling["hour"] != "all"), "w_mkt"]
    assert ((weights >= 0) & (weights <= 1)).all() and len(weights) == len(wide) - 1
    plain = ceiling[ceiling["model"] != CEILING].reset_index(drop=True)
    pd.testing.assert_frame_equal(plain, table)  # the ceiling leaves the other rows alone
    assert pd.read_csv(csv, dtype={"hour": str}).shape == ceiling.shape  # what --ceiling wrote

    # A refit on the same days gives the same α (deterministic), and a re-run rewrites the
    # same values (idempotent).
    again = fit_fusion(fused, "chicago", DAYS[0], DAYS[2])
    np.testing.assert_allclose(again.alpha, config.alpha, rtol=1e-6, atol=1e-9)
    written = run_fusion(fused, "chicago", DAYS[0], DAYS[-1])
    assert written == len(frame)
    rerun = fused.execute(
        "SELECT event_ticker, ts, p_fused_norm FROM pmf.minute WHERE mc_version = 'v1' "
        "AND p_fused_norm IS NOT NULL"
    ).fetchall()
    fused.commit()
    before = has.set_index(["event", "ts"])["norm"].groupby(level=[0, 1]).sum()
    after = pd.DataFrame(rerun, columns=["event", "ts", "norm"]).groupby(["event", "ts"])["norm"]
    assert len(rerun) == len(has)
    np.testing.assert_allclose(after.sum().to_numpy(), before.to_numpy(), atol=1e-9)


def _fused_norm(conn: Conn, event: str) -> pd.Series:
    rows = conn.execute(
        "SELECT ticker, ts, p_fused_norm FROM pmf.minute WHERE mc_version = 'v1' "
        "AND event_ticker = %s AND p_fused_norm IS NOT NULL",
        (event,),
    ).fetchall()
    conn.commit()
    frame = pd.DataFrame(rows, columns=["ticker", "ts", "norm"])
    return frame.set_index(["ticker", "ts"])["norm"].sort_index().astype(float)


@needs_data()
def test_walk_forward_fuses_each_fold_with_a_pool_fitted_on_its_past_only(fused: Conn) -> None:
    untouched = {e: _fused_norm(fused, e) for e in EVENTS[:2]}
    out = _ok(["fusion", "walk", "--city", "chicago", "--from", str(DAYS[0]), "--to",
               str(DAYS[3]), "--test-from", str(DAYS[2]), "--step-days", "1"])  # fmt: skip
    assert f"kwx fusion report --city chicago --from {DAYS[2]} --to {DAYS[3]}" in out
    # One config per fold, each trained on the days before it less the gap day.
    for day in DAYS[2:]:
        config = load_config(fused, "chicago", f"walk@{day}")
        assert config.train_from == DAYS[0]
        assert config.train_to == day - dt.timedelta(days=1 + WALK_GAP_DAYS)
    # The last fold's pool is exactly a pool fitted on its past alone, applied to its day.
    walked = _fused_norm(fused, EVENTS[3])
    past = fit_fusion(fused, "chicago", DAYS[0], DAYS[1], version="past-only")
    np.testing.assert_allclose(
        load_config(fused, "chicago", f"walk@{DAYS[3]}").alpha, past.alpha, rtol=1e-6, atol=1e-9
    )
    run_fusion(fused, "chicago", DAYS[3], DAYS[3], version="past-only")
    pd.testing.assert_series_equal(_fused_norm(fused, EVENTS[3]), walked, rtol=1e-9)
    # …which is not what the pool fitted on all of the first three days gave.
    run_fusion(fused, "chicago", DAYS[3], DAYS[3], version="f1")
    assert not np.allclose(_fused_norm(fused, EVENTS[3]).to_numpy(), walked.to_numpy())
    # Days before the first fold keep what was there.
    for event, before in untouched.items():
        pd.testing.assert_series_equal(_fused_norm(fused, event), before)
    # Folds without training days, or an empty walk, are clear errors.
    with pytest.raises(ValueError, match="no training days"):
        walk_forward(fused, "chicago", DAYS[0], DAYS[3], DAYS[1])
    with pytest.raises(ValueError, match="test-from"):
        walk_forward(fused, "chicago", DAYS[2], DAYS[3], DAYS[2])
    with pytest.raises(ValueError, match="step_days"):
        walk_forward(fused, "chicago", DAYS[0], DAYS[3], DAYS[2], step_days=0)


@needs_data()
def test_report_without_a_run_is_a_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    result = runner.invoke(
        app, ["fusion", "report", "--city", "chicago", "--from", "2024-09-10", "--to",
              "2024-09-11"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no chicago events" in " ".join(result.output.split())
    result = runner.invoke(app, ["fusion", "run", "--city", "chicago", "--from", "2024-09-10",
                                 "--to", "2024-09-11"])  # fmt: skip
    assert result.exit_code == 1
    assert "run kwx fusion fit" in " ".join(result.output.split())
    get_settings.cache_clear()


@needs_data()
def test_the_live_fusion_equals_what_fusion_run_stored(fused: Conn) -> None:
    """The live loop pools from the backtest's panel (candles closed by t), `kwx fusion run`
    from the store's views: on real days they must agree minute for minute."""
    from kwx.backtest.loader import load_raw
    from kwx.backtest.panel import build_panel
    from kwx.live.fusion import fuse_panel
    from kwx.pmf.fusion import latest_config
    from kwx.registry import default_registry

    config = latest_config(fused, "chicago", "v1")
    assert config is not None and config.version == "f1"
    assert latest_config(fused, "chicago", "w9") is None
    raw = load_raw(fused, default_registry().by_key("chicago"), DAYS[0], DAYS[-1], mc_version="v1")
    panel = build_panel(raw)
    live = fuse_panel(config.estimator(), panel)
    stored = panel.cols["p_fused_norm"]
    has = ~np.isnan(stored)
    assert has.sum() > 0.9 * panel.exists.sum()  # nearly every real event-minute was fused
    np.testing.assert_array_equal(np.isnan(live), ~has)
    np.testing.assert_allclose(live[has], stored[has], rtol=1e-9, atol=1e-12)


@needs_data()
def test_live_features_fuse_the_minutes_the_store_has_not(fused: Conn) -> None:
    """With a fusion config, the live loop's feed carries p_fused_norm even where pmf.minute
    has none yet (nor p_mkt), equal to what `kwx fusion run` would store; without one, NaN."""
    from kwx.backtest.loader import load_raw
    from kwx.live.features import LiveFeatures
    from kwx.pmf.fusion import latest_config
    from kwx.registry import default_registry
    from kwx.strategy.config import StrategyConfig
    from kwx.strategy.value import ValueStrategy

    chicago = default_registry().by_key("chicago")
    before = load_raw(fused, chicago, DAYS[3], DAYS[3], mc_version="v1")
    stored = LiveFeatures(ValueStrategy(StrategyConfig())).compute(before, {})
    fused.execute(
        "UPDATE pmf.minute SET p_fused_norm = NULL, p_mkt = NULL WHERE event_ticker = %s",
        (EVENTS[3],),
    )
    fused.commit()
    raw = load_raw(fused, chicago, DAYS[3], DAYS[3], mc_version="v1")
    plain = LiveFeatures(ValueStrategy(StrategyConfig())).compute(raw, {})
    assert np.isnan(plain.columns["p_fused_norm"]).all()
    config = latest_config(fused, "chicago", "v1")
    live = LiveFeatures(ValueStrategy(StrategyConfig()), fusion=config).compute(raw, {})
    # The panel completes p_mkt from the quotes with the p_mkt pass's rules, so a store
    # without it (a live day) pools the same numbers.
    np.testing.assert_allclose(
        live.columns["p_mkt"], stored.columns["p_mkt"], rtol=1e-12, equal_nan=True
    )
    want, got = stored.columns["p_fused_norm"], live.columns["p_fused_norm"]
    has = ~np.isnan(want)
    assert has.sum() > 0.9 * (~np.isnan(stored.columns["p_mkt"])).sum()
    np.testing.assert_array_equal(np.isnan(got), ~has)
    np.testing.assert_allclose(got[has], want[has], rtol=1e-9, atol=1e-12)
    # The probability traded on follows: the fitted pool, not the fixed fallback.
    np.testing.assert_allclose(live.columns["p"][has], want[has], rtol=1e-9, atol=1e-12)


ANCHORED_COEF = [[1.2, 0.3, 0.1, -0.2, -0.1]] * 6


@needs_data()
def test_anchored_walk_forward_has_no_look_ahead(fused: Conn) -> None:
    """Change a day after a fold's training days: that fold's pool and p_fused stay put, while
    the later fold that trained on the changed day moves (so the check can fail)."""

    def walk() -> None:
        _ok(["fusion", "walk", "--city", "chicago", "--from", str(DAYS[0]), "--to",
             str(DAYS[3]), "--test-from", str(DAYS[2]), "--step-days", "1", "--model",
             "anchored", "--strength", "0.01", "--version", "aw"])  # fmt: skip

    walk()
    early = load_config(fused, "chicago", f"aw@{DAYS[2]}")
    late = load_config(fused, "chicago", f"aw@{DAYS[3]}")
    assert early.model == late.model == "anchored" and early.strength == [0.01] * 6
    assert early.train_to == DAYS[0] and late.train_to == DAYS[1]
    before = {e: _fused_norm(fused, e) for e in EVENTS[2:]}
    assert not np.allclose(early.coef, [[1.0, 0, 0, 0, 0]] * 6)  # the pool left the market
    # DAYS[1] is in the future of the first fold's training days (its gap day).
    fused.execute(
        "UPDATE pmf.minute SET tmax_q50 = tmax_q50 + 6 WHERE event_ticker = %s", (EVENTS[1],)
    )
    fused.commit()
    walk()
    assert load_config(fused, "chicago", f"aw@{DAYS[2]}").coef == early.coef
    pd.testing.assert_series_equal(_fused_norm(fused, EVENTS[2]), before[EVENTS[2]])
    assert load_config(fused, "chicago", f"aw@{DAYS[3]}").coef != late.coef
    assert not np.allclose(_fused_norm(fused, EVENTS[3]), before[EVENTS[3]])


@needs_data()
def test_anchored_live_fusion_equals_what_fusion_run_stored(fused: Conn) -> None:
    """The anchored pool from the live panel (its tmax_q50, the events' brackets, the hour
    from the same minutes_to_close) equals what `kwx fusion run` stored from pmf.minute."""
    from kwx.backtest.loader import load_raw
    from kwx.backtest.panel import build_panel
    from kwx.live.fusion import fuse_panel
    from kwx.pmf.fusion import FusionConfig, latest_config, save_config
    from kwx.registry import default_registry

    base = load_config(fused, "chicago", "f1")
    config = FusionConfig(
        city="chicago",
        version="anch",
        mc_version="v1",
        alpha=[],
        feature_mean=[],
        feature_scale=[],
        p_floor=1e-3,
        train_from=base.train_from,
        train_to=base.train_to,
        model="anchored",
        coef=ANCHORED_COEF,
        hour_edges=[0, 4, 8, 12, 16, 20],
        strength=[0.01] * 6,
    )
    save_config(fused, config)
    loaded = latest_config(fused, "chicago", "v1")
    assert loaded is not None and loaded.version == "anch" and loaded.coef == ANCHORED_COEF
    run_fusion(fused, "chicago", DAYS[0], DAYS[-1], mc_version="v1", version="anch")
    raw = load_raw(fused, default_registry().by_key("chicago"), DAYS[0], DAYS[-1], mc_version="v1")
    panel = build_panel(raw)
    live = fuse_panel(loaded.estimator(), panel)
    stored = panel.cols["p_fused_norm"]
    has = ~np.isnan(stored)
    assert has.sum() > 0.9 * panel.exists.sum()
    np.testing.assert_array_equal(np.isnan(live), ~has)
    np.testing.assert_allclose(live[has], stored[has], rtol=1e-9, atol=1e-12)
    assert not np.allclose(stored[has], panel.cols["p_mkt"][has])  # not the market itself
    # A market-only anchored config (λ = ∞) survives the JSON round trip as infinity.
    save_config(
        fused, FusionConfig(**{**config.__dict__, "version": "mkt", "strength": [math.inf] * 6})
    )
    assert load_config(fused, "chicago", "mkt").strength == [math.inf] * 6
