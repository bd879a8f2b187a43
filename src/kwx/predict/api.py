"""The public face of `kwx.predict` for the strategy and the main job.

* `train_and_calibrate`: build the data set of a city's date range, train one model,
  calibrate it and re-choose the default calibrator — what the quickstart runs on its
  training days.
* `load_default`: the default calibrated predictor of a city and horizon, ready for the live
  loop: `predict_up(panel_rows)` is the calibrated probability that each row's mid goes up
  by at least ε within the horizon, given that it moves by ε either way (the model is
  trained only on rows that move). It is a pure function of the rows at t, built with the
  same `feature_frame` as training, and costs a few milliseconds for a handful of brackets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from kwx.config import Settings
from kwx.predict.calibrate import calibrate_run
from kwx.predict.calibration import Calibrator, calibrator_from_params
from kwx.predict.dataset import DEFAULT_EPSILON, Conn, build_dataset, horizon_minutes
from kwx.predict.features import feature_frame
from kwx.predict.store import default_calibration, get_run, load_artifact
from kwx.predict.train import predict_proba_up, train_run

FloatArray = npt.NDArray[np.float64]
SMALL_BATCH = 256  # rows up to which one thread predicts faster than the OpenMP pool


def train_and_calibrate(
    conn: Conn,
    settings: Settings,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    horizon: str = "5m",
    model: str = "logreg",
    *,
    epsilon: float = DEFAULT_EPSILON,
    mc_version: str = "v1",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on the range's first 60 % of days, validate and calibrate on the next 20 %,
    score on the last 20 %; store the run and calibrators, set the default. A summary."""
    dataset = build_dataset(
        conn, city, date_from, date_to, horizon=horizon, epsilon=epsilon, mc_version=mc_version
    )
    run, result = train_run(conn, settings, dataset, model, params)
    outcome = calibrate_run(conn, run, out_dir=None)
    default = outcome.default
    return {
        "city": city,
        "horizon": horizon,
        "model": model,
        "run_id": run.run_id,
        "rows": {k: v["rows"] for k, v in dataset.describe()["splits"].items()},  # type: ignore[attr-defined]
        "test": result.metrics.get("test", {}),
        "test_calibrated": {m: r["test"] for m, r in outcome.results.items()},
        "default": None
        if default is None
        else {"model_type": default.model_type, "method": default.method, "run_id": default.run_id},
        "load_seconds": round(dataset.load_seconds, 1),
    }


@dataclass(frozen=True)
class CalibratedPredictor:
    """A fitted classifier and the calibrator on top of it."""

    city: str
    horizon: str
    epsilon: float
    model_type: str
    method: str
    run_id: int
    estimator: Any
    calibrator: Calibrator
    # One thread for a few rows (`SMALL_BATCH`): the boosted trees' OpenMP pool costs more than it
    # saves there (measured: ~15 ms median and 400 ms spikes on a busy 2-core machine vs
    # ~2 ms single-threaded). The controller is built once; limiting through it is cheap.
    threads: Any = field(default_factory=ThreadpoolController, repr=False, compare=False)

    @property
    def horizon_min(self) -> int:
        return horizon_minutes(self.horizon)

    def predict_raw(self, frame: pd.DataFrame) -> FloatArray:
        """The classifier's own P(up) for panel rows (NaN for rows without a mid)."""
        out = np.full(len(frame), np.nan)
        if len(frame) == 0:
            return out
        has_mid = pd.to_numeric(frame["mid"], errors="coerce").notna().to_numpy()
        if has_mid.any():
            feats = feature_frame(frame.loc[has_mid])
            if len(feats) <= SMALL_BATCH:
                with self.threads.limit(limits=1, user_api="openmp"):
                    out[has_mid] = predict_proba_up(self.estimator, feats)
            else:  # a backtest's batch: let the trees use every core
                out[has_mid] = predict_proba_up(self.estimator, feats)
        return out

    def predict_up(self, frame: pd.DataFrame) -> FloatArray:
        """Calibrated P(mid(t+Δ) − mid(t) ≥ ε | |change| ≥ ε) per row; NaN without a mid."""
        raw = self.predict_raw(frame)
        ok = ~np.isnan(raw)
        out = np.full(len(raw), np.nan)
        if ok.any():
            out[ok] = np.clip(self.calibrator.predict(raw[ok]), 0.0, 1.0)
        return out


def load_default(
    conn: Conn, settings: Settings, city: str, horizon: str
) -> CalibratedPredictor | None:
    """The default calibrated predictor of (city, horizon), or None if none is stored."""
    del settings  # the run row names its model file; kept for a uniform signature
    horizon_minutes(horizon)
    record = default_calibration(conn, city, horizon)
    if record is None:
        return None
    run = get_run(conn, record.run_id)
    return CalibratedPredictor(
        city=city,
        horizon=horizon,
        epsilon=float(run.data.get("epsilon", DEFAULT_EPSILON)),
        model_type=record.model_type,
        method=record.method,
        run_id=record.run_id,
        estimator=load_artifact(run),
        calibrator=calibrator_from_params(record.method, record.params),
    )
