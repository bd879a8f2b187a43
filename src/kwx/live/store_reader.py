"""The weather side of the live loop: pmf.minute and wx.obs rows up to now, from the store.

The weather model (:mod:`kwx.weather.run_day`) writes p_wx, hazards and Tmax quantiles to
pmf.minute, the fusion (:mod:`kwx.pmf.fusion`) p_fused_norm beside them, and the ingest job
(``kwx ingest run``) keeps wx.obs current; :class:`StoreReader` reads, each minute, the rows
stamped since its last read and *at or before now* — never a later one, even when the store
already holds them (a replay, a backfilled day) — into the city's
:class:`~kwx.live.market_data.LiveMarketData`. Minutes the store lacks are NaN in the panel
exactly as in a backtest; :mod:`kwx.live.weather` fills them minute by minute when asked.
"""

from __future__ import annotations

import datetime as dt

import psycopg

from kwx.live.market_data import LiveMarketData

__all__ = ["StoreReader"]

Conn = psycopg.Connection[tuple[object, ...]]
OBS_LOOKBACK = dt.timedelta(hours=3)  # feat.minute_panel_with_weather's freshest-reading window


class StoreReader:
    """Incremental reads of one city's pmf.minute and wx.obs rows (see the module notes)."""

    def __init__(self, conn: Conn, market: LiveMarketData) -> None:
        self.conn = conn
        self.market = market
        first = min(e.day_start for e in market.events)
        self._pmf_after = first - dt.timedelta(minutes=1)
        self._obs_after = first - OBS_LOOKBACK
        self.pmf_rows = 0
        self.obs_rows = 0

    def refresh(self, now: dt.datetime) -> None:
        if now > self._pmf_after:
            rows = self.conn.execute(
                "SELECT ticker, ts, p_mkt, p_wx, p_fused_norm, hazard_next_5m, hazard_next_60m, "
                "tmax_q50 FROM pmf.minute WHERE ticker = ANY(%s) AND mc_version = %s "
                "AND ts > %s AND ts <= %s ORDER BY ts, ticker",
                (self.market.tickers, self.market.mc_version, self._pmf_after, now),
            ).fetchall()
            self.pmf_rows += self.market.add_pmf(rows)
            # A row for a minute may land later (the model runs behind): re-read the last few.
            self._pmf_after = max(self._pmf_after, now - dt.timedelta(minutes=5))
        if now > self._obs_after:
            rows = self.conn.execute(
                "SELECT r.rank, (extract(epoch FROM o.ts) * 1000000)::int8, o.temp_f "
                "FROM wx.obs o JOIN meta.obs_source_rank r ON r.source = o.source "
                "WHERE o.city = %s AND o.temp_f IS NOT NULL AND o.ts > %s AND o.ts <= %s "
                "ORDER BY o.ts, r.rank",
                (self.market.city, self._obs_after, now),
            ).fetchall()
            self.obs_rows += self.market.add_obs(
                (int(str(r[0])), int(str(r[1])), float(str(r[2]))) for r in rows
            )
            self._obs_after = max(self._obs_after, now - dt.timedelta(minutes=30))
        self.conn.commit()
