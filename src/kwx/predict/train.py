"""Fit a classifier on the training days, score it on validation and test, record the run.

Scores (`kwx.pmf.metrics.binary_metrics`): accuracy at 0.5, ROC AUC, Brier, ECE with 10 and
20 bins, and the class balance (positive rate) of each split. Validation picks among runs
(`kwx model sweep`) and fits the calibrators; test is touched only to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kwx.config import Settings
from kwx.pmf.metrics import binary_metrics
from kwx.predict.dataset import Conn, Dataset, Split
from kwx.predict.features import FEATURES
from kwx.predict.models import check_model_type, make_model, resolve_params, sweep_grid
from kwx.predict.store import RunRecord, record_run

FloatArray = npt.NDArray[np.float64]
SCORED: tuple[Split, ...] = ("train", "val", "test")
PREDICTION_COLUMNS = ("split", "event_ticker", "ticker", "climate_date", "ts", "p_up", "y")


@dataclass(frozen=True)
class FitResult:
    estimator: Any
    params: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    predictions: pd.DataFrame  # val and test rows: PREDICTION_COLUMNS
    fit_seconds: float


def predict_proba_up(estimator: Any, features: pd.DataFrame) -> FloatArray:
    """P(mid goes up) from a fitted estimator (class 1 is 'up')."""
    classes = list(estimator.classes_)
    if 1 not in classes:
        raise ValueError("the model was fitted without any 'up' rows")
    proba: FloatArray = np.asarray(
        estimator.predict_proba(features[list(FEATURES)]), dtype=np.float64
    )[:, classes.index(1)]
    return proba


def fit_and_score(dataset: Dataset, model: str, params: dict[str, Any] | None = None) -> FitResult:
    """Fit on the training split; metrics on every split; predictions of val and test."""
    kind = check_model_type(model)
    resolved = resolve_params(kind, params)
    x_train, y_train = dataset.xy("train")
    if np.unique(y_train).size < 2:
        raise ValueError(f"{dataset.city}: the training days have moves in one direction only")
    estimator = make_model(kind, resolved)
    started = time.perf_counter()
    estimator.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    metrics: dict[str, dict[str, float]] = {}
    frames = []
    for split in SCORED:
        part = dataset.part(split)
        if part.empty:
            continue
        p = predict_proba_up(estimator, part)
        metrics[split] = binary_metrics(p, part["y"].to_numpy())
        if split != "train":
            frames.append(
                part[["event_ticker", "ticker", "climate_date", "ts", "y"]].assign(
                    split=split, p_up=p
                )
            )
    predictions = pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)]
    return FitResult(estimator, resolved, metrics, predictions, fit_seconds)


def train_run(
    conn: Conn,
    settings: Settings,
    dataset: Dataset,
    model: str,
    params: dict[str, Any] | None = None,
    *,
    sweep: str | None = None,
) -> tuple[RunRecord, FitResult]:
    """Fit, score and record one run (model file and predictions saved with it)."""
    result = fit_and_score(dataset, model, params)
    run_params: dict[str, Any] = {
        "model_params": result.params,
        "features": list(FEATURES),
        "data": dataset.describe(),
        "fit_seconds": round(result.fit_seconds, 3),
    }
    if sweep is not None:
        run_params["sweep"] = sweep
    run = record_run(
        conn,
        settings,
        city=dataset.city,
        horizon=dataset.horizon,
        model_type=check_model_type(model),
        params=run_params,
        metrics=result.metrics,
        estimator=result.estimator,
        predictions=result.predictions,
    )
    return run, result


def sweep_runs(
    conn: Conn,
    settings: Settings,
    dataset: Dataset,
    model: str,
    *,
    on_run: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:
    """One recorded run per combination of the family's grid, tagged with one sweep id."""
    tag = f"{dataset.city}-{dataset.horizon}-{model}-{time.strftime('%Y%m%dT%H%M%S')}"
    runs = []
    for params in sweep_grid(model):
        run, _ = train_run(conn, settings, dataset, model, params, sweep=tag)
        runs.append(run)
        if on_run is not None:
            on_run(run)
    return runs


def export_predictions(frame: pd.DataFrame, path: Path) -> None:
    """Write predictions as parquet (by the .parquet suffix) or CSV (anything else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
