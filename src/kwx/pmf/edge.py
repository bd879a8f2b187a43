"""Measure, store and load the edge cells (`kwx.pmf.edge_cells`) from walk-forward p_fused.

Over a range whose p_fused_norm was written by `kwx fusion walk` (every day scored by a pool
fitted on its past only), every `every_min`-th minute of each settled event is read; each
bracket of it is one yes/no forecast, scored by its Bernoulli log-loss under p_mkt and under
p_fused_norm. The bracket-minute falls in the cell of its local hour of the climate day and
its p_mkt (the market's price). A cell's gain is the mean of p_mkt's loss minus p_fused's,
with a 95% bootstrap interval that resamples whole events (the minutes and brackets of one
day share its weather and its winner: they are not independent draws). Cells resting on
fewer than `MIN_EVENTS` events are not stored at all, so the strategy never enters there.

The cells are measured on the days they describe, so they are only honest when those days
were themselves out of sample for the pool (the walk's range); the command says which
fusion versions wrote the range.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.pmf.edge_cells import (
    HOUR_EDGES,
    PRICE_EDGES,
    EdgeCell,
    EdgeCells,
    hour_bucket,
    price_bucket,
)
from kwx.pmf.frames import assemble, complete, load_ladders, read_minutes
from kwx.pmf.metrics import paired_gain_interval

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]

FUSED = "p_fused_norm"
MIN_EVENTS = 10
EVERY_MIN = 10
P_CLIP = 1e-6

__all__ = ["bracket_losses", "load_edge_cells", "measure_cells", "measure_edge_cells"]


def bracket_losses(p: FloatArray, winner: npt.NDArray[np.int64]) -> FloatArray:
    """Bernoulli log-loss of every bracket's probability (n, K) against whether it won
    (NaN on padding); probabilities are clipped to [1e-6, 1 − 1e-6]."""
    k = np.arange(p.shape[1])[None, :]
    y = k == winner[:, None]
    q = np.clip(p, P_CLIP, 1.0 - P_CLIP)
    loss: FloatArray = np.where(y, -np.log(q), -np.log1p(-q))
    return loss


def measure_cells(
    city: str,
    p_mkt: FloatArray,
    p_fused: FloatArray,
    winner: npt.NDArray[np.int64],
    hour: FloatArray,
    event: npt.NDArray[np.object_],
    *,
    min_events: int = MIN_EVENTS,
) -> list[EdgeCell]:
    """The cells of one city from event-minute rows (pure: what `measure_edge_cells` does
    after reading the store)."""
    loss_mkt = bracket_losses(p_mkt, winner)
    loss_fused = bracket_losses(p_fused, winner)
    valid = ~np.isnan(p_mkt) & ~np.isnan(p_fused)
    rows, cols = np.nonzero(valid)
    h = np.array([hour_bucket(float(x)) for x in hour[rows]], dtype=np.int64)
    pb = np.array([price_bucket(float(x)) for x in p_mkt[rows, cols]], dtype=np.int64)
    ev = event[rows]
    ref, new = loss_mkt[rows, cols], loss_fused[rows, cols]
    cells: list[EdgeCell] = []
    for j in range(len(HOUR_EDGES)):
        for i in range(len(PRICE_EDGES)):
            mine = (h == j) & (pb == i)
            n_events = len(set(ev[mine]))
            if n_events < min_events:
                continue
            gain, lo, hi = paired_gain_interval(ref[mine], new[mine], ev[mine])
            cells.append(EdgeCell(city, j, i, gain, lo, hi, n_events, int(mine.sum())))
    return cells


def measure_edge_cells(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str,
    every_min: int = EVERY_MIN,
) -> list[EdgeCell]:
    """Measure a city's cells on climate days date_from..date_to and replace its stored
    ones with them (one transaction). Raises when the range has no fused settled rows."""
    frame = read_minutes(
        conn, city, date_from, date_to, mc_version, every_min=every_min, extra=(FUSED,)
    )
    if frame.empty:
        raise ValueError(f"pmf.minute has no {mc_version} rows for {city} {date_from} → {date_to}")
    ladders = load_ladders(conn, sorted(set(frame["event_ticker"])))
    sample = assemble(frame, ladders, extra=(FUSED,))
    sample = sample.take(complete(sample, columns=(FUSED,)) & (sample.winner >= 0))
    if len(sample) == 0:
        raise ValueError(
            f"no fused settled event-minutes for {city} {date_from} → {date_to}: run "
            f"kwx fusion walk over the range first"
        )
    hour = (1440.0 - sample.x[:, 3]) / 60.0
    cells = measure_cells(
        city, sample.p_mkt, sample.extra[FUSED], sample.winner, hour, sample.event
    )
    store_cells(conn, city, cells, mc_version=mc_version, scored=(date_from, date_to))
    return cells


def store_cells(
    conn: Conn,
    city: str,
    cells: list[EdgeCell],
    *,
    mc_version: str,
    scored: tuple[dt.date, dt.date],
) -> None:
    """Replace a city's rows of model.edge_cells."""
    with conn.transaction():
        conn.execute("DELETE FROM model.edge_cells WHERE city = %s", (city,))
        for c in cells:
            hour_hi = HOUR_EDGES[c.hour + 1] if c.hour + 1 < len(HOUR_EDGES) else 24
            price_hi = PRICE_EDGES[c.price + 1] if c.price + 1 < len(PRICE_EDGES) else 1.0
            conn.execute(
                "INSERT INTO model.edge_cells (city, hour_bucket, price_bucket, hour_lo, "
                "hour_hi, price_lo, price_hi, gain, gain_lo, gain_hi, n_events, n_rows, open, "
                "mc_version, scored_from, scored_to) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    city,
                    c.hour,
                    c.price,
                    HOUR_EDGES[c.hour],
                    hour_hi,
                    PRICE_EDGES[c.price],
                    price_hi,
                    c.gain,
                    c.gain_lo,
                    c.gain_hi,
                    c.n_events,
                    c.n_rows,
                    c.open,
                    mc_version,
                    scored[0],
                    scored[1],
                ),
            )


def load_edge_cells(conn: Conn, cities: list[str] | None = None) -> EdgeCells:
    """The stored cells (of the given cities, or all): what a run loads once."""
    sql = (
        "SELECT city, hour_bucket, price_bucket, hour_lo, price_lo, gain, gain_lo, gain_hi, "
        "n_events, n_rows FROM model.edge_cells"
    )
    params: tuple[object, ...] = ()
    if cities is not None:
        sql += " WHERE city = ANY(%s)"
        params = (cities,)
    rows = conn.execute(sql, params).fetchall()
    conn.commit()
    cells = []
    for city, hb, pb, hour_lo, price_lo, gain, lo, hi, n_ev, n_rows in rows:
        hb_i, pb_i = int(str(hb)), int(str(pb))
        if (
            hb_i >= len(HOUR_EDGES)
            or HOUR_EDGES[hb_i] != hour_lo
            or (pb_i >= len(PRICE_EDGES) or abs(PRICE_EDGES[pb_i] - float(str(price_lo))) > 1e-9)
        ):
            raise ValueError(
                f"model.edge_cells {city} bucket ({hb}, {pb}) has bounds ({hour_lo}, "
                f"{price_lo}) unlike this code's buckets: run kwx fusion edge again"
            )
        cells.append(
            EdgeCell(
                str(city),
                hb_i,
                pb_i,
                float(str(gain)),
                float(str(lo)),
                float(str(hi)),
                int(str(n_ev)),
                int(str(n_rows)),
            )
        )
    return EdgeCells(cells)
