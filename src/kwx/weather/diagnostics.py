"""`kwx weather diag pmf-sum | evaluate-morning | hazard-trace`: is p_wx sane and honest?

- pmf-sum: for every (event, minute) of a run, the sum of p_wx over the brackets (must be 1)
  and the probability left on brackets the running maximum had already ruled out (must be 0).
- evaluate-morning: the 08:00 (local standard time) forecast against what settled: a
  reliability table (predicted probability bins vs observed frequency) and randomised PIT
  values of the settled maximum (uniform if the forecast is calibrated).
- hazard-trace: hazard_next_60m around the minute the day's observed maximum was first
  reached; a useful hazard rises before it and collapses after it.
Each returns a DataFrame (written as CSV) and a plot (PNG).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import psycopg

from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import climate_day_window
from kwx.registry import City

Conn = psycopg.Connection[tuple[object, ...]]
MORNING_HOUR = 8
RELIABILITY_BINS = 10
TRACE_BEFORE_MIN, TRACE_AFTER_MIN = 360, 180


def _frame(conn: Conn, sql: str, params: tuple[object, ...], columns: list[str]) -> pd.DataFrame:
    rows = conn.execute(sql, params).fetchall()
    conn.commit()
    return pd.DataFrame(rows, columns=columns)


def pmf_sum(
    conn: Conn, city: City, date_from: dt.date, date_to: dt.date, mc_version: str = "v1"
) -> pd.DataFrame:
    """Per climate date: worst |Σp − 1| and the largest p on a bracket already ruled out.

    A bracket is ruled out at t when even the lowest offset of the measurement model
    (official − observed maximum) puts the official value above its cap.
    """
    frame = _frame(
        conn,
        """
        SELECT d.climate_date, d.day_start, p.ts, d.cap_strike, p.p_wx
        FROM pmf.minute p JOIN feat.market_day d ON d.ticker = p.ticker
        WHERE d.series_ticker = %s AND d.climate_date BETWEEN %s AND %s AND p.mc_version = %s
        ORDER BY p.ts
        """,
        (city.series, date_from, date_to, mc_version),
        ["climate_date", "day_start", "ts", "cap", "p_wx"],
    )
    if frame.empty:
        return pd.DataFrame(columns=["climate_date", "max_abs_sum_error", "max_ruled_out_p"])
    lowest = _frame(
        conn, "SELECT min(offset_f) FROM wx.measurement_model WHERE city = %s", (city.key,), ["m"]
    )["m"].iloc[0]
    lowest = 0 if lowest is None or pd.isna(lowest) else int(lowest)
    start = frame["day_start"].min()
    obs = _frame(
        conn,
        "SELECT ts, temp_f FROM wx.obs WHERE city = %s AND ts >= %s "
        "AND ts <= %s AND temp_f IS NOT NULL ORDER BY ts",
        (city.key, start, frame["ts"].max()),
        ["obs_ts", "temp_f"],
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["day_start"] = pd.to_datetime(frame["day_start"], utc=True)
    if obs.empty:
        frame["running_max"] = np.nan
    else:
        obs["obs_ts"] = pd.to_datetime(obs["obs_ts"], utc=True)
        obs["temp_f"] = obs["temp_f"].astype(float)
        merged = pd.merge_asof(frame.sort_values("ts"), obs, left_on="ts", right_on="obs_ts")
        # Only readings of the same climate day count towards its running maximum.
        merged.loc[merged["obs_ts"] < merged["day_start"], "temp_f"] = np.nan
        merged["running_max"] = merged.groupby("climate_date")["temp_f"].cummax()
        frame = merged
    sums = frame.groupby(["climate_date", "ts"])["p_wx"].sum()
    worst = (sums - 1).abs().groupby(level=0).max().rename("max_abs_sum_error")
    cap = pd.to_numeric(frame["cap"], errors="coerce")
    floor_official = np.floor(frame["running_max"].astype(float) + 0.5) + lowest
    ruled = frame[cap.notna() & (cap < floor_official)]
    ruled_p = ruled.groupby("climate_date")["p_wx"].max().rename("max_ruled_out_p")
    out = pd.concat([worst, ruled_p], axis=1).fillna({"max_ruled_out_p": 0.0})
    out.index.name = "climate_date"
    return out.reset_index()


def morning_cases(
    conn: Conn, city: City, date_from: dt.date, date_to: dt.date, mc_version: str
) -> list[tuple[np.ndarray, int]]:
    """(p over the ladder at 08 LST, index of the winning bracket) per settled day."""
    frame = _frame(
        conn,
        """
        SELECT d.event_ticker, d.climate_date, d.bracket_index, d.strike_type, d.floor_strike,
               d.cap_strike, d.settled_tmax, p.p_wx
        FROM feat.market_day d
        JOIN pmf.minute p ON p.ticker = d.ticker
             AND p.ts = d.day_start + make_interval(hours => %s) AND p.mc_version = %s
        WHERE d.series_ticker = %s AND d.climate_date BETWEEN %s AND %s
          AND d.settled_tmax IS NOT NULL
        ORDER BY d.event_ticker, d.bracket_index
        """,
        (MORNING_HOUR, mc_version, city.series, date_from, date_to),
        ["event", "date", "idx", "strike_type", "floor", "cap", "tmax", "p_wx"],
    )
    out = []
    for _, part in frame.groupby("event"):
        brackets = [
            Bracket.from_strikes(
                str(st), None if pd.isna(f) else str(f), None if pd.isna(c) else str(c)
            )
            for st, f, c in zip(part["strike_type"], part["floor"], part["cap"], strict=True)
        ]
        tmax = int(part["tmax"].iloc[0])
        winners = [i for i, b in enumerate(brackets) if b.wins(tmax)]
        if len(winners) == 1:
            out.append((part["p_wx"].to_numpy(dtype=float), winners[0]))
    return out


def reliability(cases: list[tuple[np.ndarray, int]], bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """Every (bracket, day) as a binary forecast: mean predicted vs observed frequency."""
    p = np.concatenate([c[0] for c in cases]) if cases else np.array([])
    y = np.concatenate([np.eye(len(c[0]))[c[1]] for c in cases]) if cases else np.array([])
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        rows.append(
            {
                "bin_lo": edges[b],
                "bin_hi": edges[b + 1],
                "n": int(mask.sum()),
                "mean_predicted": float(p[mask].mean()) if mask.any() else np.nan,
                "observed_frequency": float(y[mask].mean()) if mask.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def pit_values(cases: list[tuple[np.ndarray, int]], rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT: P(below the winner) + U · P(winner); uniform when calibrated."""
    return np.array([float(p[:w].sum() + rng.uniform() * p[w]) for p, w in cases])


def hazard_trace(
    conn: Conn, city: City, date_from: dt.date, date_to: dt.date, mc_version: str = "v1"
) -> pd.DataFrame:
    """Mean hazard_next_60m by minutes relative to the first minute the day's max was seen."""
    traces = []
    day = date_from
    while day <= date_to:
        start, end = climate_day_window(city.timezone, day)
        obs = _frame(
            conn,
            "SELECT ts, temp_f FROM wx.obs o JOIN meta.obs_source_rank r "
            "USING (source) WHERE o.city = %s AND o.ts >= %s AND o.ts < %s "
            "AND r.rank = (SELECT min(r2.rank) FROM wx.obs o2 JOIN "
            "meta.obs_source_rank r2 USING (source) WHERE o2.city = %s "
            "AND o2.ts >= %s AND o2.ts < %s) ORDER BY ts",
            (city.key, start, end, city.key, start, end),
            ["ts", "temp_f"],
        )
        hz = _frame(
            conn,
            "SELECT DISTINCT ts, hazard_next_60m FROM pmf.minute p JOIN "
            "kalshi.markets m USING (ticker) WHERE m.series_ticker = %s AND "
            "m.climate_date = %s AND p.mc_version = %s ORDER BY ts",
            (city.series, day, mc_version),
            ["ts", "hazard"],
        )
        if not obs.empty and not hz.empty:
            temps = obs["temp_f"].astype(float).to_numpy()
            peak = pd.Timestamp(str(obs["ts"].iloc[int(np.argmax(temps))]))
            rel = ((pd.to_datetime(hz["ts"], utc=True) - peak).dt.total_seconds() // 60).astype(int)
            keep = (rel >= -TRACE_BEFORE_MIN) & (rel <= TRACE_AFTER_MIN)
            traces.append(
                pd.DataFrame(
                    {"minutes_from_max": rel[keep], "hazard": hz["hazard"][keep].astype(float)}
                )
            )
        day += dt.timedelta(days=1)
    if not traces:
        return pd.DataFrame(columns=["minutes_from_max", "mean_hazard_60m", "days"])
    all_ = pd.concat(traces)
    grouped = all_.groupby("minutes_from_max")["hazard"]
    return pd.DataFrame({"mean_hazard_60m": grouped.mean(), "days": grouped.size()}).reset_index()


# --------------------------------------------------------------------------- plots
def plot_reliability(table: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect")
    ok = table["n"] > 0
    ax.plot(
        table.loc[ok, "mean_predicted"],
        table.loc[ok, "observed_frequency"],
        marker="o",
        label="p_wx",
    )
    ax.set(
        xlabel="predicted probability",
        ylabel="observed frequency",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pit(pit: np.ndarray, path: Path, title: str, bins: int = 10) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(pit, bins=bins, range=(0, 1), edgecolor="black")
    ax.axhline(len(pit) / bins, color="grey", linestyle="--", label="uniform")
    ax.set(xlabel="PIT", ylabel="days", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_hazard_trace(trace: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(trace["minutes_from_max"], trace["mean_hazard_60m"])
    ax.axvline(0, color="grey", linestyle="--", label="observed max first reached")
    ax.set(
        xlabel="minutes from the day's observed maximum",
        ylabel="mean hazard, next 60 min",
        title=title,
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pmf_sum(table: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        pd.to_datetime(table["climate_date"]),
        table["max_abs_sum_error"],
        marker=".",
        label="max |Σp − 1|",
    )
    ax.plot(
        pd.to_datetime(table["climate_date"]),
        table["max_ruled_out_p"],
        marker=".",
        label="max p on ruled-out brackets",
    )
    ax.set(xlabel="climate date", title=title)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
