"""Rules for Kalshi market records at the edge: a market's ticker, its event, its bracket and
its settled value must agree with each other, and blanks the ticker can answer are filled in.

Each rule raises BadInputError naming the source, row and field; nothing here touches the
store. `notes_batches` turns notes about inferred or left-out rows into meta.bad_input rows
written in the same transaction as the file's data.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from kwx.domain.brackets import (
    Bracket,
    LadderError,
    StrikeType,
    parse_expiration_value,
    settled_tmax,
)
from kwx.domain.tickers import (
    MarketTicker,
    TickerError,
    infer_event_brackets,
    parse_event_ticker,
    parse_market_ticker,
)
from kwx.ingest.edge import TMAX_RANGE_F, check_climate_date
from kwx.registry import City, CityRegistry, UnknownCityError
from kwx.sources.files import BadInputError
from kwx.store import writers
from kwx.store.writers import Batch


def market_ticker(
    value: object, registry: CityRegistry, source: str, row: int
) -> tuple[MarketTicker, City]:
    """A market ticker of a registry series, dated inside Kalshi's history."""
    try:
        if not isinstance(value, str):
            raise TickerError(f"not a daily-high market ticker: {value!r}")
        parsed = parse_market_ticker(value)
        city = registry.by_prefix(parsed.event.prefix)
        check_climate_date(parsed.event.climate_date, value)
    except (TickerError, UnknownCityError) as exc:
        raise BadInputError(
            source, str(exc), row=row, field="ticker", raw=repr(value)[:200]
        ) from exc
    return parsed, city


def event_of(value: object, market: MarketTicker, source: str, row: int) -> str:
    """The event ticker as written, refused unless it is the market's own event: a Chicago
    market filed under a New York event would otherwise retitle the New York event."""
    try:
        if not isinstance(value, str):
            raise TickerError(f"not a daily-high event ticker: {value!r}")
        event = parse_event_ticker(value)
    except TickerError as exc:
        raise BadInputError(
            source, str(exc), row=row, field="event_ticker", raw=repr(value)[:200]
        ) from exc
    if (event.series, event.climate_date) != (market.event.series, market.event.climate_date):
        raise BadInputError(
            source,
            f"market {market.raw} does not belong to event {value} "
            f"(its ticker names {market.event.canonical})",
            row=row,
            field="event_ticker",
            raw=value,
        )
    return value


def vocabulary(
    value: object, allowed: frozenset[str], source: str, row: int, field: str
) -> str | None:
    """A field from Kalshi's fixed vocabulary, lower-cased; blank is None, the rest refused."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text not in allowed:
        known = ", ".join(sorted(v for v in allowed if v))
        raise BadInputError(
            source,
            f"{value!r} is not one of Kalshi's values ({known})",
            row=row,
            field=field,
            raw=repr(value)[:200],
        )
    return text or None


def is_blank(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and np.isnan(value))
    )


def given_bracket(
    rec: dict[str, Any], market: MarketTicker, source: str, row: int
) -> Bracket | None:
    """The record's bracket, checked against its ticker; None when strike_type is blank
    (then it is inferred from the ticker and its siblings)."""
    if is_blank(rec.get("strike_type")):
        return None
    try:
        bracket = Bracket.from_strikes(
            str(rec["strike_type"]), rec.get("floor_strike"), rec.get("cap_strike")
        )
    except ValueError as exc:
        raise BadInputError(
            source, str(exc), row=row, field="strike_type", raw=repr(rec["strike_type"])[:200]
        ) from exc
    field = contradiction(bracket, market)
    if field is not None:
        raise BadInputError(
            source,
            f"{bracket.strike_type} {bracket.floor}..{bracket.cap} contradicts ticker {market.raw}",
            row=row,
            field=field,
        )
    return bracket


def contradiction(bracket: Bracket, market: MarketTicker) -> str | None:
    """The field of a bracket its ticker contradicts: ``B84.5`` is between 84 and 85, ``T84``
    a tail at 84 (less: cap 84; greater: floor 84). None when they agree."""
    half = Decimal("0.5")
    if market.kind == "B":
        if bracket.strike_type is not StrikeType.BETWEEN:
            return "strike_type"
        if bracket.floor != market.strike - half:
            return "floor_strike"
        if bracket.cap != market.strike + half:
            return "cap_strike"
        return None
    if bracket.strike_type in (StrikeType.LESS, StrikeType.LESS_OR_EQUAL):
        return None if bracket.cap == market.strike and bracket.floor is None else "cap_strike"
    if bracket.strike_type in (StrikeType.GREATER, StrikeType.GREATER_OR_EQUAL):
        return None if bracket.floor == market.strike and bracket.cap is None else "floor_strike"
    return "strike_type"


def _event_groups(rows: list[dict[str, Any]]) -> dict[tuple[str, dt.date], list[int]]:
    groups: dict[tuple[str, dt.date], list[int]] = {}
    for k, r in enumerate(rows):
        groups.setdefault((r["series_ticker"], r["climate_date"]), []).append(k)
    return groups


def check_ladders(rows: list[dict[str, Any]], source: str) -> None:
    """Each event's given tails point the way its tickers say (the lower T is the less tail):
    with brackets matching tickers one by one, that is what keeps the ladder tiling."""
    for members in _event_groups(rows).values():
        tickers = sorted({rows[k]["ticker"] for k in members})
        try:
            expected = infer_event_brackets(tickers)
        except (TickerError, LadderError):
            continue  # a lone tail: its direction cannot be checked from this file
        for k in members:
            given = rows[k]["strike_type"]
            want = expected[rows[k]["ticker"]].strike_type
            if given is not None and StrikeType(given) not in _SAME_SIDE[want]:
                raise BadInputError(
                    source,
                    f"{rows[k]['ticker']} is a {given} tail but its event's tickers make it "
                    f"the {want} tail: the ladder would not tile",
                    row=k + 1,
                    field="strike_type",
                )


_SAME_SIDE = {
    StrikeType.LESS: (StrikeType.LESS, StrikeType.LESS_OR_EQUAL),
    StrikeType.GREATER: (StrikeType.GREATER, StrikeType.GREATER_OR_EQUAL),
    StrikeType.BETWEEN: (StrikeType.BETWEEN,),
}


def fill_blank_strikes(
    rows: list[dict[str, Any]], blanks: dict[int, int], source: str
) -> list[BadInputError]:
    """Strikes for rows that left strike_type blank (the 2025 exports do, for each day's
    winning bracket), inferred from the ticker and its siblings in the file, as the ladder
    import does. Returns notes: one per inferred row, and one per row refused because its
    bracket cannot be known (a lone tail); the caller drops those rows."""
    notes: list[BadInputError] = []
    if not blanks:
        return notes
    groups = _event_groups(rows)
    for k, src_row in blanks.items():
        row = rows[k]
        members = groups[(row["series_ticker"], row["climate_date"])]
        tickers = sorted({rows[m]["ticker"] for m in members})
        try:
            bracket = infer_event_brackets(tickers)[row["ticker"]]
        except (TickerError, LadderError) as exc:
            notes.append(
                BadInputError(
                    source,
                    f"strike_type, floor and cap are blank and cannot be inferred: {exc}; "
                    "this market was not imported",
                    row=src_row,
                    field="strike_type",
                    raw=row["ticker"],
                )
            )
            continue
        row["strike_type"] = bracket.strike_type.value
        row["floor_strike"], row["cap_strike"] = bracket.floor, bracket.cap
        notes.append(
            BadInputError(
                source,
                f"strike_type, floor and cap were blank; inferred from the ticker and its "
                f"siblings: {bracket.strike_type} {bracket.floor}..{bracket.cap}",
                row=src_row,
                field="floor_strike",
                raw=row["ticker"],
            )
        )
    return notes


def notes_batches(notes: list[BadInputError]) -> list[Batch]:
    """Notes on a file's rows (inferred or refused ones), kept in meta.bad_input in the same
    transaction as the file's data, so they exist exactly when the data does."""
    if not notes:
        return []
    frame = pd.DataFrame(
        {
            "source": "file",
            "location": [n.source + (f":{n.row}" if n.row is not None else "") for n in notes],
            "field": [n.field for n in notes],
            "message": [n.reason for n in notes],
            "raw": [n.raw for n in notes],
        }
    )
    return [Batch(writers.BAD_INPUT, frame)]


def settled_value(value: object, source: str, row: int) -> int | None:
    """The settled °F from expiration_value; text with no leading number ("banana") is
    refused, not read as "not settled", which would erase a stored settled value."""
    try:
        tmax = settled_tmax(value)
    except ValueError as exc:
        raise BadInputError(
            source, str(exc), row=row, field="expiration_value", raw=repr(value)[:200]
        ) from exc
    if tmax is None and not is_blank(value) and parse_expiration_value(value) is None:
        raise BadInputError(
            source,
            f"no settled value can be read from {value!r}",
            row=row,
            field="expiration_value",
            raw=repr(value)[:200],
        )
    if tmax is not None and not TMAX_RANGE_F[0] <= tmax <= TMAX_RANGE_F[1]:
        raise BadInputError(
            source, f"impossible settled value {tmax} °F", row=row, field="expiration_value"
        )
    return tmax
