"""`kwx weather diag skill`: how good are p_wx, the market and climatology, hour by hour.

For every settled event in the range and each evaluation hour (hours of the climate day's
local standard time, so 00 is the day's first minute), three bracket distributions are
scored against the bracket that won:
- p_wx from pmf.minute (the weather model's run under an mc_version);
- p_mkt from the feature panel's mid (quote mid, else last trade), normalised over the event;
- climatology: the settled maxima of the same city within ±15 days of the date in earlier
  years (strictly before the evaluated range: no look-ahead), Laplace-smoothed.
Only event-hours where all three exist are scored, so the comparison is like for like.
Metrics: RPS (scoringrules) divided by K − 1, mean per-bracket Brier, the log-loss of the
winning bracket, and the CRPS (°F) of the maximum itself:
- p_wx: the CRPS of the Monte Carlo's Tmax samples (scoringrules' ensemble CRPS), re-simulated
  at the evaluation minutes with the same inputs and seed as `kwx weather run-day` (pmf.minute
  keeps bracket probabilities and quantiles, not the 4,000 samples);
- climatology: the ensemble CRPS of the historical maxima it counts;
- p_mkt: the market prices brackets, not degrees, so its mass is spread evenly over each
  bracket's whole degrees (tails over 3 °F beyond the outermost strikes), scored exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psycopg
import scoringrules as sr

from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import climate_day_window
from kwx.registry import City
from kwx.weather.measurement import SETTLEMENT_PREFERENCE

Conn = psycopg.Connection[tuple[object, ...]]
HOURS = (0, 8, 12, 16)
CLIMATOLOGY_WINDOW_DAYS = 15
LOG_FLOOR = 1e-6
TAIL_WIDTH_F = 3


@dataclass(frozen=True)
class EventHour:
    event_ticker: str
    hour: int
    winner: int
    p: dict[str, np.ndarray]  # model → probabilities in ladder order
    crps: dict[str, float] = field(default_factory=dict)  # model → CRPS of the maximum, °F


def crps_integer(pmf: np.ndarray, support_lo: int, observed: int) -> float:
    """Exact CRPS of a distribution on whole degrees: Σ_z (F(z) − 1[z ≥ y])² over integers z.

    For an integer-valued forecast the CDF is constant on [z, z + 1), so the CRPS integral is
    this sum exactly.
    """
    lo = min(support_lo, observed) - 1
    hi = max(support_lo + pmf.size, observed) + 1
    grid = np.arange(lo, hi + 1)
    cdf = np.zeros(grid.size)
    inside = (grid >= support_lo) & (grid < support_lo + pmf.size)
    cdf[inside] = np.cumsum(pmf)[grid[inside] - support_lo]
    cdf[grid >= support_lo + pmf.size] = 1.0
    step = (grid >= observed).astype(float)
    return float(np.sum((cdf - step) ** 2))


def spread_over_degrees(p: np.ndarray, brackets: list[Bracket]) -> tuple[np.ndarray, int]:
    """A bracket pmf as a pmf on whole degrees: each bracket's mass split evenly."""
    strikes = [float(x) for b in brackets for x in (b.floor, b.cap) if x is not None]
    lo = int(np.floor(min(strikes))) - TAIL_WIDTH_F
    hi = int(np.ceil(max(strikes))) + TAIL_WIDTH_F
    degrees = np.arange(lo, hi + 1)
    out = np.zeros(degrees.size)
    for prob, bracket in zip(p, brackets, strict=True):
        wins = np.array([bracket.wins(int(z)) for z in degrees])
        if wins.any():
            out[wins] += prob / wins.sum()
    return out / out.sum(), lo


def _ladder(conn: Conn, event: str) -> tuple[list[str], list[Bracket], int]:
    rows = conn.execute(
        "SELECT ticker, strike_type, floor_strike, cap_strike, settled_tmax "
        "FROM feat.market_day WHERE event_ticker = %s ORDER BY bracket_index",
        (event,),
    ).fetchall()
    tickers = [str(r[0]) for r in rows]
    brackets = [Bracket.from_strikes(str(r[1]), r[2], r[3]) for r in rows]  # type: ignore[arg-type]
    tmax = int(str(rows[0][4]))
    return tickers, brackets, tmax


def _climatology(history: pd.DataFrame, day: dt.date, brackets: list[Bracket]) -> np.ndarray:
    near = _climatology_samples(history, day)
    counts = np.array([sum(b.wins(int(t)) for t in near) for b in brackets], dtype=float)
    counts += 0.5
    probs: np.ndarray = counts / counts.sum()
    return probs


def _wx_samples(
    conn: Conn,
    city: City,
    day: dt.date,
    params_version: str,
    paths: int,
    seed: int,
    forecast_source: str = "vc",
) -> dict[int, np.ndarray] | None:
    """Tmax samples of the weather model at each evaluation hour, re-simulated."""
    from kwx.weather.mc import run_day
    from kwx.weather.run_day import day_rng, load_day

    try:
        inputs = load_day(conn, city, day, version=params_version, forecast_source=forecast_source)
    except ValueError:
        conn.rollback()
        return None
    times = np.array([h * 60 for h in HOURS])
    result = run_day(
        inputs.baseline[times],
        inputs.obs,
        inputs.params,
        inputs.measurement,
        inputs.brackets,
        paths=paths,
        rng=day_rng(seed, day, city),
        times=times,
        row_shift=inputs.shift_at(times),
    )
    support = result.support_lo + np.arange(result.pmf.shape[1])
    out = {}
    for i, hour in enumerate(HOURS):
        counts = np.rint(result.pmf[i] * paths).astype(int)
        out[hour] = np.repeat(support, counts).astype(float)
    return out


def _climatology_samples(history: pd.DataFrame, day: dt.date) -> np.ndarray:
    """The settled maxima of earlier years within the window around ``day``'s day of year."""
    doy = pd.Timestamp(day).day_of_year
    gap = np.abs(history["doy"] - doy)
    near = history[np.minimum(gap, 366 - gap) <= CLIMATOLOGY_WINDOW_DAYS]["tmax"]
    out: np.ndarray = near.to_numpy(dtype=float)
    return out


def collect(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    mc_version: str = "v1",
    *,
    params_version: str | None = None,
    paths: int = 4000,
    seed: int = 0,
    forecast_source: str = "vc",
) -> list[EventHour]:
    """Scored event-hours; with ``params_version`` the weather model is re-simulated at the
    evaluation minutes for the CRPS of its Tmax samples (else CRPS is left out for p_wx), on
    the baseline ``forecast_source`` the stored run used (`kwx weather backfill`'s)."""
    events = conn.execute(
        "SELECT DISTINCT event_ticker, climate_date FROM kalshi.markets WHERE series_ticker = %s "
        "AND climate_date BETWEEN %s AND %s AND settled_tmax IS NOT NULL ORDER BY 2",
        (city.series, date_from, date_to),
    ).fetchall()
    hist_rows = conn.execute(
        "SELECT DISTINCT ON (climate_date) climate_date, tmax_final FROM wx.settlement "
        "WHERE city = %s AND climate_date < %s ORDER BY climate_date, "
        "array_position(%s::text[], source)",
        (city.key, date_from, list(SETTLEMENT_PREFERENCE)),
    ).fetchall()
    history = pd.DataFrame(hist_rows, columns=["date", "tmax"])
    history["doy"] = pd.to_datetime(history["date"]).dt.day_of_year
    out: list[EventHour] = []
    for event, day in events:
        assert isinstance(day, dt.date)
        tickers, brackets, tmax = _ladder(conn, str(event))
        winners = [i for i, b in enumerate(brackets) if b.wins(tmax)]
        if len(winners) != 1 or history.empty:
            continue
        start, _ = climate_day_window(city.timezone, day)
        times = [start + dt.timedelta(hours=h) for h in HOURS]
        wx = conn.execute(
            "SELECT ticker, ts, p_wx FROM pmf.minute WHERE event_ticker = %s AND "
            "mc_version = %s AND ts = ANY(%s)",
            (event, mc_version, times),
        ).fetchall()
        mkt = conn.execute(
            "SELECT ticker, ts, mid FROM feat.minute_panel_base WHERE event_ticker = %s "
            "AND ts = ANY(%s)",
            (event, times),
        ).fetchall()
        p_wx = {(str(t), ts): float(str(p)) for t, ts, p in wx if p is not None}
        p_mkt = {(str(t), ts): float(str(m)) for t, ts, m in mkt if m is not None}
        clim = _climatology(history, day, brackets)
        clim_samples = _climatology_samples(history, day)
        wx_samples = (
            _wx_samples(conn, city, day, params_version, paths, seed, forecast_source)
            if params_version is not None
            else None
        )
        for hour, ts in zip(HOURS, times, strict=True):
            w = [p_wx.get((t, ts)) for t in tickers]
            m = [p_mkt.get((t, ts)) for t in tickers]
            if any(v is None for v in w) or any(v is None for v in m):
                continue
            mv = np.array(m, dtype=float)
            if mv.sum() <= 0:
                continue
            mkt_probs = mv / mv.sum()
            crps = {
                "p_mkt": crps_integer(*spread_over_degrees(mkt_probs, brackets), tmax),
                "climatology": float(sr.crps_ensemble(float(tmax), clim_samples, estimator="nrg")),
            }
            if wx_samples is not None:
                crps["p_wx"] = float(
                    sr.crps_ensemble(float(tmax), wx_samples[hour], estimator="nrg")
                )
            out.append(
                EventHour(
                    str(event),
                    hour,
                    winners[0],
                    {"p_wx": np.array(w, dtype=float), "p_mkt": mkt_probs, "climatology": clim},
                    crps,
                )
            )
    conn.commit()
    return out


def score(rows: list[EventHour]) -> pd.DataFrame:
    """Mean metrics per (hour, model): rps_norm, brier, log_loss, n."""
    records = []
    for row in rows:
        k = len(row.p["p_wx"])
        onehot = np.zeros(k)
        onehot[row.winner] = 1.0
        for model, p in row.p.items():
            records.append(
                {
                    "hour": row.hour,
                    "model": model,
                    "rps_norm": float(sr.rps_score(onehot, p, onehot=True)) / (k - 1),
                    "brier": float(np.mean((p - onehot) ** 2)),
                    "log_loss": float(-np.log(max(p[row.winner], LOG_FLOOR))),
                    "crps": row.crps.get(model, np.nan),
                }
            )
    columns = ["hour", "model", "rps_norm", "brier", "log_loss", "crps"]
    frame = pd.DataFrame(records, columns=columns)
    grouped = frame.groupby(["hour", "model"])
    table = grouped[["rps_norm", "brier", "log_loss", "crps"]].mean()
    table["n"] = grouped.size()
    return table.reset_index()
