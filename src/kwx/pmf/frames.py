"""Reading pmf.minute into the (row = event-minute, column = bracket) arrays fusion works on.

One place knows how an event's brackets are ordered (the ladder order of feat.market_day),
which bracket won (the one market that settled YES, else the settled maximum against the
brackets), and how rows with a missing input are dropped, so that fit, run and report agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from kwx.domain.brackets import Bracket
from kwx.pmf.anchored import AnchoredInputs, bracket_centre
from kwx.pmf.pool import FEATURES

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Ladder:
    """An event's markets in ladder order and the index of the bracket that won (if known)."""

    event_ticker: str
    tickers: list[str]
    winner: int | None
    centres: tuple[float, ...] = ()  # each bracket's representative value (°F), ladder order


def _winner(rows: list[tuple[object, ...]]) -> int | None:
    """The winning bracket: the one market that settled YES, else the one whose bracket holds
    the settled maximum; None when neither gives exactly one."""
    yes = [i for i, r in enumerate(rows) if r[3] == "yes"]
    if len(yes) == 1:
        return yes[0]
    tmax = next((r[4] for r in rows if r[4] is not None), None)
    if tmax is None:
        return None
    wins = [
        i
        for i, r in enumerate(rows)
        if Bracket.from_strikes(str(r[5]), r[6], r[7]).wins(int(str(tmax)))  # type: ignore[arg-type]
    ]
    return wins[0] if len(wins) == 1 else None


def load_ladders(conn: Conn, events: list[str]) -> dict[str, Ladder]:
    """Ladders of the given events (events without markets are absent from the result)."""
    rows = conn.execute(
        "SELECT ticker, event_ticker, bracket_index, result, settled_tmax, strike_type, "
        "floor_strike, cap_strike FROM feat.market_day WHERE event_ticker = ANY(%s) "
        "ORDER BY event_ticker, bracket_index, ticker",
        (events,),
    ).fetchall()
    conn.commit()
    by_event: dict[str, list[tuple[object, ...]]] = {}
    for r in rows:
        by_event.setdefault(str(r[1]), []).append(r)
    return {
        ev: Ladder(
            ev,
            [str(r[0]) for r in rs],
            _winner(rs),
            tuple(bracket_centre(Bracket.from_strikes(str(r[5]), r[6], r[7])) for r in rs),  # type: ignore[arg-type]
        )
        for ev, rs in by_event.items()
    }


@dataclass(frozen=True)
class Sample:
    """Event-minutes as arrays: bracket columns in ladder order, NaN-padded to the widest
    ladder. `winner` is −1 where the event's winner is unknown."""

    event: npt.NDArray[np.object_]
    ts: npt.NDArray[np.object_]
    x: FloatArray  # (n, len(FEATURES))
    p_mkt: FloatArray
    p_wx: FloatArray
    winner: IntArray
    tickers: list[list[str]]  # per row, the tickers of its columns
    extra: dict[str, FloatArray]  # other per-bracket columns asked for, same shape as p_mkt

    def __len__(self) -> int:
        return len(self.event)

    def take(self, mask: npt.NDArray[np.bool_]) -> Sample:
        idx = np.flatnonzero(mask)
        return Sample(
            self.event[idx],
            self.ts[idx],
            self.x[idx],
            self.p_mkt[idx],
            self.p_wx[idx],
            self.winner[idx],
            [self.tickers[i] for i in idx],
            {k: v[idx] for k, v in self.extra.items()},
        )


BASE_COLUMNS = (
    "event_ticker",
    "ts",
    "ticker",
    "p_mkt",
    "p_wx",
    "hazard_next_60m",
    "mkt_volume_20m",
    "mkt_volatility",
    "minutes_to_close",
)


def assemble(
    frame: pd.DataFrame, ladders: dict[str, Ladder], extra: tuple[str, ...] = ()
) -> Sample:
    """Pivot long pmf.minute rows (BASE_COLUMNS + extra) into a Sample.

    Rows of events without a ladder are dropped; a bracket of the ladder with no pmf.minute
    row at that minute leaves NaN in its column (the row is then incomplete, see
    `complete`).
    """
    frame = frame[frame["event_ticker"].isin(ladders.keys())]
    width = max((len(lad.tickers) for lad in ladders.values()), default=0)
    col_of = {t: i for lad in ladders.values() for i, t in enumerate(lad.tickers)}
    frame = frame.assign(col=frame["ticker"].map(col_of))
    frame = frame[frame["col"].notna()]
    keys = frame[["event_ticker", "ts"]].drop_duplicates().reset_index(drop=True)
    n = len(keys)
    row_of = pd.Series(np.arange(n), index=pd.MultiIndex.from_frame(keys))
    rows = row_of.loc[pd.MultiIndex.from_frame(frame[["event_ticker", "ts"]])].to_numpy()
    cols = frame["col"].to_numpy(dtype=np.int64)

    def grid(name: str) -> FloatArray:
        out = np.full((n, width), np.nan)
        out[rows, cols] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def per_row(name: str) -> FloatArray:
        out = np.full(n, np.nan)
        out[rows] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    volume = per_row("mkt_volume_20m")
    x = np.column_stack(
        [
            np.log1p(np.maximum(volume, 0.0)),
            per_row("hazard_next_60m"),
            per_row("mkt_volatility"),
            per_row("minutes_to_close"),
        ]
    )
    assert x.shape[1] == len(FEATURES)
    events = keys["event_ticker"].to_numpy(dtype=object)
    winner = np.array(
        [ladders[e].winner if ladders[e].winner is not None else -1 for e in events],
        dtype=np.int64,
    )
    return Sample(
        event=events,
        ts=keys["ts"].to_numpy(dtype=object),
        x=x,
        p_mkt=grid("p_mkt"),
        p_wx=grid("p_wx"),
        winner=winner,
        tickers=[ladders[e].tickers for e in events],
        extra={name: grid(name) for name in extra},
    )


def complete(sample: Sample, *, columns: tuple[str, ...] = ()) -> npt.NDArray[np.bool_]:
    """Rows where every bracket of the ladder has p_mkt and p_wx (and the `columns` of
    `extra`) and every feature is finite."""
    width = sample.p_mkt.shape[1]
    sizes = np.array([len(t) for t in sample.tickers], dtype=np.int64)
    in_ladder = np.arange(width)[None, :] < sizes[:, None]
    ok: npt.NDArray[np.bool_] = np.all(~in_ladder | ~np.isnan(sample.p_mkt), axis=1)
    ok &= np.all(~in_ladder | ~np.isnan(sample.p_wx), axis=1)
    for name in columns:
        ok &= np.all(~in_ladder | ~np.isnan(sample.extra[name]), axis=1)
    ok &= np.all(np.isfinite(sample.x), axis=1)
    return ok


def read_minutes(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    mc_version: str,
    *,
    every_min: int | None = None,
    times: list[dt.datetime] | None = None,
    extra: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Long pmf.minute rows of a city's events in a climate-date range: every `every_min`
    minutes (on the UTC clock, which is the climate day's clock shifted by whole hours), or
    at the given instants."""
    cols = ", ".join(f"m.{c}" for c in (*BASE_COLUMNS, *extra))
    lo = dt.datetime.combine(date_from - dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    hi = dt.datetime.combine(date_to + dt.timedelta(days=2), dt.time(0), tzinfo=dt.UTC)
    sql = (
        f"SELECT {cols} FROM pmf.minute m JOIN kalshi.events e "
        "ON e.event_ticker = m.event_ticker "
        "WHERE m.city = %(city)s AND m.mc_version = %(v)s AND m.ts >= %(lo)s AND m.ts < %(hi)s "
        "AND e.climate_date BETWEEN %(d0)s AND %(d1)s"
    )
    params: dict[str, object] = {
        "city": city,
        "v": mc_version,
        "lo": lo,
        "hi": hi,
        "d0": date_from,
        "d1": date_to,
    }
    if every_min is not None:
        sql += " AND (extract(epoch FROM m.ts)::bigint / 60) %% %(every)s = 0"
        params["every"] = every_min
    if times is not None:
        sql += " AND m.ts = ANY(%(times)s)"
        params["times"] = times
    rows = conn.execute(sql, params).fetchall()
    conn.commit()
    return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *extra])


def anchored_inputs(sample: Sample, ladders: dict[str, Ladder]) -> AnchoredInputs:
    """The anchored pool's inputs for a Sample read with extra=("tmax_q50",): bracket centres
    from the ladders, the weather median per row (stored on every bracket alike) and the
    local hour of the climate day from minutes_to_close (the day is 1,440 minutes long in
    local standard time)."""
    n, width = sample.p_mkt.shape
    centre = np.full((n, width), np.nan)
    for i, event in enumerate(sample.event):
        values = ladders[str(event)].centres
        centre[i, : len(values)] = values
    q50 = sample.extra["tmax_q50"]
    has = ~np.isnan(q50)
    q50_row = np.where(has.any(axis=1), np.nanmax(np.where(has, q50, -np.inf), axis=1), np.nan)
    hour = (1440.0 - sample.x[:, 3]) / 60.0
    return AnchoredInputs(sample.p_mkt, sample.p_wx, centre, q50_row, hour)
