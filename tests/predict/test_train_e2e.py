"""Train, sweep and calibrate end to end on real Chicago days from ../shared/data, through the
public commands and the API the strategy uses: import → `kwx model train` (with
--export-val) → `kwx model sweep` → `kwx model calibrate` → `load_default(...).predict_up`.

The files are cut to six events (markets and trades, imported by the real importer); no
weather model runs, so the weather features are the "missing" fills — what a city without
a weather backfill gets.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.pmf.metrics import binary_metrics
from kwx.predict.api import load_default, train_and_calibrate
from kwx.predict.calibration import Candidate, choose_default
from kwx.predict.dataset import labelled_event, load_event_panel
from kwx.predict.features import feature_frame
from kwx.predict.store import get_run, load_artifact
from kwx.predict.train import predict_proba_up
from kwx.store.engine import _embedded_server_url
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
runner = CliRunner()
DAYS = [dt.date(2024, 9, 10) + dt.timedelta(days=i) for i in range(6)]
EVENTS = [f"HIGHCHI-{d:%y%b%d}".upper() for d in DAYS]
FROM, TO = str(DAYS[0]), str(DAYS[-1])


def _cut(tmp: Path) -> None:
    kal = DATA / "kalshi"
    (tmp / "markets").mkdir(parents=True)
    markets = pd.read_csv(kal / "markets" / "KXHIGHCHI.csv", dtype=str, keep_default_na=False)
    markets[markets["event_ticker"].isin(EVENTS)].to_csv(
        tmp / "markets" / "KXHIGHCHI.csv", index=False
    )
    (tmp / "trades").mkdir()
    trades = pd.read_parquet(kal / "trades" / "KXHIGHCHI.parquet")
    keep = trades["ticker"].str.rsplit("-", n=1).str[0].isin(EVENTS)
    trades[keep].to_parquet(tmp / "trades" / "KXHIGHCHI.parquet", index=False)


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"kwx {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def cut_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cut files, made once for the module (reading the year of trades takes a while)."""
    folder = tmp_path_factory.mktemp("predict_data")
    if DATA.is_dir():
        _cut(folder)
    return folder


@pytest.fixture
def real_days(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, cut_files: Path
) -> Iterator[Conn]:
    from kwx.store.engine import connect

    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    monkeypatch.setenv("KWX_DATA_DIR", str(settings.kwx_data_dir))
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    _ok(["import", "--from-files", str(cut_files)])
    with connect(settings) as conn:
        yield conn
    get_settings.cache_clear()


@needs_data()
def test_train_sweep_calibrate_predict(real_days: Conn, settings: Settings, tmp_path: Path) -> None:
    conn = real_days
    val_csv = tmp_path / "val.csv"
    out = _ok(
        ["model", "train", "--city", "chicago", "--horizon", "5m", "--model", "gbdt",
         "--from", FROM, "--to", TO, "--max-iter", "50", "--export-val", str(val_csv)]
    )  # fmt: skip
    assert "run 1" in out
    gbdt = get_run(conn, 1)
    data = gbdt.params["data"]
    assert data["splits"]["train"]["from"] == FROM and data["splits"]["test"]["to"] == TO
    assert gbdt.params["model_params"] == {"max_depth": 3, "max_iter": 50, "learning_rate": 0.05}
    assert gbdt.artifact_path is not None and gbdt.artifact_path.is_file()
    assert gbdt.artifact_path.is_relative_to(settings.kwx_data_dir / "models")

    # The recorded metrics are those of the saved model on the exported validation rows
    # (six days split 4/1/1: the validation day is the fifth).
    val = pd.read_csv(val_csv)
    assert set(val["climate_date"]) == {str(DAYS[4])}
    assert len(val) == gbdt.metrics["val"]["n"] > 0
    rows, _ = labelled_event(conn, EVENTS[4], 5, 0.005, "v1")
    p_val = predict_proba_up(load_artifact(gbdt), rows)
    np.testing.assert_allclose(np.sort(p_val), np.sort(val["p_up"].to_numpy()))
    assert binary_metrics(p_val, rows["y"])["brier"] == pytest.approx(gbdt.metrics["val"]["brier"])

    sweep = _ok(
        ["model", "sweep", "--city", "chicago", "--horizon", "5m", "--model", "logreg",
         "--from", FROM, "--to", TO, "--json"]
    )  # fmt: skip
    summary = json.loads(sweep.strip().splitlines()[-1])
    briers = [r["val"]["brier"] for r in summary["runs"]]
    assert len(briers) == 5 and briers == sorted(briers)
    assert "★ best" in sweep

    png_dir = tmp_path / "diag"
    for model in ("logreg", "gbdt"):
        cal = _ok(
            ["model", "calibrate", "--city", "chicago", "--horizon", "5m", "--model", model,
             "--out", str(png_dir), "--json"]
        )  # fmt: skip
        result = json.loads(cal.strip().splitlines()[-1])
        assert set(result["test"]) == {"identity", "platt", "isotonic"}
    assert len(list(png_dir.glob("reliability_chicago_5m_*.png"))) == 2
    # The logreg calibrated is the sweep's best.
    stored = pd.DataFrame(
        conn.execute(
            "SELECT model_type, method, run_id, metrics, is_default "
            "FROM model.calibration WHERE city = 'chicago' AND horizon = '5m'"
        ).fetchall(),
        columns=["model_type", "method", "run_id", "metrics", "is_default"],
    )
    assert len(stored) == 6  # three methods for each model type
    assert dict(zip(stored["model_type"], stored["run_id"], strict=True)) == {
        "logreg": summary["best_run"],
        "gbdt": 1,
    }
    tests = [m["test"] for m in stored["metrics"].tolist()]
    candidates = [
        Candidate(str(kind), str(method), int(run), float(t["brier"]), float(t["ece10"]))
        for kind, method, run, t in zip(
            stored["model_type"], stored["method"], stored["run_id"], tests, strict=True
        )
    ]
    chosen = choose_default(candidates)
    defaults = stored.loc[stored["is_default"], ["model_type", "method"]].to_numpy().tolist()
    assert defaults == [[chosen.model_type, chosen.method]]

    # The live predictor: same features as training, the stored calibrator on top.
    predictor = load_default(conn, settings, "chicago", "5m")
    assert predictor is not None
    assert (predictor.model_type, predictor.method) == (chosen.model_type, chosen.method)
    panel = load_event_panel(conn, EVENTS[-1])
    minute = panel[panel["ts"] == panel["ts"].iloc[0] + pd.Timedelta(hours=14)]
    assert 0 < len(minute) <= 6
    started = time.perf_counter()
    p = predictor.predict_up(minute)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    has_mid = minute["mid"].notna().to_numpy()
    assert np.isnan(p[~has_mid]).all()
    assert ((p[has_mid] >= 0) & (p[has_mid] <= 1)).all()
    raw = predict_proba_up(predictor.estimator, feature_frame(minute[has_mid]))
    np.testing.assert_allclose(p[has_mid], predictor.calibrator.predict(raw))


@needs_data()
def test_train_and_calibrate_api(real_days: Conn, settings: Settings) -> None:
    assert load_default(real_days, settings, "chicago", "1m") is None
    summary = train_and_calibrate(real_days, settings, "chicago", DAYS[0], DAYS[-1], horizon="1m")
    assert summary["run_id"] == 1 and summary["model"] == "logreg"
    assert summary["default"] is not None and summary["default"]["run_id"] == 1
    assert set(summary["test_calibrated"]) == {"identity", "platt", "isotonic"}
    assert load_default(real_days, settings, "chicago", "1m") is not None
    assert load_default(real_days, settings, "chicago", "5m") is None


@needs_data()
def test_bad_arguments_fail_clearly(real_days: Conn) -> None:
    for args, message in (
        (["model", "train", "--city", "chicago", "--horizon", "2m"], "horizon"),
        (["model", "train", "--city", "chicago", "--model", "svm"], "model must be"),
        (["model", "train", "--city", "atlantis"], "atlantis"),
        (["model", "calibrate", "--city", "chicago", "--horizon", "1m"], "no training runs"),
        (["model", "train", "--city", "chicago", "--from", TO, "--to", FROM], "before"),
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 1, args
        assert message in result.output, (args, result.output)
