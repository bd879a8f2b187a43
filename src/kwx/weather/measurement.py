"""The measurement model: how far the official maximum lands from what a source observed.

For every settled climate day, offset = settled whole-°F maximum − the source's running
maximum at the end of that climate day. Its distribution per (city, source) is what turns a
whole-°C 5-minute reading, a METAR T group or the ERA5 city-centre proxy into a probability for
the official number: the engine adds a draw from it to each simulated path's maximum.

The offset is seasonal (for the ERA5 proxy in Chicago it runs from about +1 °F in January to
+6 °F in May), so besides the all-year pmf (month 0) one pmf per calendar month is fitted from
the days within a month either side, and the engine uses the climate day's month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import psycopg

from kwx.domain.climate_day import climate_day_window
from kwx.registry import City

# Settlement sources, best first: the CLI itself, then the values it was drawn from.
SETTLEMENT_PREFERENCE = ("cli", "official", "acis", "iem", "ncei")


@dataclass(frozen=True)
class OffsetDistribution:
    """An empirical pmf of integer offsets (official − observed running max, rounded)."""

    city: str
    source: str
    offsets: np.ndarray  # int, ascending
    probs: np.ndarray  # float, sums to 1
    n_days: int
    mean: float
    sd: float
    month: int = 0  # 0: all year; 1–12: days within a month either side of that month

    def quantile(self, q: float) -> int:
        cdf = np.cumsum(self.probs)
        return int(self.offsets[int(np.searchsorted(cdf, q - 1e-12))])


def daily_pairs(
    conn: psycopg.Connection[tuple[object, ...]],
    city: City,
    source: str,
    date_from: dt.date,
    date_to: dt.date,
) -> list[tuple[dt.date, int, float]]:
    """(climate date, settled max, observed max over that climate day) for settled days."""
    first, _ = climate_day_window(city.timezone, date_from)
    _, last = climate_day_window(city.timezone, date_to)
    offset_min = int(
        (first - dt.datetime.combine(date_from, dt.time(), dt.UTC)).total_seconds() // 60
    )
    rows = conn.execute(
        """
        WITH obs AS (
            SELECT (o.ts - make_interval(mins => %(off)s))::date AS climate_date,
                   max(o.temp_f) AS observed_max, count(*) AS n
            FROM wx.obs o
            WHERE o.city = %(city)s AND o.source = %(source)s AND o.temp_f IS NOT NULL
              AND o.ts >= %(first)s AND o.ts < %(last)s
            GROUP BY 1
        ), settled AS (
            SELECT DISTINCT ON (climate_date) climate_date, tmax_final
            FROM wx.settlement
            WHERE city = %(city)s AND climate_date BETWEEN %(d0)s AND %(d1)s
            ORDER BY climate_date, array_position(%(pref)s::text[], source)
        )
        SELECT s.climate_date, s.tmax_final, o.observed_max
        FROM settled s JOIN obs o USING (climate_date)
        ORDER BY 1
        """,
        {
            "off": offset_min,
            "city": city.key,
            "source": source,
            "first": first,
            "last": last,
            "d0": date_from,
            "d1": date_to,
            "pref": list(SETTLEMENT_PREFERENCE),
        },
    ).fetchall()
    conn.commit()
    return [(d, int(str(t)), float(str(m))) for d, t, m in rows]  # type: ignore[misc]


def fit_offsets(
    pairs: list[tuple[dt.date, int, float]], city: str, source: str
) -> OffsetDistribution:
    if not pairs:
        raise ValueError(f"no settled days with {source} observations for {city}")
    raw = np.array([settled - observed for _, settled, observed in pairs], dtype=float)
    rounded = np.floor(raw + 0.5).astype(int)
    offsets, counts = np.unique(rounded, return_counts=True)
    return OffsetDistribution(
        city,
        source,
        offsets,
        counts / counts.sum(),
        len(pairs),
        float(raw.mean()),
        float(raw.std(ddof=1)) if len(raw) > 1 else 0.0,
    )


def fit_seasonal_offsets(
    pairs: list[tuple[dt.date, int, float]], city: str, source: str, *, min_days: int = 30
) -> list[OffsetDistribution]:
    """One pmf per calendar month from the days of that month and its two neighbours.

    Months with fewer than ``min_days`` such days are left out (the all-year pmf serves them).
    """
    out = []
    for month in range(1, 13):
        near = {(month - 2) % 12 + 1, month, month % 12 + 1}
        chosen = [p for p in pairs if p[0].month in near]
        if len(chosen) >= min_days:
            dist = fit_offsets(chosen, city, source)
            out.append(
                OffsetDistribution(
                    city,
                    source,
                    dist.offsets,
                    dist.probs,
                    dist.n_days,
                    dist.mean,
                    dist.sd,
                    month,
                )
            )
    return out


def store_offsets(
    conn: psycopg.Connection[tuple[object, ...]],
    dist: OffsetDistribution,
    date_from: dt.date,
    date_to: dt.date,
) -> None:
    """Replace the (city, source, month) pmf in one transaction."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM wx.measurement_model WHERE city = %s AND source = %s AND month = %s",
            (dist.city, dist.source, dist.month),
        )
        for offset, prob in zip(dist.offsets.tolist(), dist.probs.tolist(), strict=True):
            conn.execute(
                "INSERT INTO wx.measurement_model (city, source, month, offset_f, prob, n_days, "
                "date_from, date_to) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    dist.city,
                    dist.source,
                    dist.month,
                    offset,
                    prob,
                    dist.n_days,
                    date_from,
                    date_to,
                ),
            )
