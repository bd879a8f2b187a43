"""Fit, store and apply the fusion of p_mkt and p_wx for a city (see `kwx.pmf.pool`).

- `fit_fusion` learns α on a city's training days from pmf.minute sampled every
  `SAMPLE_EVERY_MIN` minutes (the p_mkt pass runs first for events that lack it) and stores
  the config in model.fusion_config under a version name;
- `run_fusion` applies a stored config to every minute of a range and writes w_mkt, p_fused
  (the pooled, unnormalised product) and p_fused_norm (summing to 1 per event and minute);
- `walk_forward` does both fold by fold (fit on the days before the fold less
  `WALK_GAP_DAYS`, apply to the fold), so that every day from the first fold on is scored
  out of sample by a pool that only knew its past: a held-out sample several times larger
  than one split's;
- `fusion_report` (in `kwx.pmf.report`) scores the stored columns on held-out days.
Every input of the row at t is a value known at t (p_wx from the weather model's row at t,
p_mkt and the market features from candles closed by t), so p_fused has no look-ahead
either; α itself comes from the training days only.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from kwx.pmf.anchored import HOUR_EDGES, TERMS, AnchoredPool, choose_strength
from kwx.pmf.frames import (
    BASE_COLUMNS,
    Ladder,
    Sample,
    anchored_inputs,
    assemble,
    complete,
    load_ladders,
    read_minutes,
)
from kwx.pmf.market import events_in_range, write_event_market, write_p_mkt
from kwx.pmf.metrics import log_loss_winner
from kwx.pmf.pool import FEATURES, LogPool
from kwx.pmf.report import fusion_report
from kwx.store.bulk import copy_into, create_stage

Conn = psycopg.Connection[tuple[object, ...]]
Pool = LogPool | AnchoredPool
ANCHORED = "anchored"
MODELS = ("log", ANCHORED)
MEDIAN = "tmax_q50"

SAMPLE_EVERY_MIN = 10
# Floors tried on p_wx before logs; the one with the highest training likelihood is kept
# (p_wx is exactly 0 on ruled-out brackets, and how hard the pool believes such a zero is a
# property of the weather model that the training days can tell).
P_FLOORS = (1e-4, 1e-3, 1e-2)
# Days left out between a walk-forward fold's training days and the fold: the official high of
# the day before the fold is published in the fold's first morning (the CLI report), after
# the fold's first minutes were pooled, so that day cannot be a training day yet.
WALK_GAP_DAYS = 1

__all__ = [
    "FusionConfig",
    "fit_fusion",
    "fusion_report",
    "latest_config",
    "load_config",
    "run_fusion",
    "walk_forward",
]


@dataclass(frozen=True)
class FusionConfig:
    """A fitted pool for one city: what model.fusion_config stores.

    `model` is "log" (the weighted log pool, `LogPool`: alpha, feature_mean, feature_scale)
    or "anchored" (the market-anchored pool, `AnchoredPool`: coef per hour bucket,
    hour_edges, strength)."""

    city: str
    version: str
    mc_version: str
    alpha: list[float]
    feature_mean: list[float]
    feature_scale: list[float]
    p_floor: float
    train_from: dt.date
    train_to: dt.date
    metrics: dict[str, Any] = field(default_factory=dict)
    model: str = "log"
    coef: list[list[float]] = field(default_factory=list)
    hour_edges: list[int] = field(default_factory=list)
    strength: list[float] = field(default_factory=list)  # λ per hour bucket

    def estimator(self) -> Pool:
        """The fitted estimator this config describes."""
        if self.model == ANCHORED:
            anchored = AnchoredPool(
                strength=tuple(self.strength),
                p_floor=self.p_floor,
                hour_edges=tuple(self.hour_edges),
            )
            anchored.coef_ = np.asarray(self.coef, dtype=np.float64)
            return anchored
        model = LogPool(p_floor=self.p_floor)
        model.alpha_ = np.asarray(self.alpha, dtype=np.float64)
        model.mean_ = np.asarray(self.feature_mean, dtype=np.float64)
        model.scale_ = np.asarray(self.feature_scale, dtype=np.float64)
        return model

    def params(self) -> dict[str, Any]:
        if self.model == ANCHORED:
            return {
                "model": ANCHORED,
                "terms": list(TERMS),
                "coef": self.coef,
                "hour_edges": self.hour_edges,
                # JSON has no infinity: the market itself is stored as strength null.
                "strength": [v if math.isfinite(v) else None for v in self.strength],
                "p_floor": self.p_floor,
            }
        return {
            "features": list(FEATURES),
            "alpha": self.alpha,
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "p_floor": self.p_floor,
        }


def save_config(conn: Conn, config: FusionConfig) -> None:
    conn.execute(
        "INSERT INTO model.fusion_config (city, version, params, metrics, mc_version, "
        "train_from, train_to, fitted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (city, version) DO UPDATE SET params = excluded.params, "
        "metrics = excluded.metrics, mc_version = excluded.mc_version, "
        "train_from = excluded.train_from, train_to = excluded.train_to, "
        "fitted_at = excluded.fitted_at",
        (
            config.city,
            config.version,
            json.dumps(config.params()),
            json.dumps(config.metrics),
            config.mc_version,
            config.train_from,
            config.train_to,
        ),
    )
    conn.commit()


def load_config(conn: Conn, city: str, version: str = "f1") -> FusionConfig:
    """The stored config; a clear error naming the fit command when there is none."""
    row = conn.execute(
        "SELECT version, params, metrics, mc_version, train_from, train_to "
        "FROM model.fusion_config WHERE city = %s AND version = %s",
        (city, version),
    ).fetchone()
    conn.commit()
    if row is None:
        raise ValueError(
            f"model.fusion_config has no version {version!r} for {city}: "
            f"run kwx fusion fit --city {city} first"
        )
    return _config_of(city, row)


def latest_config(conn: Conn, city: str, mc_version: str) -> FusionConfig | None:
    """The most recently fitted config of a city for a weather-model version, if any (what
    the live loop pools with when pmf.minute has no p_fused_norm for the minute yet)."""
    row = conn.execute(
        "SELECT version, params, metrics, mc_version, train_from, train_to "
        "FROM model.fusion_config WHERE city = %s AND mc_version = %s "
        "ORDER BY fitted_at DESC, version LIMIT 1",
        (city, mc_version),
    ).fetchone()
    conn.commit()
    return None if row is None else _config_of(city, row)


def _config_of(city: str, row: tuple[object, ...]) -> FusionConfig:
    version, params, metrics, mc_version, train_from, train_to = row
    assert isinstance(params, dict) and isinstance(metrics, dict)
    assert isinstance(train_from, dt.date) and isinstance(train_to, dt.date)
    if params.get("model") == ANCHORED:
        if list(params.get("terms", [])) != list(TERMS):
            raise ValueError(
                f"model.fusion_config {city}/{version}: terms {params.get('terms')} "
                f"differ from this code's {list(TERMS)}; refit it"
            )
        strength = params.get("strength") or []
        return FusionConfig(
            city=city,
            version=str(version),
            mc_version=str(mc_version),
            alpha=[],
            feature_mean=[],
            feature_scale=[],
            p_floor=float(params["p_floor"]),
            train_from=train_from,
            train_to=train_to,
            metrics=metrics,
            model=ANCHORED,
            coef=[[float(c) for c in row] for row in params["coef"]],
            hour_edges=[int(h) for h in params["hour_edges"]],
            strength=[math.inf if v is None else float(v) for v in strength],
        )
    if list(params.get("features", [])) != list(FEATURES):
        raise ValueError(
            f"model.fusion_config {city}/{version}: features {params.get('features')} "
            f"differ from this code's {list(FEATURES)}; refit it"
        )
    assert isinstance(train_from, dt.date) and isinstance(train_to, dt.date)
    return FusionConfig(
        city=city,
        version=str(version),
        mc_version=str(mc_version),
        alpha=[float(a) for a in params["alpha"]],
        feature_mean=[float(a) for a in params["feature_mean"]],
        feature_scale=[float(a) for a in params["feature_scale"]],
        p_floor=float(params["p_floor"]),
        train_from=train_from,
        train_to=train_to,
        metrics=metrics,
    )


def training_sample(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str = "v1",
    every_min: int = SAMPLE_EVERY_MIN,
    extra: tuple[str, ...] = (),
) -> tuple[Sample, dict[str, Ladder]]:
    """Complete event-minutes with a known winner, every `every_min` minutes (and their
    events' ladders)."""
    frame = read_minutes(
        conn, city, date_from, date_to, mc_version, every_min=every_min, extra=extra
    )
    if frame.empty:
        raise ValueError(
            f"pmf.minute has no {mc_version} rows for {city} {date_from} → {date_to}: "
            "run kwx weather backfill first"
        )
    ladders = load_ladders(conn, sorted(set(frame["event_ticker"])))
    sample = assemble(frame, ladders, extra=extra)
    return sample.take(complete(sample) & (sample.winner >= 0)), ladders


def fit_fusion(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str = "v1",
    version: str = "f1",
    every_min: int = SAMPLE_EVERY_MIN,
    on_event: Callable[[str, int], None] | None = None,
    model: str = "log",
    strength: float | None = None,
) -> FusionConfig:
    """Fit the pool `model` ("log" or "anchored") for a city on climate days
    date_from..date_to and store it as `version`. The anchored pool's prior strength is
    `strength` when given, else chosen on the training days' last month (`choose_strength`)."""
    if model not in MODELS:
        raise ValueError(f"unknown fusion model {model!r}: use one of {', '.join(MODELS)}")
    write_p_mkt(
        conn,
        city,
        date_from,
        date_to,
        mc_version=mc_version,
        only_missing=True,
        on_event=on_event,
    )
    sample, ladders = training_sample(
        conn,
        city,
        date_from,
        date_to,
        mc_version=mc_version,
        every_min=every_min,
        extra=(MEDIAN,) if model == ANCHORED else (),
    )
    if len(sample) == 0:
        raise ValueError(
            f"no complete event-minutes with a settled winner for {city} "
            f"{date_from} → {date_to} (need p_mkt, p_wx, hazard and a settled market)"
        )
    if model == ANCHORED:
        config = _fit_anchored(
            conn, city, (date_from, date_to), sample, ladders, mc_version, version, every_min,
            strength,
        )  # fmt: skip
        save_config(conn, config)
        return config
    by_floor = {
        floor: LogPool(p_floor=floor, grid=False)
        .fit(sample.x, sample.p_mkt, sample.p_wx, sample.winner)
        .nll_
        for floor in P_FLOORS
    }
    floor = min(by_floor, key=lambda f: by_floor[f])
    log_pool = LogPool(p_floor=floor).fit(sample.x, sample.p_mkt, sample.p_wx, sample.winner)
    fused = log_pool.predict(sample.x, sample.p_mkt, sample.p_wx)
    rows = [r[~np.isnan(r)] for r in fused]
    w = log_pool.weight(sample.x)
    metrics: dict[str, Any] = {
        "nll": log_pool.nll_,
        "nll_by_floor": {str(f): v for f, v in by_floor.items()},
        "converged": log_pool.converged_,
        "grid_alpha": [float(a) for a in log_pool.grid_alpha_],
        "grid_nll": float(log_pool.grid_nll_),
        "n_rows": len(sample),
        "n_events": len(set(sample.event)),
        "sample_every_min": every_min,
        "train_log_loss": {
            "p_fused_norm": log_loss_winner(rows, sample.winner),
            "p_mkt": log_loss_winner([r[~np.isnan(r)] for r in sample.p_mkt], sample.winner),
            "p_wx": log_loss_winner([r[~np.isnan(r)] for r in sample.p_wx], sample.winner),
        },
        "w_mkt_quantiles": [float(q) for q in np.quantile(w, [0.05, 0.25, 0.5, 0.75, 0.95])],
    }
    config = FusionConfig(
        city=city,
        version=version,
        mc_version=mc_version,
        alpha=[float(a) for a in log_pool.alpha_],
        feature_mean=[float(a) for a in log_pool.mean_],
        feature_scale=[float(a) for a in log_pool.scale_],
        p_floor=log_pool.p_floor,
        train_from=date_from,
        train_to=date_to,
        metrics=metrics,
    )
    save_config(conn, config)
    return config


def _event_days(conn: Conn, events: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """The climate date of each row's event."""
    names = sorted({str(e) for e in events})
    rows = conn.execute(
        "SELECT event_ticker, climate_date FROM kalshi.events WHERE event_ticker = ANY(%s)",
        (names,),
    ).fetchall()
    conn.commit()
    day_of = {str(e): d for e, d in rows}
    return np.array([day_of[str(e)] for e in events], dtype=object)


def _fit_anchored(
    conn: Conn,
    city: str,
    span: tuple[dt.date, dt.date],
    sample: Sample,
    ladders: dict[str, Ladder],
    mc_version: str,
    version: str,
    every_min: int,
    strength: float | None = None,
) -> FusionConfig:
    """The anchored pool: the prior's strength by a walk-forward step inside the training
    days (unless given), then θ refitted on all of them at that strength."""
    date_from, date_to = span
    inputs = anchored_inputs(sample, ladders)
    ok = inputs.complete()
    inputs, sample = inputs.take(ok), sample.take(ok)
    if len(sample) == 0:
        raise ValueError(
            f"no event-minutes with tmax_q50 for {city} {date_from} → {date_to}: "
            "run kwx weather backfill first"
        )
    by_strength: dict[str, dict[str, float]] = {}
    if strength is None:
        days = _event_days(conn, sample.event)
        lam, by_strength = choose_strength(inputs, sample.winner, days)
    else:
        lam = (strength,) * len(HOUR_EDGES)
    fitted = AnchoredPool(strength=lam).fit(inputs, sample.winner)
    fused = fitted.predict(inputs)
    metrics: dict[str, Any] = {
        "nll": fitted.neg_log_likelihood(inputs, sample.winner),
        "holdout_log_loss_by_strength": by_strength,
        "converged": fitted.converged_,
        "rows_per_bucket": [int(r) for r in fitted.rows_per_bucket_],
        "n_rows": len(sample),
        "n_events": len(set(sample.event)),
        "sample_every_min": every_min,
        "train_log_loss": {
            "p_fused_norm": log_loss_winner([r[~np.isnan(r)] for r in fused], sample.winner),
            "p_mkt": log_loss_winner([r[~np.isnan(r)] for r in sample.p_mkt], sample.winner),
            "p_wx": log_loss_winner([r[~np.isnan(r)] for r in sample.p_wx], sample.winner),
        },
    }
    return FusionConfig(
        city=city,
        version=version,
        mc_version=mc_version,
        alpha=[],
        feature_mean=[],
        feature_scale=[],
        p_floor=fitted.p_floor,
        train_from=date_from,
        train_to=date_to,
        metrics=metrics,
        model=ANCHORED,
        coef=[[float(c) for c in row] for row in fitted.coef_],
        hour_edges=list(fitted.hour_edges),
        strength=list(lam),
    )


_FUSED_STAGE = (
    ("ticker", "text"),
    ("ts", "timestamptz"),
    ("w_mkt", "float8"),
    ("p_fused", "float8"),
    ("p_fused_norm", "float8"),
)


def fuse_event(conn: Conn, event: str, model: Pool, mc_version: str) -> int:
    """Pool every minute of one event and write w_mkt, p_fused and p_fused_norm (NULL at
    minutes lacking an input). The anchored pool has no single w_mkt (NULL) and its p_fused
    is its normalised PMF. Returns rows updated; one transaction."""
    anchored = isinstance(model, AnchoredPool)
    extra = (MEDIAN,) if anchored else ()
    frame = read_event(conn, event, mc_version, extra=extra)
    ladders = load_ladders(conn, [event])
    sample = assemble(frame, ladders, extra=extra)
    ok = complete(sample)
    n, width = sample.p_mkt.shape
    w = np.full(n, np.nan)
    unnorm = np.full((n, width), np.nan)
    norm = np.full((n, width), np.nan)
    if isinstance(model, AnchoredPool):
        inputs = anchored_inputs(sample, ladders)
        ok &= inputs.complete()
        if ok.any():
            norm[ok] = model.predict(inputs.take(ok))
            unnorm[ok] = norm[ok]
    elif ok.any():
        part = sample.take(ok)
        w[ok], unnorm[ok], norm[ok] = model.predict_pooled(part.x, part.p_mkt, part.p_wx)
    tickers = ladders[event].tickers if event in ladders else []
    k = len(tickers)
    out = pd.DataFrame(
        {
            "ticker": np.repeat(np.array(tickers, dtype=object), n),
            "ts": np.tile(sample.ts, k),
            "w_mkt": np.tile(w, k),
            "p_fused": unnorm[:, :k].T.reshape(-1),
            "p_fused_norm": norm[:, :k].T.reshape(-1),
        }
    )
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS stage_pmf_fused")
        create_stage(cur, "stage_pmf_fused", _FUSED_STAGE)
        copy_into(cur, "stage_pmf_fused", [c for c, _ in _FUSED_STAGE], out)
        cur.execute(
            "UPDATE pmf.minute m SET w_mkt = s.w_mkt, p_fused = s.p_fused, "
            "p_fused_norm = s.p_fused_norm FROM stage_pmf_fused s "
            "WHERE m.event_ticker = %s AND m.mc_version = %s "
            "AND m.ticker = s.ticker AND m.ts = s.ts",
            (event, mc_version),
        )
        return max(cur.rowcount, 0)


def read_event(
    conn: Conn, event: str, mc_version: str, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    """All pmf.minute rows of one event under `mc_version`, long."""
    columns = (*BASE_COLUMNS, *extra)
    rows = conn.execute(
        f"SELECT {', '.join(columns)} FROM pmf.minute WHERE event_ticker = %s AND mc_version = %s",
        (event, mc_version),
    ).fetchall()
    conn.commit()
    return pd.DataFrame(rows, columns=list(columns))


def run_fusion(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str = "v1",
    version: str = "f1",
    refresh_market: bool = False,
    on_event: Callable[[str, int], None] | None = None,
) -> int:
    """Apply the stored config `version` to every minute of the city's events in the range
    (computing p_mkt first where it is missing, or everywhere with `refresh_market`).
    Returns the pmf.minute rows written."""
    config = load_config(conn, city, version)
    if config.mc_version != mc_version:
        raise ValueError(
            f"fusion config {city}/{version} was fit on mc_version {config.mc_version!r}, "
            f"not {mc_version!r}"
        )
    model = config.estimator()
    total = 0
    for event, done in events_in_range(conn, city, date_from, date_to, mc_version):
        if refresh_market or not done:
            write_event_market(conn, event, mc_version)
        n = fuse_event(conn, event, model, mc_version)
        total += n
        if on_event is not None:
            on_event(event, n)
    return total


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: the config fitted on train_from..train_to, applied to the
    fold's days first..last (`rows` pmf.minute rows written)."""

    first: dt.date
    last: dt.date
    config: FusionConfig
    rows: int


def walk_forward(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    test_from: dt.date,
    *,
    step_days: int = 30,
    mc_version: str = "v1",
    version: str = "walk",
    every_min: int = SAMPLE_EVERY_MIN,
    on_fold: Callable[[Fold], None] | None = None,
    model: str = "log",
    strength: float | None = None,
) -> list[Fold]:
    """Refit and apply the pool fold by fold over test_from..date_to.

    Fold i covers `step_days` days from test_from + i·step_days; its config is fitted on
    date_from .. (fold start − 1 − WALK_GAP_DAYS) — an expanding window — and stored as
    "{version}@{fold start}". Afterwards p_fused_norm over test_from..date_to is entirely
    out of sample, and `kwx fusion report` over that range scores it.
    """
    if step_days < 1:
        raise ValueError(f"step_days must be at least 1, got {step_days}")
    if not date_from < test_from <= date_to:
        raise ValueError(
            f"need from < test-from ≤ to, got {date_from}, {test_from}, {date_to}: "
            "the first fold needs training days before it"
        )
    folds: list[Fold] = []
    first = test_from
    while first <= date_to:
        last = min(first + dt.timedelta(days=step_days - 1), date_to)
        train_to = first - dt.timedelta(days=1 + WALK_GAP_DAYS)
        if train_to < date_from:
            raise ValueError(
                f"fold {first}: no training days between {date_from} and {train_to} "
                f"(the day before a fold is left out; start test-from later)"
            )
        config = fit_fusion(
            conn,
            city,
            date_from,
            train_to,
            mc_version=mc_version,
            version=f"{version}@{first}",
            every_min=every_min,
            model=model,
            strength=strength,
        )
        rows = run_fusion(conn, city, first, last, mc_version=mc_version, version=config.version)
        fold = Fold(first, last, config, rows)
        folds.append(fold)
        if on_fold is not None:
            on_fold(fold)
        first = last + dt.timedelta(days=1)
    return folds
