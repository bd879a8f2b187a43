"""Where runs and calibrators live: rows in `model.runs` / `model.calibration`, files on disk.

A training run is one row of `model.runs` (kind 'train': parameters, features, date ranges
and split dates in `params`; metrics per split in `metrics`) plus two files under
``settings.kwx_data_dir / "models" / city / horizon / model_type``: the fitted estimator
(``run{id}.joblib``) and its validation and test predictions (``run{id}.predictions.parquet``),
which is all calibration needs — so `kwx model calibrate` reads no panel. The row is written
and the files saved in one transaction: a failed save leaves no run without its model.

"Comparable" runs share a data key (city, horizon, date range, ε, Monte Carlo version): their
validation and test sets are the same rows, so their scores can be ranked against each other.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import pandas as pd
import psycopg

from kwx.config import Settings
from kwx.predict.calibration import Candidate, choose_default
from kwx.predict.features import FEATURES

Conn = psycopg.Connection[tuple[object, ...]]

DataKey = tuple[str, str, str, str, str, str]


def jsonable(value: Any) -> Any:
    """Plain JSON for jsonb: NaN and infinities become null (PostgreSQL refuses them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def models_dir(settings: Settings) -> Path:
    return settings.kwx_data_dir / "models"


@dataclass(frozen=True)
class RunRecord:
    """One `model.runs` row of kind 'train'."""

    run_id: int
    city: str
    horizon: str
    model_type: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifact_path: Path | None
    created_at: dt.datetime

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.params.get("data", {})
        return data

    @property
    def data_key(self) -> DataKey:
        d = self.data
        return (
            self.city,
            self.horizon,
            str(d.get("date_from")),
            str(d.get("date_to")),
            str(d.get("epsilon")),
            str(d.get("mc_version")),
        )

    @property
    def predictions_path(self) -> Path:
        if self.artifact_path is None:
            raise ValueError(f"run {self.run_id} has no stored model")
        return self.artifact_path.with_suffix(".predictions.parquet")

    def val_brier(self) -> float:
        value = self.metrics.get("val", {}).get("brier")
        return float(value) if value is not None else math.inf


_RUN_COLUMNS = "run_id, city, horizon, model_type, params, metrics, artifact_path, created_at"


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=int(row[0]),
        city=str(row[1]),
        horizon=str(row[2]),
        model_type=str(row[3]),
        params=dict(row[4]),
        metrics=dict(row[5]),
        artifact_path=None if row[6] is None else Path(row[6]),
        created_at=row[7],
    )


def record_run(
    conn: Conn,
    settings: Settings,
    *,
    city: str,
    horizon: str,
    model_type: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    estimator: Any,
    predictions: pd.DataFrame,
) -> RunRecord:
    """Insert the run, save its model and predictions, record the path; one transaction."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO model.runs (kind, city, horizon, model_type, params, metrics) "
            "VALUES ('train', %s, %s, %s, %s::jsonb, %s::jsonb) RETURNING run_id",
            (
                city,
                horizon,
                model_type,
                json.dumps(jsonable(params)),
                json.dumps(jsonable(metrics)),
            ),
        ).fetchone()
        assert row is not None
        run_id = int(row[0])  # type: ignore[call-overload]
        folder = models_dir(settings) / city / horizon / model_type
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run{run_id}.joblib"
        joblib.dump(
            {
                "estimator": estimator,
                "features": list(FEATURES),
                "model_type": model_type,
                "horizon": horizon,
                "city": city,
                "run_id": run_id,
            },
            path,
        )
        predictions.to_parquet(path.with_suffix(".predictions.parquet"), index=False)
        conn.execute(
            "UPDATE model.runs SET artifact_path = %s WHERE run_id = %s", (str(path), run_id)
        )
    conn.commit()  # conn.transaction() only makes a savepoint inside a caller's transaction
    return get_run(conn, run_id)


def get_run(conn: Conn, run_id: int) -> RunRecord:
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM model.runs WHERE run_id = %s AND kind = 'train'",
        (run_id,),
    ).fetchone()
    conn.commit()
    if row is None:
        raise ValueError(f"model.runs has no training run {run_id}")
    return _run(row)


def train_runs(
    conn: Conn, city: str, horizon: str, model_type: str | None = None
) -> list[RunRecord]:
    """Training runs with a stored model for the city and horizon, newest first."""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM model.runs WHERE kind = 'train' AND city = %s "
        "AND horizon = %s AND (%s::text IS NULL OR model_type = %s) "
        "AND artifact_path IS NOT NULL ORDER BY created_at DESC, run_id DESC",
        (city, horizon, model_type, model_type),
    ).fetchall()
    conn.commit()
    return [_run(r) for r in rows]


def best_run(conn: Conn, city: str, horizon: str, model_type: str | None = None) -> RunRecord:
    """The lowest validation Brier among the runs comparable with the newest one (same data
    key); ties go to the earlier run."""
    runs = train_runs(conn, city, horizon, model_type)
    if not runs:
        what = f"{model_type} " if model_type else ""
        raise ValueError(
            f"no {what}training runs for {city} {horizon}: run `kwx model train` first"
        )
    key = runs[0].data_key
    same = [r for r in runs if r.data_key == key]
    return min(same, key=lambda r: (r.val_brier(), r.run_id))


def load_artifact(run: RunRecord) -> Any:
    """The fitted estimator of a run; refuses one trained on another feature list."""
    if run.artifact_path is None or not run.artifact_path.is_file():
        raise ValueError(f"run {run.run_id}: model file {run.artifact_path} is missing")
    blob = joblib.load(run.artifact_path)
    if list(blob.get("features", [])) != list(FEATURES):
        raise ValueError(f"run {run.run_id} was trained on another feature list; train it again")
    return blob["estimator"]


def load_predictions(run: RunRecord) -> pd.DataFrame:
    path = run.predictions_path
    if not path.is_file():
        raise ValueError(f"run {run.run_id}: predictions file {path} is missing")
    return pd.read_parquet(path)


def save_calibration(
    conn: Conn,
    *,
    run: RunRecord,
    method: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """Upsert the calibrator of (city, horizon, model type, method); not yet the default."""
    conn.execute(
        "INSERT INTO model.calibration (city, horizon, model_type, method, params, metrics, "
        "is_default, fitted_at, run_id) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, false, "
        "now(), %s) ON CONFLICT (city, horizon, model_type, method) DO UPDATE SET "
        "params = excluded.params, metrics = excluded.metrics, is_default = false, "
        "fitted_at = excluded.fitted_at, run_id = excluded.run_id",
        (
            run.city,
            run.horizon,
            run.model_type,
            method,
            json.dumps(jsonable(params)),
            json.dumps(jsonable(metrics)),
            run.run_id,
        ),
    )


def set_default(conn: Conn, city: str, horizon: str, key: DataKey) -> Candidate | None:
    """Mark the default calibrator of (city, horizon) among those on runs with data key
    `key` (`choose_default`'s rule); every other row of the pair stops being the default."""
    rows = conn.execute(
        "SELECT c.model_type, c.method, c.run_id, c.metrics, "
        f"{', '.join('r.' + c for c in _RUN_COLUMNS.split(', '))} "
        "FROM model.calibration c JOIN model.runs r ON r.run_id = c.run_id "
        "WHERE c.city = %s AND c.horizon = %s",
        (city, horizon),
    ).fetchall()
    candidates = []
    for row in rows:
        run = _run(row[4:])
        metrics: dict[str, Any] = row[3] if isinstance(row[3], dict) else {}
        test = metrics.get("test", {})
        if run.data_key != key or test.get("brier") is None:
            continue
        candidates.append(
            Candidate(
                model_type=str(row[0]),
                method=str(row[1]),
                run_id=int(row[2]),  # type: ignore[call-overload]
                test_brier=float(test["brier"]),
                test_ece10=float(test.get("ece10") or math.inf),
            )
        )
    conn.execute(
        "UPDATE model.calibration SET is_default = false WHERE city = %s AND horizon = %s",
        (city, horizon),
    )
    if not candidates:
        return None
    chosen = choose_default(candidates)
    conn.execute(
        "UPDATE model.calibration SET is_default = true WHERE city = %s AND horizon = %s "
        "AND model_type = %s AND method = %s",
        (city, horizon, chosen.model_type, chosen.method),
    )
    return chosen


@dataclass(frozen=True)
class CalibrationRecord:
    city: str
    horizon: str
    model_type: str
    method: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    run_id: int
    fitted_at: dt.datetime


def default_calibration(conn: Conn, city: str, horizon: str) -> CalibrationRecord | None:
    row = conn.execute(
        "SELECT city, horizon, model_type, method, params, metrics, run_id, fitted_at "
        "FROM model.calibration WHERE city = %s AND horizon = %s AND is_default",
        (city, horizon),
    ).fetchone()
    conn.commit()
    if row is None or row[6] is None:
        return None
    return CalibrationRecord(
        city=str(row[0]),
        horizon=str(row[1]),
        model_type=str(row[2]),
        method=str(row[3]),
        params=dict(row[4]),  # type: ignore[call-overload]
        metrics=dict(row[5]),  # type: ignore[call-overload]
        run_id=int(row[6]),  # type: ignore[call-overload]
        fitted_at=row[7],  # type: ignore[arg-type]
    )
