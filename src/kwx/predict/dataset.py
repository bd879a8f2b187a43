"""The classifiers' data set: panel rows at t, their features, and whether the mid goes up.

A row is one market at one minute t of its event's climate day. Its label looks Δ minutes
ahead by construction — y = 1 if mid(t+Δ) − mid(t) ≥ ε, 0 if ≤ −ε — and rows whose mid moves
less than ε (most minutes: the mid only changes when a candle brings a new quote or trade),
or that lack a mid at t or at t+Δ, are dropped. Only the label reads t+Δ; the features are
`kwx.predict.features.feature_frame` of the row at t.

ε defaults to half a cent (`DEFAULT_EPSILON`): mids are multiples of half a cent, so this
keeps every real move and drops only unchanged mids (the comparison allows 1e-9 of float
slack, so a half-cent move read back from NUMERIC as 0.00499999… still counts).

Panels come from `feat.minute_panel_with_weather` joined to `pmf.minute` of one Monte Carlo
version — the columns of `feat.minute_panel_full`, whose own join ignores the version and so
repeats rows where several versions are stored. Both views are filtered by event (the filter
pushes down through their window functions); a ts-range filter does not, so events are read
one at a time. Only labelled rows are kept in memory (a city-year has ~3 M panel rows and
~20–70 k labelled ones).

Splits are chronological by climate date: the first 60 % of the dates with labelled rows
train, the next 20 % validate, the last 20 % test (at least one date each).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import pandas as pd
import psycopg

from kwx.predict.features import FEATURES, PANEL_SELECT, feature_frame

Conn = psycopg.Connection[tuple[object, ...]]
Horizon = Literal["1m", "5m"]
Split = Literal["train", "val", "test"]

HORIZONS: Final[dict[str, int]] = {"1m": 1, "5m": 5}
DEFAULT_EPSILON: Final = 0.005
FLOAT_SLACK: Final = 1e-9
SPLIT_FRACTIONS: Final = (0.6, 0.2, 0.2)
META_COLUMNS: Final = ("event_ticker", "ticker", "climate_date", "ts")

PANEL_SQL: Final = (
    f"SELECT {PANEL_SELECT} FROM feat.minute_panel_with_weather p "
    "LEFT JOIN pmf.minute f ON f.ticker = p.ticker AND f.ts = p.ts AND f.mc_version = %s "
    "WHERE p.event_ticker = %s"
)


def horizon_minutes(horizon: str) -> int:
    """Δ in minutes for a horizon name; a clear error for anything but 1m and 5m."""
    try:
        return HORIZONS[horizon]
    except KeyError:
        raise ValueError(f"horizon must be one of {', '.join(HORIZONS)}, got {horizon!r}") from None


def load_event_panel(conn: Conn, event_ticker: str, mc_version: str = "v1") -> pd.DataFrame:
    """Every panel row of one event (all its markets, every minute of its climate day)."""
    cur = conn.execute(PANEL_SQL, (mc_version, event_ticker))
    names = [d.name for d in cur.description or []]
    frame = pd.DataFrame(cur.fetchall(), columns=names)
    conn.commit()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values(["ticker", "ts"], kind="stable").reset_index(drop=True)


def label_moves(panel: pd.DataFrame, horizon_min: int, epsilon: float) -> pd.DataFrame:
    """The panel rows that get a label, with columns ``change`` (mid(t+Δ) − mid(t)) and ``y``.

    mid(t+Δ) is the same market's row at exactly ts + Δ (matched on time, not position, so a
    gap in the grid cannot pair the wrong minutes)."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be non-negative, got {epsilon}")
    if panel.empty:
        return panel.assign(change=pd.Series(dtype=np.float64), y=pd.Series(dtype=np.int64))
    ahead = panel[["ticker", "ts", "mid"]].copy()
    ahead["ts"] = ahead["ts"] - pd.Timedelta(minutes=horizon_min)
    ahead = ahead.rename(columns={"mid": "mid_ahead"})
    merged = panel.merge(ahead, on=["ticker", "ts"], how="inner", validate="one_to_one")
    change = merged["mid_ahead"].astype(np.float64) - merged["mid"].astype(np.float64)
    keep = change.notna() & (change.abs() >= epsilon - FLOAT_SLACK)
    if epsilon == 0:
        keep &= change != 0  # an unchanged mid has no direction
    out = merged.loc[keep].drop(columns="mid_ahead").copy()
    out["change"] = change[keep].to_numpy(np.float64)
    out["y"] = (out["change"] > 0).astype(np.int64)
    return out.reset_index(drop=True)


def split_dates(dates: list[dt.date]) -> dict[Split, list[dt.date]]:
    """60/20/20 of the distinct dates, in time order (at least one date in each part)."""
    days = sorted(set(dates))
    n = len(days)
    if n < 3:
        raise ValueError(f"a chronological 60/20/20 split needs at least 3 dates, got {n}")
    n_val = max(1, round(n * SPLIT_FRACTIONS[1]))
    n_test = max(1, round(n * SPLIT_FRACTIONS[2]))
    n_train = n - n_val - n_test
    return {
        "train": days[:n_train],
        "val": days[n_train : n_train + n_val],
        "test": days[n_train + n_val :],
    }


@dataclass(frozen=True)
class Dataset:
    """Labelled rows of a city over a date range: meta columns, `FEATURES`, y, change, split."""

    city: str
    horizon: str
    epsilon: float
    mc_version: str
    date_from: dt.date
    date_to: dt.date
    rows: pd.DataFrame
    splits: dict[Split, list[dt.date]]
    load_seconds: float = 0.0
    events_read: int = 0
    panel_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def part(self, split: Split) -> pd.DataFrame:
        return self.rows[self.rows["split"] == split]

    def xy(self, split: Split) -> tuple[pd.DataFrame, np.ndarray]:
        part = self.part(split)
        return part[list(FEATURES)], part["y"].to_numpy(np.int64)

    def describe(self) -> dict[str, object]:
        """What a run records about its data: ranges, split dates, sizes, class balance."""
        parts: dict[str, object] = {}
        for name, days in self.splits.items():
            part = self.part(name)
            parts[name] = {
                "from": str(days[0]),
                "to": str(days[-1]),
                "dates": len(days),
                "rows": len(part),
                "positive_rate": float(part["y"].mean()) if len(part) else float("nan"),
            }
        return {
            "city": self.city,
            "horizon": self.horizon,
            "epsilon": self.epsilon,
            "mc_version": self.mc_version,
            "date_from": str(self.date_from),
            "date_to": str(self.date_to),
            "splits": parts,
            "events_read": self.events_read,
            "panel_rows": self.panel_rows,
            "load_seconds": round(self.load_seconds, 2),
        }


def city_events(conn: Conn, city: str, date_from: dt.date, date_to: dt.date) -> list[str]:
    """The city's events whose climate date is in the range, in date order."""
    rows = conn.execute(
        "SELECT m.event_ticker FROM kalshi.markets m "
        "JOIN meta.city c ON c.series_ticker = m.series_ticker "
        "WHERE c.key = %s AND m.climate_date BETWEEN %s AND %s "
        "GROUP BY m.event_ticker ORDER BY min(m.climate_date), m.event_ticker",
        (city, date_from, date_to),
    ).fetchall()
    conn.commit()
    return [str(r[0]) for r in rows]


def labelled_event(
    conn: Conn, event_ticker: str, horizon_min: int, epsilon: float, mc_version: str
) -> tuple[pd.DataFrame, int]:
    """One event's labelled rows with their features, and how many panel rows it had."""
    panel = load_event_panel(conn, event_ticker, mc_version)
    labelled = label_moves(panel, horizon_min, epsilon)
    feats = feature_frame(labelled)
    keep = [c for c in META_COLUMNS if c in labelled.columns]
    out = pd.concat([labelled[keep], feats, labelled[["change", "y"]]], axis=1).reset_index(
        drop=True
    )
    return out, len(panel)


def build_dataset(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    horizon: str = "5m",
    epsilon: float = DEFAULT_EPSILON,
    mc_version: str = "v1",
    on_event: Callable[[str, int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Dataset:
    """Read, label and split a city's events in the range (`on_event(event, labelled rows)`
    reports progress; `on_start(total events)` is called once first)."""
    if date_to < date_from:
        raise ValueError(f"date range ends ({date_to}) before it starts ({date_from})")
    minutes = horizon_minutes(horizon)
    started = time.perf_counter()
    events = city_events(conn, city, date_from, date_to)
    if on_start is not None:
        on_start(len(events))
    if not events:
        raise ValueError(f"no {city} markets with climate dates {date_from} → {date_to}")
    parts: list[pd.DataFrame] = []
    panel_rows = 0
    for event in events:
        part, n_panel = labelled_event(conn, event, minutes, epsilon, mc_version)
        panel_rows += n_panel
        if len(part):
            parts.append(part)
        if on_event is not None:
            on_event(event, len(part))
    if not parts:
        raise ValueError(
            f"{city} {date_from} → {date_to}: no mid moved by ε={epsilon} over {horizon}"
        )
    rows = pd.concat(parts, ignore_index=True)
    rows["climate_date"] = pd.to_datetime(rows["climate_date"]).dt.date
    splits = split_dates(list(rows["climate_date"]))
    which = {d: name for name, days in splits.items() for d in days}
    rows["split"] = rows["climate_date"].map(which)
    rows = rows.sort_values(["ts", "ticker"], kind="stable").reset_index(drop=True)
    return Dataset(
        city=city,
        horizon=horizon,
        epsilon=epsilon,
        mc_version=mc_version,
        date_from=date_from,
        date_to=date_to,
        rows=rows,
        splits=splits,
        load_seconds=time.perf_counter() - started,
        events_read=len(events),
        panel_rows=panel_rows,
    )
