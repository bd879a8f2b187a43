"""Calibrators of the classifiers' probabilities, and the rule that picks the default.

Both follow scikit-learn's estimator contract — `fit(p, y)` learns the state ending in `_`,
`predict(p)` has no side effects — and both can be rebuilt exactly from the plain parameters
stored in `model.calibration` (`params()` / `from_params`), so the live loop needs no pickle
of them:

* **Platt**: p' = σ(a·logit(p) + b), a logistic regression (scikit-learn, unpenalised) on the
  logit of the raw probability; two parameters, monotone, smooth.
* **Isotonic**: scikit-learn's IsotonicRegression of y on p, stored as its threshold points;
  prediction interpolates linearly between them and clips outside (what scikit-learn's
  `out_of_bounds="clip"` does). Flexible, step-like, can overfit a small validation set.
* **Identity**: the classifier's own probability, stored beside the two so the default rule
  can keep it when neither calibrator helps on the test days (measured: with a base rate
  that drifts between the validation and test months, a calibrator fitted on validation
  can make a boosted model's test ECE worse).

The default per city and horizon (`choose_default`) is the candidate with the lower test
Brier and ECE. When the two disagree, Brier decides: it is a proper scoring rule, whereas
ECE depends on the binning and rewards a constant forecast of the base rate. Brier scores
within `BRIER_TIE` of the lowest are a tie, settled by the lower 10-bin ECE, then by the
simpler method (identity, then Platt, then isotonic), then by the lower run id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

FloatArray = npt.NDArray[np.float64]
Method = Literal["identity", "platt", "isotonic"]
METHODS: Final = ("identity", "platt", "isotonic")  # also the tie order: simplest first
LOGIT_CLIP: Final = 1e-6
BRIER_TIE: Final = 1e-6


class Calibrator(Protocol):
    method: str

    def fit(self, p: npt.ArrayLike, y: npt.ArrayLike) -> Calibrator: ...
    def predict(self, p: npt.ArrayLike) -> FloatArray: ...
    def params(self) -> dict[str, Any]: ...


def _inputs(p: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    pa = np.asarray(p, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if pa.shape != ya.shape or pa.size == 0:
        raise ValueError(f"calibration needs equal, non-empty p and y ({pa.size} vs {ya.size})")
    if np.unique(ya).size < 2:
        raise ValueError("calibration needs both outcomes in the fitting set")
    return pa, ya


def logit(p: npt.ArrayLike) -> FloatArray:
    pa = np.clip(np.asarray(p, dtype=np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(pa / (1.0 - pa))


class IdentityCalibrator:
    """No calibration: the classifier's probability as it is."""

    method: str = "identity"

    def fit(self, p: npt.ArrayLike, y: npt.ArrayLike) -> IdentityCalibrator:
        _inputs(p, y)
        return self

    def predict(self, p: npt.ArrayLike) -> FloatArray:
        out: FloatArray = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        return out

    def params(self) -> dict[str, Any]:
        return {}


class PlattCalibrator:
    """σ(a·logit(p) + b), fitted by maximum likelihood."""

    method: str = "platt"

    def __init__(self) -> None:
        self.a_: float | None = None
        self.b_: float | None = None

    def fit(self, p: npt.ArrayLike, y: npt.ArrayLike) -> PlattCalibrator:
        pa, ya = _inputs(p, y)
        lr = LogisticRegression(C=np.inf, max_iter=1000)  # unpenalised
        lr.fit(logit(pa).reshape(-1, 1), ya.astype(np.int64))
        self.a_ = float(lr.coef_[0, 0])
        self.b_ = float(lr.intercept_[0])
        return self

    def predict(self, p: npt.ArrayLike) -> FloatArray:
        if self.a_ is None or self.b_ is None:
            raise RuntimeError("PlattCalibrator is not fitted")
        z = self.a_ * logit(p) + self.b_
        out: FloatArray = 1.0 / (1.0 + np.exp(-z))
        return out

    def params(self) -> dict[str, Any]:
        return {"a": self.a_, "b": self.b_}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PlattCalibrator:
        out = cls()
        out.a_, out.b_ = float(params["a"]), float(params["b"])
        return out


class IsotonicCalibrator:
    """A monotone step fit of y on p, kept as its threshold points."""

    method: str = "isotonic"

    def __init__(self) -> None:
        self.x_: FloatArray | None = None
        self.y_: FloatArray | None = None

    def fit(self, p: npt.ArrayLike, y: npt.ArrayLike) -> IsotonicCalibrator:
        pa, ya = _inputs(p, y)
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(pa, ya)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def predict(self, p: npt.ArrayLike) -> FloatArray:
        if self.x_ is None or self.y_ is None:
            raise RuntimeError("IsotonicCalibrator is not fitted")
        out: FloatArray = np.interp(np.asarray(p, dtype=np.float64), self.x_, self.y_)
        return out

    def params(self) -> dict[str, Any]:
        assert self.x_ is not None and self.y_ is not None
        return {"x_thresholds": self.x_.tolist(), "y_thresholds": self.y_.tolist()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> IsotonicCalibrator:
        out = cls()
        out.x_ = np.asarray(params["x_thresholds"], dtype=np.float64)
        out.y_ = np.asarray(params["y_thresholds"], dtype=np.float64)
        if out.x_.size == 0 or out.x_.shape != out.y_.shape:
            raise ValueError("isotonic parameters need equal, non-empty threshold lists")
        return out


def make_calibrator(method: str) -> Calibrator:
    if method == "identity":
        return IdentityCalibrator()
    if method == "platt":
        return PlattCalibrator()
    if method == "isotonic":
        return IsotonicCalibrator()
    raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")


def calibrator_from_params(method: str, params: dict[str, Any]) -> Calibrator:
    if method == "identity":
        return IdentityCalibrator()
    if method == "platt":
        return PlattCalibrator.from_params(params)
    if method == "isotonic":
        return IsotonicCalibrator.from_params(params)
    raise ValueError(f"unknown calibration method {method!r} in model.calibration")


@dataclass(frozen=True)
class Candidate:
    """One stored calibrator as the default rule sees it."""

    model_type: str
    method: str
    run_id: int
    test_brier: float
    test_ece10: float


def choose_default(candidates: Sequence[Candidate]) -> Candidate:
    """The default by the rule in the module docstring (Brier first, ties by ECE)."""
    if not candidates:
        raise ValueError("no calibrators to choose a default from")
    order = {m: i for i, m in enumerate(METHODS)}
    lowest = min(c.test_brier for c in candidates)
    tied = [c for c in candidates if c.test_brier - lowest <= BRIER_TIE]
    return min(tied, key=lambda c: (c.test_ece10, order.get(c.method, len(order)), c.run_id))
