"""Fit the rebuilt-quote model on real-quote days and keep it in the store.

Why apart from :mod:`kwx.backtest.quote_model`: the model is pure arithmetic on arrays; this
module is the I/O around it — the panel of the fit days (the same arrays the backtest builds,
so the prints the model reads are computed exactly as they will be at use) and the
``backtest.quote_model`` table (migration 0016).
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.backtest.loader import RawData, load_raw
from kwx.backtest.panel import Panel, build_panel
from kwx.backtest.quote_model import QuoteInputs, QuoteModel
from kwx.config import Settings
from kwx.registry import default_registry
from kwx.store.engine import connect

__all__ = [
    "fit_on_panel",
    "fit_quote_model",
    "latest_quote_model",
    "real_quote_days",
    "save_quote_model",
]

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]


def fit_on_panel(panel: Panel, raw: RawData, model: QuoteModel) -> QuoteModel:
    """Fit ``model`` on every bracket-minute of ``panel`` whose real bid and ask are known."""
    c = panel.cols
    sizes = np.asarray(raw.trades["count"], dtype=np.float64) / 100.0 if len(raw.trades) else None
    return model.fit(QuoteInputs.from_panel_cols(c), c["yes_bid"], c["yes_ask"], sizes)


def real_quote_days(conn: Conn, city: str, date_from: dt.date, date_to: dt.date) -> int:
    """Minutes of the city's markets in the range whose candles carry a real bid (a guard:
    fitting on days without quotes would learn nothing)."""
    series = default_registry().resolve(city).series
    row = conn.execute(
        "SELECT count(*) FROM md.candles_1m c JOIN kalshi.markets m USING (ticker) "
        "WHERE m.series_ticker = %s AND c.yes_bid_close IS NOT NULL "
        "AND c.ts >= %s AND c.ts < %s",
        (series, date_from, date_to + dt.timedelta(days=2)),
    ).fetchone()
    return int(str(row[0])) if row else 0


def fit_quote_model(
    conn: Conn,
    settings: Settings,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    model: QuoteModel | None = None,
) -> QuoteModel:
    """Fit a quote model on the city's climate days [date_from, date_to] (real bid/ask)."""
    target = default_registry().resolve(city)
    if real_quote_days(conn, target.key, date_from, date_to) == 0:
        raise ValueError(
            f"no real bid/ask in md.candles_1m for {target.key} {date_from} → {date_to}: "
            "fit the quote model on a real-quote window (e.g. chicago 2025-05-01 → 2025-05-04)"
        )
    raw = load_raw(conn, target, date_from, date_to, connect_again=lambda: connect(settings))
    panel = build_panel(raw)
    fitted = fit_on_panel(panel, raw, model or QuoteModel())
    fitted.fit_info_ = {
        "city": target.key,
        "fit_from": date_from.isoformat(),
        "fit_to": date_to.isoformat(),
        "minutes": fitted.n_fit_,
    }
    return fitted


def save_quote_model(conn: Conn, model: QuoteModel, version: str) -> None:
    """Upsert the model under ``version`` (its fit window comes from ``fit_info_``)."""
    info = model.fit_info_
    if not {"city", "fit_from", "fit_to"} <= set(info):
        raise ValueError("quote model has no fit window in fit_info_: fit it with fit_quote_model")
    conn.execute(
        "INSERT INTO backtest.quote_model (version, city, fit_from, fit_to, model) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET city = EXCLUDED.city, "
        "fit_from = EXCLUDED.fit_from, fit_to = EXCLUDED.fit_to, model = EXCLUDED.model, "
        "fitted_at = now()",
        (version, info["city"], info["fit_from"], info["fit_to"], model.to_json()),
    )
    conn.commit()


def latest_quote_model(conn: Conn, version: str | None = None) -> tuple[str, QuoteModel] | None:
    """The stored model ``version`` (default: the newest fitted), or None when none is stored."""
    sql = "SELECT version, model FROM backtest.quote_model "
    row = (
        conn.execute(sql + "WHERE version = %s", (version,)).fetchone()
        if version
        else conn.execute(sql + "ORDER BY fitted_at DESC, version DESC LIMIT 1").fetchone()
    )
    if row is None:
        if version:
            raise ValueError(f"no quote model {version!r} in backtest.quote_model")
        return None
    text = row[1] if isinstance(row[1], str) else json.dumps(row[1])
    return str(row[0]), QuoteModel.from_json(text)


def real_quote_window(conn: Conn) -> tuple[str, dt.date, dt.date] | None:
    """The city and climate-date span with the most real bid/ask minutes in the store (the
    window a quote model can be fitted on), or None when no candle carries a real bid."""
    row = conn.execute(
        "SELECT m.series_ticker, min(m.climate_date), max(m.climate_date), count(*) "
        "FROM md.candles_1m c JOIN kalshi.markets m USING (ticker) "
        "WHERE c.yes_bid_close IS NOT NULL AND m.climate_date IS NOT NULL "
        "GROUP BY m.series_ticker ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    conn.commit()
    if row is None or not isinstance(row[1], dt.date) or not isinstance(row[2], dt.date):
        return None
    return default_registry().resolve(str(row[0])).key, row[1], row[2]


def ensure_quote_model(conn: Conn, settings: Settings, version: str = "auto") -> str:
    """Make sure the store has a quote model, fitting one on its real-quote window if not.

    Why: a backtest without one rebuilds the touch with the legacy print rule, which is kinder
    than the book (issue 13); every main job should trade on the honest one. The model holds
    how far the real touch lies from the prints — market microstructure, no outcome — so a
    window later than the backtested days informs it without look-ahead on what settles.
    Returns a line saying which model is in use (or that none could be fitted)."""
    stored = latest_quote_model(conn)
    if stored is not None:
        return f"quote model {stored[0]} (stored)"
    window = real_quote_window(conn)
    if window is None:
        return (
            "no real bid/ask in the store to fit a quote model on: backtests rebuild quotes "
            "with the legacy print rule and their P&L is not to be believed"
        )
    city, first, last = window
    model = fit_quote_model(conn, settings, city, first, last)
    save_quote_model(conn, model, version)
    return f"quote model {version} fitted on {city} {first} → {last} ({model.n_fit_:,} minutes)"
