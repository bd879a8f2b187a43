"""What a value must look like to be let in at the edge: time ranges, sizes, Kalshi's
vocabulary. One place for the limits every importer and connector applies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from kwx.domain.tickers import TickerError

TMAX_RANGE_F = (-80, 140)

# Plausible ranges at the edge. Kalshi's weather markets began in 2021, so a market-data time
# before that or past a little after now is a corrupt value (a 2199 print would make the
# simulator replay "to 2199"). Weather history reaches further back; forecasts look ahead.
KALSHI_EPOCH = pd.Timestamp("2021-01-01", tz="UTC")
WEATHER_EPOCH = pd.Timestamp("1990-01-01", tz="UTC")
MARKET_DATA_LEAD = pd.Timedelta(days=2)  # prints, candles, books: clocks a little ahead
SCHEDULE_LEAD = pd.Timedelta(days=400)  # a market's open/close/expiration can be scheduled
WEATHER_LEAD = pd.Timedelta(days=30)  # forecast targets
MAX_CONTRACTS = 1e9  # no trade, volume or open interest comes near a billion contracts
# Kalshi's vocabulary (reference/kalshi-api.md §6.3), plus the legacy status filter names
# older exports wrote into the field.
MARKET_RESULTS = frozenset({"yes", "no", "scalar", ""})
MARKET_STATUSES = frozenset(
    {
        "initialized",
        "inactive",
        "active",
        "closed",
        "determined",
        "disputed",
        "amended",
        "finalized",
        "unopened",
        "open",
        "paused",
        "settled",
    }
)


WEATHER_RANGE: dict[str, Any] = {"earliest": WEATHER_EPOCH, "lead": WEATHER_LEAD}


def now() -> pd.Timestamp:
    """The wall clock, in one place so the ranges below all read the same one."""
    return pd.Timestamp.now(tz="UTC")


def check_climate_date(day: dt.date, ticker: str) -> None:
    """A ticker's climate date inside Kalshi's history (a 2099 ticker is a corrupt one)."""
    latest = (now() + SCHEDULE_LEAD).date()
    if not KALSHI_EPOCH.date() <= day <= latest:
        raise TickerError(
            f"ticker {ticker!r} names {day}, outside Kalshi's history "
            f"({KALSHI_EPOCH.date()} to {latest})"
        )
