"""`kwx fusion report`: p_fused_norm against p_mkt and p_wx alone, hour by hour.

For each settled event of the range and each evaluation hour h (hours of the climate day in
local standard time, so 00 is the day's first minute), the three stored PMFs of the minute
day_start + h are scored against the winning bracket: log-loss of the winner, mean
per-bracket Brier, RPS/(K − 1) and the ECE (10 bins) of every bracket's probability as a
yes/no forecast. Only event-hours where all three exist are scored, so the comparison is like
for like; the row "all" pools the evaluation hours.

With `ceiling`, each hour also gets the model "ceiling": the pool with the one constant
w_mkt (and p_wx floor) that scores best on that hour's report days themselves. It is chosen
in-sample, so it is not a forecast: it is what the best single weight for that hour would
have scored, a yardstick for the fitted weight model (which varies w by row, so it can land
a little above or below it). A ceiling at w_mkt = 1 says that, on these days and at that
hour, p_wx on average adds nothing to the market.

p_fused_norm's rows also carry its log-loss gain over p_mkt (p_mkt's minus its own; positive
is ahead) with a 95% bootstrap interval that resamples whole events (`paired_gain_interval`):
with 40–80 held-out days a margin of a few thousandths can be chance, and the interval says
whether it is. The "all" row resamples each event with all its hours.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg

from kwx.domain.climate_day import climate_day_window
from kwx.pmf.frames import Sample, assemble, complete, load_ladders, read_minutes
from kwx.pmf.metrics import (
    ece,
    log_loss_winner,
    mean_bracket_brier,
    paired_gain_interval,
    rps,
    winner_losses,
)
from kwx.pmf.pool import pool
from kwx.registry import default_registry

Conn = psycopg.Connection[tuple[object, ...]]

HOURS = (0, 4, 8, 10, 12, 14, 16, 20)
CEILING = "ceiling"
FUSED = "p_fused_norm"
MODELS = (FUSED, "p_mkt", "p_wx")
COLUMNS = [
    "hour",
    "model",
    "log_loss",
    "brier",
    "rps",
    "ece",
    "n_events",
    "w_mkt",
    "gain_vs_mkt",
    "gain_lo",
    "gain_hi",
]
CEILING_WEIGHTS = np.linspace(0.0, 1.0, 101)
CEILING_FLOORS = (1e-4, 1e-3, 1e-2)


def _event_starts(
    conn: Conn, city: str, date_from: dt.date, date_to: dt.date, mc_version: str
) -> dict[str, dt.datetime]:
    tz = default_registry().by_key(city).timezone
    rows = conn.execute(
        "SELECT e.event_ticker, e.climate_date FROM kalshi.events e "
        "WHERE e.climate_date BETWEEN %s AND %s AND EXISTS (SELECT 1 FROM pmf.minute m "
        "WHERE m.event_ticker = e.event_ticker AND m.mc_version = %s AND m.city = %s)",
        (date_from, date_to, mc_version, city),
    ).fetchall()
    conn.commit()
    out: dict[str, dt.datetime] = {}
    for event, day in rows:
        assert isinstance(day, dt.date)
        out[str(event)] = climate_day_window(tz, day)[0]
    return out


def _ceiling(sample: Sample) -> tuple[float, np.ndarray]:
    """The constant w_mkt (over CEILING_WEIGHTS × CEILING_FLOORS) whose pool has the lowest
    log-loss on these rows, and that pool's PMFs."""
    sizes = [len(t) for t in sample.tickers]
    best: tuple[float, float, np.ndarray] | None = None
    for floor in CEILING_FLOORS:
        for w in CEILING_WEIGHTS:
            _, norm = pool(sample.p_mkt, sample.p_wx, np.full(len(sample), w), floor)
            loss = log_loss_winner(
                [row[:k] for row, k in zip(norm, sizes, strict=True)], sample.winner
            )
            if best is None or loss < best[0]:
                best = (loss, float(w), norm)
    assert best is not None
    return best[1], best[2]


def _score(
    sample: Sample, label: str, models: tuple[str, ...] = MODELS, w_mkt: float = np.nan
) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    sizes = [len(t) for t in sample.tickers]
    outcome = np.concatenate(
        [np.arange(k) == w for k, w in zip(sizes, sample.winner, strict=True)]
    ).astype(np.float64)
    mkt_losses = winner_losses(
        [row[:k] for row, k in zip(sample.p_mkt, sizes, strict=True)], sample.winner
    )
    for model in models:
        grid = sample.extra[model] if model in sample.extra else getattr(sample, model)
        pmfs = [row[:k] for row, k in zip(grid, sizes, strict=True)]
        losses = winner_losses(pmfs, sample.winner)
        # Only the held-out pool gets the paired interval: it is the target's comparison.
        gain = (
            paired_gain_interval(mkt_losses, losses, sample.event)
            if model == FUSED
            else (np.nan, np.nan, np.nan)
        )
        records.append(
            {
                "hour": label,
                "model": model,
                "log_loss": float(np.mean(losses)),
                "brier": mean_bracket_brier(pmfs, sample.winner),
                "rps": rps(pmfs, sample.winner),
                "ece": ece(np.clip(np.concatenate(pmfs), 0.0, 1.0), outcome, 10),
                "n_events": len(set(sample.event)),
                "w_mkt": w_mkt if model == CEILING else np.nan,
                "gain_vs_mkt": gain[0],
                "gain_lo": gain[1],
                "gain_hi": gain[2],
            }
        )
    return records


def fusion_report(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str = "v1",
    hours: tuple[int, ...] = HOURS,
    ceiling: bool = False,
) -> pd.DataFrame:
    """Metrics by evaluation hour and model (columns `COLUMNS`); the hour "all" pools them.
    With `ceiling`, the in-sample best constant-weight pool is scored too (model "ceiling").

    Raises if the range has no fused rows (run `kwx fusion run` over it first).
    """
    starts = _event_starts(conn, city, date_from, date_to, mc_version)
    times = sorted({s + dt.timedelta(hours=h) for s in starts.values() for h in hours})
    if not times:
        raise ValueError(f"no {city} events with pmf.minute rows in {date_from} → {date_to}")
    frame = read_minutes(conn, city, date_from, date_to, mc_version, times=times, extra=(FUSED,))
    ladders = load_ladders(conn, sorted(set(frame["event_ticker"])))
    sample = assemble(frame, ladders, extra=(FUSED,))
    sample = sample.take(complete(sample, columns=(FUSED,)) & (sample.winner >= 0))
    if len(sample) == 0:
        raise ValueError(
            f"no scored event-hours for {city} {date_from} → {date_to}: p_fused_norm is "
            f"missing (run kwx fusion run --city {city} over the range) or nothing settled"
        )
    hour_of = np.array(
        [
            round((ts - starts[str(ev)]).total_seconds() / 3600.0)
            for ev, ts in zip(sample.event, sample.ts, strict=True)
        ]
    )
    models = (*MODELS, CEILING) if ceiling else MODELS
    pooled = np.full_like(sample.p_mkt, np.nan)
    records: list[dict[str, object]] = []
    for h in hours:
        mask = hour_of == h
        if not mask.any():
            continue
        part = sample.take(mask)
        w_best = np.nan
        if ceiling:
            w_best, pooled[mask] = _ceiling(part)
            part.extra[CEILING] = pooled[mask]
        records.extend(_score(part, f"{h:02d}", models, w_best))
    if ceiling:
        sample.extra[CEILING] = pooled
    records.extend(_score(sample, "all", models))
    return pd.DataFrame(records, columns=COLUMNS)
