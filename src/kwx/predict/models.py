"""The two classifier families, their default hyper-parameters and the sweep grids.

* ``logreg``: a scikit-learn Pipeline of StandardScaler and LogisticRegression(C) — a linear
  baseline whose probabilities are already close to calibrated;
* ``gbdt``: HistGradientBoostingClassifier(max_depth, max_iter, learning_rate) — trees for
  the interactions (a fast bracket near the running max, say). Its internal early stopping
  is off: it would hold out a random 10 % of rows, mixing days, where our validation is a
  later block of days.

Both are seeded, so the same data and parameters give the same model.
"""

from __future__ import annotations

import itertools
from typing import Any, Final, Literal

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ModelType = Literal["logreg", "gbdt"]
MODEL_TYPES: Final = ("logreg", "gbdt")
SEED: Final = 0

DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "logreg": {"C": 1.0},
    "gbdt": {"max_depth": 3, "max_iter": 200, "learning_rate": 0.05},
}

SWEEP_GRIDS: Final[dict[str, dict[str, list[Any]]]] = {
    "logreg": {"C": [0.001, 0.01, 0.1, 1.0, 10.0]},
    "gbdt": {
        "max_depth": [2, 3, 5],
        "max_iter": [100, 300],
        "learning_rate": [0.03, 0.1],
    },
}


def check_model_type(model: str) -> ModelType:
    if model == "logreg":
        return "logreg"
    if model == "gbdt":
        return "gbdt"
    raise ValueError(f"model must be one of {', '.join(MODEL_TYPES)}, got {model!r}")


def resolve_params(model: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The defaults overridden by `params`; unknown names are refused (a typo must not
    silently train the default model)."""
    kind = check_model_type(model)
    given = dict(params or {})
    unknown = sorted(set(given) - set(DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"{kind} has no parameter(s) {', '.join(unknown)}")
    merged = {**DEFAULTS[kind], **given}
    if kind == "logreg" and not float(merged["C"]) > 0:
        raise ValueError(f"logreg C must be positive, got {merged['C']}")
    if kind == "gbdt":
        if int(merged["max_depth"]) < 1 or int(merged["max_iter"]) < 1:
            raise ValueError(f"gbdt max_depth and max_iter must be ≥ 1, got {merged}")
        if not 0 < float(merged["learning_rate"]) <= 1:
            raise ValueError(f"gbdt learning_rate must be in (0, 1], got {merged}")
    return merged


def make_model(model: str, params: dict[str, Any] | None = None) -> Any:
    """An unfitted estimator of the family with the resolved parameters."""
    kind = check_model_type(model)
    p = resolve_params(kind, params)
    if kind == "logreg":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("logreg", LogisticRegression(C=float(p["C"]), max_iter=2000)),
            ]
        )
    return HistGradientBoostingClassifier(
        max_depth=int(p["max_depth"]),
        max_iter=int(p["max_iter"]),
        learning_rate=float(p["learning_rate"]),
        early_stopping=False,
        random_state=SEED,
    )


def sweep_grid(model: str) -> list[dict[str, Any]]:
    """Every parameter combination of the family's grid, in a fixed order."""
    grid = SWEEP_GRIDS[check_model_type(model)]
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
