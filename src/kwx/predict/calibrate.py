"""Calibrate a training run: Platt and isotonic fitted on its validation predictions (and
the identity, the model as it is), scored on its test predictions, stored in
`model.calibration`, the default re-chosen, and a reliability diagram drawn.

The test set never shapes a calibrator; it only scores them (Brier, ECE with 10 and 20
bins, before and after) and, through those scores, decides the default (see
`kwx.predict.calibration.choose_default`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from kwx.pmf.metrics import brier, ece, reliability_curve
from kwx.predict.calibration import METHODS, Candidate, make_calibrator
from kwx.predict.dataset import Conn
from kwx.predict.store import (
    RunRecord,
    best_run,
    get_run,
    load_predictions,
    save_calibration,
    set_default,
)


def _scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"brier": brier(p, y), "ece10": ece(p, y, 10), "ece20": ece(p, y, 20), "n": len(p)}


@dataclass(frozen=True)
class CalibrationOutcome:
    run: RunRecord
    # method → {"params", "val", "test"}; "identity" holds the uncalibrated scores.
    results: dict[str, dict[str, Any]]
    default: Candidate | None
    png: Path | None


def reliability_png(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path, n_bins: int = 10
) -> Path:
    """One reliability diagram (test set): each method's curve against the diagonal, and
    the histogram of the raw probabilities below it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, (p, y) in curves.items():
        mean_p, freq, _ = reliability_curve(p, y, n_bins)
        label = "uncalibrated" if name == "identity" else name
        ax.plot(mean_p, freq, marker="o", label=f"{label} (ECE {ece(p, y, n_bins):.3f})")
    ax.set_ylabel("observed frequency of an up move")
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    raw = curves.get("identity")
    if raw is not None:
        hist.hist(raw[0], bins=np.linspace(0, 1, 2 * n_bins + 1), color="tab:blue", alpha=0.6)
    hist.set_xlabel("predicted probability (test days)")
    hist.set_ylabel("rows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibrate_run(conn: Conn, run: RunRecord, out_dir: Path | None) -> CalibrationOutcome:
    """Fit both calibrators on the run's validation predictions, score on test, store them
    and re-choose the default of (city, horizon); one transaction."""
    preds = load_predictions(run)
    val, test = preds[preds["split"] == "val"], preds[preds["split"] == "test"]
    if val.empty or test.empty:
        raise ValueError(f"run {run.run_id} has no validation or no test predictions")
    pv, yv = val["p_up"].to_numpy(np.float64), val["y"].to_numpy(np.float64)
    pt, yt = test["p_up"].to_numpy(np.float64), test["y"].to_numpy(np.float64)
    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    uncalibrated = _scores(pt, yt)
    with conn.transaction():
        for method in METHODS:
            cal = make_calibrator(method).fit(pv, yv)
            cv, ct = cal.predict(pv), cal.predict(pt)
            metrics = {
                "val": _scores(cv, yv),
                "test": _scores(ct, yt),
                "test_uncalibrated": uncalibrated,
            }
            save_calibration(conn, run=run, method=method, params=cal.params(), metrics=metrics)
            results[method] = {"params": cal.params(), **metrics}
            curves[method] = (ct, yt)
        default = set_default(conn, run.city, run.horizon, run.data_key)
    conn.commit()  # conn.transaction() only makes a savepoint inside a caller's transaction
    png = None
    if out_dir is not None:
        png = reliability_png(
            curves,
            f"{run.city} {run.horizon} {run.model_type} run {run.run_id}: test days",
            out_dir / f"reliability_{run.city}_{run.horizon}_{run.model_type}_run{run.run_id}.png",
        )
    return CalibrationOutcome(run=run, results=results, default=default, png=png)


def calibrate_best(
    conn: Conn,
    city: str,
    horizon: str,
    model_type: str | None = None,
    *,
    run_id: int | None = None,
    out_dir: Path | None = None,
) -> CalibrationOutcome:
    """Calibrate run `run_id`, or else the best comparable run (`store.best_run`)."""
    run = get_run(conn, run_id) if run_id is not None else best_run(conn, city, horizon, model_type)
    if run.city != city or run.horizon != horizon:
        raise ValueError(f"run {run.run_id} is {run.city} {run.horizon}, not {city} {horizon}")
    return calibrate_run(conn, run, out_dir)
