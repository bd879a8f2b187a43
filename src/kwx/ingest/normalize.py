"""Turn each kind of data file into validated batches for the store's writers.

Validation is vectorised and strict: the first bad value of a file raises BadInputError with
the file, the 1-based data row (header not counted) and the field, and nothing of that file is
written. Prices stay exact: dollar strings go to PostgreSQL as written, legacy integer cents are
divided by 100 in NUMERIC arithmetic there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kwx.domain.brackets import (
    LadderError,
)
from kwx.domain.climate_day import standard_offset
from kwx.domain.tickers import (
    TickerError,
    infer_event_brackets,
    parse_market_ticker,
)
from kwx.ingest.edge import (
    KALSHI_EPOCH,
    MARKET_DATA_LEAD,
    MARKET_RESULTS,
    MARKET_STATUSES,
    MAX_CONTRACTS,
    SCHEDULE_LEAD,
    TMAX_RANGE_F,
    WEATHER_RANGE,
    check_climate_date,
    now,
)
from kwx.ingest.market_rules import (
    check_ladders,
    event_of,
    fill_blank_strikes,
    given_bracket,
    market_ticker,
    notes_batches,
    settled_value,
    vocabulary,
)
from kwx.registry import City, CityRegistry, UnknownCityError
from kwx.sources.files import BadInputError, FileKind, NotImportableError, load_json, read_table
from kwx.store import writers
from kwx.store.writers import Batch

# Exact dollar strings for legacy integer cents (0..100): a lookup, not float formatting.
CENTS_AS_DOLLARS = np.array([f"{c // 100}.{c % 100:02d}" for c in range(101)], dtype=object)

UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class ImportContext:
    registry: CityRegistry
    top_of_book_timezone: str = "America/Los_Angeles"


# ------------------------------------------------------------------------------ validators
def _require(frame: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise BadInputError(source, "required column is missing", field=col)


def _first_bad(mask: np.ndarray[Any, Any] | pd.Series[bool]) -> int | None:
    idx = np.flatnonzero(np.asarray(mask))
    return int(idx[0]) if idx.size else None


def _raise_at(source: str, frame: pd.DataFrame, pos: int, col: str, message: str) -> None:
    raw = frame[col].iloc[pos]
    raise BadInputError(source, f"{message} (value {raw!r})", row=pos + 1, field=col, raw=repr(raw))


def _timestamps(
    frame: pd.DataFrame,
    col: str,
    source: str,
    *,
    tz: str | None = None,
    required: bool = True,
    earliest: pd.Timestamp = KALSHI_EPOCH,
    lead: pd.Timedelta = MARKET_DATA_LEAD,
) -> pd.Series[pd.Timestamp]:
    """Parse a column to UTC; naive values are local time in `tz` (or UTC when tz is None).

    Times before `earliest` or more than `lead` past now are refused: no real row has them.
    """
    raw = frame[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        # Without a local zone, naive values are UTC and offsets may differ row to row.
        utc = tz is None
        # As text: a bare number is not a time (pandas would read it as an epoch some day).
        text = raw.astype("string")
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
        if parsed.isna().any() and parsed.notna().any():
            parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=utc)
    bad = parsed.isna() & raw.notna()
    if required:
        bad = bad | raw.isna()
    pos = _first_bad(bad)
    if pos is not None:
        _raise_at(source, frame, pos, col, "not a valid timestamp")
    if getattr(parsed.dt, "tz", None) is None:
        try:
            parsed = parsed.dt.tz_localize(tz or "UTC", ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as exc:
            raise BadInputError(
                source, f"local time does not exist or is ambiguous in {tz}: {exc}", field=col
            ) from exc
    converted: pd.Series[pd.Timestamp] = parsed.dt.tz_convert("UTC")
    latest = now() + lead
    pos = _first_bad(converted.notna() & ((converted < earliest) | (converted > latest)))
    if pos is not None:
        _raise_at(
            source,
            frame,
            pos,
            col,
            f"timestamp out of range ({earliest:%Y-%m-%d} to {latest:%Y-%m-%d})",
        )
    return converted


def _numbers(
    frame: pd.DataFrame,
    col: str,
    source: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    integral: bool = False,
    required: bool = True,
    what: str = "number",
) -> pd.Series[float]:
    raw = frame[col]
    if pd.api.types.is_bool_dtype(raw):
        _raise_at(source, frame, 0, col, f"not a valid {what}: true/false")
    if raw.dtype == object:
        # JSON true/false would read as 1/0, lists and objects as garbage: not numbers.
        odd = raw.map(lambda v: isinstance(v, (bool, np.bool_, list, dict)))
        pos = _first_bad(odd)
        if pos is not None:
            _raise_at(source, frame, pos, col, f"not a valid {what}")
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = values.isna() & raw.notna()
    if required:
        bad |= raw.isna()
    pos = _first_bad(bad)
    if pos is not None:
        _raise_at(source, frame, pos, col, f"not a valid {what}")
    if integral:
        pos = _first_bad(values.notna() & (values != np.round(values)))
        if pos is not None:
            _raise_at(source, frame, pos, col, f"{what} must be a whole number")
    if lo is not None:
        pos = _first_bad(values < lo)
        if pos is not None:
            _raise_at(source, frame, pos, col, f"impossible {what}: below {lo}")
    if hi is not None:
        pos = _first_bad(values > hi)
        if pos is not None:
            _raise_at(source, frame, pos, col, f"impossible {what}: above {hi}")
    return values


def _decimal_places(frame: pd.DataFrame, col: str, source: str, places: int) -> None:
    text = frame[col].astype("string").str.strip()
    ok = text.str.fullmatch(rf"\d+(\.\d{{0,{places}}})?").fillna(False).astype(bool)
    pos = _first_bad(~ok)
    if pos is not None:
        _raise_at(source, frame, pos, col, f"more than {places} decimal places")


def _tickers_valid(frame: pd.DataFrame, col: str, source: str, registry: CityRegistry) -> None:
    """Every ticker parses and belongs to a series of the registry (an allow-list: KXHIGHNYD
    is an hourly series and KXHIGHINFLATION is not weather)."""
    tickers = frame[col]
    pos = _first_bad(tickers.isna())
    if pos is not None:
        _raise_at(source, frame, pos, col, "ticker is empty")
    for ticker in pd.unique(tickers):
        try:
            if not isinstance(ticker, str):
                raise TickerError(f"not a daily-high market ticker: {ticker!r}")
            parsed = parse_market_ticker(ticker)
            registry.by_prefix(parsed.event.prefix)
            check_climate_date(parsed.event.climate_date, ticker)
        except (TickerError, UnknownCityError) as exc:
            pos = int(np.flatnonzero((tickers == ticker).to_numpy())[0])
            raise BadInputError(
                source, str(exc), row=pos + 1, field=col, raw=repr(ticker)[:200]
            ) from exc


_PERIOD_SUFFIX = re.compile(r"_\d{4}(-\d{2}){0,2}$")


def _city_from_stem(path: Path, registry: CityRegistry) -> City:
    """The city a per-city file is named after; a period suffix (``chicago_2025-05``) names
    the months it covers, not another city."""
    stem = _PERIOD_SUFFIX.sub("", path.name.split(".")[0])
    try:
        return registry.resolve(stem)
    except UnknownCityError as exc:
        raise BadInputError(str(path), f"cannot tell the city from the file name: {exc}") from exc


def _city_from_column(
    frame: pd.DataFrame, col: str, source: str, registry: CityRegistry
) -> pd.Series[str]:
    keys: dict[str, str] = {}
    for value in pd.unique(frame[col]):
        try:
            keys[str(value)] = registry.resolve(str(value)).key
        except UnknownCityError as exc:
            pos = int(np.flatnonzero((frame[col] == value).to_numpy())[0])
            raise BadInputError(
                source, f"unknown series or city: {exc}", row=pos + 1, field=col
            ) from exc
    return frame[col].astype(str).map(keys)


# ------------------------------------------------------------------------------ kalshi
def normalize_trades(path: Path, ctx: ImportContext) -> list[Batch]:
    """Trades in the legacy integer-cent shape or the 2026 fixed-point shape."""
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    if frame.empty:
        return []  # e.g. the last page of a paginated dump: nothing to store
    _require(frame, ["trade_id", "ticker", "created_time"], source)
    fixed_point = "yes_price_dollars" in frame.columns
    if fixed_point:
        _require(frame, ["count_fp", "yes_price_dollars", "no_price_dollars"], source)
        price_cols, count_col, hi = ("yes_price_dollars", "no_price_dollars"), "count_fp", 1.0
    else:
        _require(frame, ["count", "yes_price", "no_price"], source)
        price_cols, count_col, hi = ("yes_price", "no_price"), "count", 100.0
    ids = frame["trade_id"].astype("string")
    pos = _first_bad(~ids.fillna("").str.fullmatch(UUID_RE).astype(bool))
    if pos is not None:
        _raise_at(source, frame, pos, "trade_id", "not a UUID")
    _tickers_valid(frame, "ticker", source, ctx.registry)
    times = _timestamps(frame, "created_time", source)
    yes = _numbers(
        frame, price_cols[0], source, lo=0, hi=hi, integral=not fixed_point, what="price"
    )
    no = _numbers(frame, price_cols[1], source, lo=0, hi=hi, integral=not fixed_point, what="price")
    pos = _first_bad((yes + no - hi).abs() > 1e-9)
    if pos is not None:
        _raise_at(source, frame, pos, price_cols[1], "yes and no prices do not sum to 1")
    counts = _numbers(frame, count_col, source, lo=0, hi=MAX_CONTRACTS, what="count")
    pos = _first_bad(counts <= 0)
    if pos is not None:
        _raise_at(source, frame, pos, count_col, "impossible count: not positive")
    if fixed_point:
        # Stored exactly or refused: NUMERIC would silently round extra decimals.
        _decimal_places(frame, count_col, source, 2)
        for col in price_cols:
            _decimal_places(frame, col, source, 6)
    side_col = "taker_outcome_side" if "taker_outcome_side" in frame.columns else "taker_side"
    side = (
        frame[side_col].astype("string")
        if side_col in frame.columns
        else pd.Series(pd.NA, index=frame.index, dtype="string")
    )
    pos = _first_bad(side.notna() & ~side.isin(["yes", "no"]).fillna(False))
    if pos is not None:
        _raise_at(source, frame, pos, side_col, "taker side must be 'yes' or 'no'")
    block = (
        frame["is_block_trade"].astype("boolean")
        if "is_block_trade" in frame.columns
        else pd.Series(pd.NA, index=frame.index, dtype="boolean")
    )
    out = pd.DataFrame(
        {
            "trade_id": ids.str.lower(),
            "ticker": frame["ticker"].astype("string"),
            "created_time": times,
            "count_fp": frame[count_col].astype("string") if fixed_point else counts,
            "yes_price": frame[price_cols[0]].astype("string")
            if fixed_point
            else CENTS_AS_DOLLARS[yes.to_numpy(dtype="int64")],
            "no_price": frame[price_cols[1]].astype("string")
            if fixed_point
            else CENTS_AS_DOLLARS[no.to_numpy(dtype="int64")],
            "taker_side": side,
            "is_block_trade": block,
        }
    )
    _conflicting_trade_ids(out, frame, source)
    # Key order makes the primary-key B-tree inserts nearly sequential (30% faster COPY).
    out = out.sort_values(["ticker", "created_time"], kind="stable", ignore_index=True)
    return [Batch(writers.TRADES, out)]


def _conflicting_trade_ids(out: pd.DataFrame, frame: pd.DataFrame, source: str) -> None:
    """The same trade_id twice is one print written twice (kept once) only when ticker, price
    and count agree and the times are within the two seconds of REST/WebSocket precision;
    otherwise one of the two is wrong and the file is refused rather than one silently kept."""
    repeated = out["trade_id"].duplicated(keep=False)
    if not repeated.any():
        return
    rows = out[repeated]
    first = rows.groupby("trade_id", sort=False).transform("first")
    spread = rows.groupby("trade_id", sort=False)["created_time"].transform(
        lambda t: t.max() - t.min()
    )
    differs = (
        (rows["ticker"] != first["ticker"])
        | (rows["yes_price"].astype(str) != first["yes_price"].astype(str))
        | (rows["count_fp"].astype(str) != first["count_fp"].astype(str))
        | (spread > pd.Timedelta(seconds=2))
    )
    pos = _first_bad(differs)
    if pos is not None:
        row = int(rows.index[pos])
        _raise_at(
            source,
            frame,
            row,
            "trade_id",
            "the same trade_id appears with another ticker, price, count or time",
        )


_MARKET_FIELDS = ("ticker", "event_ticker")


def _market_records(path: Path) -> list[dict[str, Any]]:
    """Markets from a CSV export or API JSON (markets, events with nested markets)."""
    if path.name.lower().endswith(".json"):
        doc = load_json(path)
        records: list[dict[str, Any]] = []
        if isinstance(doc, dict):
            source = str(path)
            if doc.get("market") is not None:
                records.extend(_objects([doc["market"]], source, "market"))
            records.extend(_objects(doc.get("markets") or [], source, "markets"))
            events = _objects(doc.get("events") or [], source, "events")
            if doc.get("event") is not None:
                events.extend(_objects([doc["event"]], source, "event"))
            for event in events:
                for market in _objects(event.get("markets") or [], source, "markets"):
                    # A nested market belongs to its event: the title must not cross over.
                    own = market.get("event_ticker") or event.get("event_ticker")
                    if event.get("event_ticker") not in (None, own):
                        raise BadInputError(
                            source,
                            f"market {market.get('ticker')!r} of event "
                            f"{event.get('event_ticker')!r} names event {own!r}",
                            field="event_ticker",
                            raw=repr(own)[:200],
                        )
                    records.append(
                        {"event_title": event.get("title"), **market, "event_ticker": own}
                    )
        return records
    frame = read_table(path)
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in rec.items()} for rec in frame.to_dict(orient="records")]


def _objects(items: object, source: str, field: str) -> list[dict[str, Any]]:
    """A JSON list whose items must all be objects; anything else is refused, not skipped
    (a skipped market would be a market silently lost)."""
    if not isinstance(items, list):
        raise BadInputError(source, f"{field} must be a list", field=field, raw=repr(items)[:200])
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise BadInputError(
                source,
                f"each of {field} must be an object, got {type(item).__name__}",
                row=i,
                field=field,
                raw=repr(item)[:200],
            )
    return items


def _dollars_or_cents(record: dict[str, Any], name: str) -> object:
    """A price from `<name>_dollars` (fixed-point string) or legacy `<name>` (integer cents)."""
    if record.get(f"{name}_dollars") not in (None, ""):
        return record[f"{name}_dollars"]
    value = record.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value) / 100
    except (TypeError, ValueError):
        return value  # left for the range check to report with its row


def _count_field(record: dict[str, Any], name: str) -> object:
    value = record.get(f"{name}_fp")
    return record.get(name) if value in (None, "") else value


def normalize_markets(path: Path, ctx: ImportContext) -> list[Batch]:
    return market_record_batches(_market_records(path), ctx, source=str(path))


def market_record_batches(
    records: list[dict[str, Any]], ctx: ImportContext, *, source: str
) -> list[Batch]:
    """Series, event and market rows from Kalshi market records (API JSON or CSV export).

    `source` names where the records came from (a file or a URL) for error messages.
    """
    rows: list[dict[str, Any]] = []
    settled: dict[str, int] = {}
    blanks: dict[int, int] = {}  # index in rows -> source row: strikes to infer from tickers
    for i, rec in enumerate(records, start=1):
        for name in _MARKET_FIELDS:
            if rec.get(name) in (None, ""):
                raise BadInputError(source, "required field is missing", row=i, field=name)
        parsed, city = market_ticker(rec["ticker"], ctx.registry, source, i)
        event_ticker = event_of(rec["event_ticker"], parsed, source, i)
        status = vocabulary(rec.get("status"), MARKET_STATUSES, source, i, "status")
        result = vocabulary(rec.get("result"), MARKET_RESULTS, source, i, "result")
        bracket = given_bracket(rec, parsed, source, i)
        if bracket is None:
            blanks[len(rows)] = i
        tmax = settled_value(rec.get("expiration_value"), source, i)
        if tmax is not None and settled.setdefault(event_ticker, tmax) != tmax:
            raise BadInputError(
                source,
                f"event {event_ticker} has two settled values ({settled[event_ticker]} and {tmax})",
                row=i,
                field="expiration_value",
            )
        rows.append(
            {
                "ticker": parsed.raw,
                "event_ticker": event_ticker,
                "series_ticker": city.series,
                "climate_date": parsed.event.climate_date,
                "strike_type": bracket.strike_type.value if bracket else None,
                "floor_strike": bracket.floor if bracket else None,
                "cap_strike": bracket.cap if bracket else None,
                "yes_sub_title": rec.get("yes_sub_title") or rec.get("subtitle"),
                "open_time": rec.get("open_time"),
                "close_time": rec.get("close_time"),
                "expiration_time": rec.get("expiration_time") or rec.get("latest_expiration_time"),
                "status": status,
                "result": result or None,
                "expiration_value": rec.get("expiration_value") or None,
                "volume": _count_field(rec, "volume"),
                "open_interest": _count_field(rec, "open_interest"),
                "last_price": _dollars_or_cents(rec, "last_price"),
                "rules_primary": rec.get("rules_primary"),
                "metadata_source": "api",
                "event_title": rec.get("event_title") or rec.get("title"),
            }
        )
    check_ladders(rows, source)
    notes = fill_blank_strikes(rows, blanks, source)
    refused = {n.row for n in notes if n.field == "strike_type" and n.row is not None}
    rows = [r for k, r in enumerate(rows) if blanks.get(k) not in refused]
    if not rows:
        return notes_batches(notes)
    frame = pd.DataFrame(rows)
    pos = _first_bad(frame["ticker"].duplicated())
    if pos is not None:
        _raise_at(source, frame, pos, "ticker", "the same market appears twice")
    frame["settled_tmax"] = frame["event_ticker"].map(settled).astype("Int64")
    for col in ("open_time", "close_time", "expiration_time"):
        frame[col] = _timestamps(frame, col, source, required=False, lead=SCHEDULE_LEAD)
    frame["last_price"] = _numbers(
        frame, "last_price", source, lo=0, hi=1, required=False, what="price"
    )
    for col in ("volume", "open_interest"):
        frame[col] = _numbers(frame, col, source, lo=0, hi=MAX_CONTRACTS, required=False, what=col)
    return [*market_batches(frame, ctx), *notes_batches(notes)]


def market_batches(markets: pd.DataFrame, ctx: ImportContext) -> list[Batch]:
    titles = markets["event_title"] if "event_title" in markets.columns else None
    events = pd.DataFrame(
        {
            "event_ticker": markets["event_ticker"],
            "series_ticker": markets["series_ticker"],
            "climate_date": markets["climate_date"],
            "title": titles if titles is not None else None,
        }
    )
    series = sorted(set(markets["series_ticker"]))
    series_frame = pd.DataFrame(
        {
            "series_ticker": series,
            "city_key": [ctx.registry.by_series(s).key for s in series],
            "title": [f"Highest temperature in {ctx.registry.by_series(s).name}" for s in series],
        }
    )
    return [
        Batch(writers.SERIES, series_frame),
        Batch(writers.EVENTS, events),
        Batch(writers.MARKETS, markets),
    ]


def inferred_markets(
    tickers: Iterable[str],
    ctx: ImportContext,
    *,
    source: str,
    results: dict[str, str] | None = None,
    strict: bool = True,
) -> tuple[pd.DataFrame, list[BadInputError]]:
    """Market rows for tickers without Kalshi metadata, brackets inferred per event.

    With strict=False an event whose brackets cannot be inferred is returned as an error
    and the other events still produce rows.
    """
    by_event: dict[tuple[str, dt.date], list[str]] = {}
    for ticker in tickers:
        event = parse_market_ticker(ticker).event
        by_event.setdefault((event.series, event.climate_date), []).append(ticker)
    rows = []
    errors: list[BadInputError] = []
    for (_, _), members in sorted(by_event.items()):
        try:
            brackets = infer_event_brackets(members)
        except (TickerError, LadderError) as exc:
            error = BadInputError(
                source,
                f"cannot infer the brackets of "
                f"{parse_market_ticker(members[0]).event_ticker}: {exc}",
                field="ticker",
                raw=", ".join(sorted(members)),
            )
            if strict:
                raise error from exc
            errors.append(error)
            continue
        for ticker, bracket in brackets.items():
            parsed = parse_market_ticker(ticker)
            rows.append(
                {
                    "ticker": ticker,
                    "event_ticker": parsed.event_ticker,
                    "series_ticker": parsed.event.series,
                    "climate_date": parsed.event.climate_date,
                    "strike_type": bracket.strike_type.value,
                    "floor_strike": bracket.floor,
                    "cap_strike": bracket.cap,
                    "result": (results or {}).get(ticker),
                    "metadata_source": source,
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c, _ in writers.MARKET_COLUMNS])
    frame["metadata_source"] = source
    return frame, errors


def normalize_ladder(path: Path, ctx: ImportContext) -> list[Batch]:
    """Settled third-party ladders give markets (and results) for events Kalshi metadata lacks.

    Brackets come from the tickers, not from the ladder's own threshold columns, which
    describe B30.5 as "30-32F" where Kalshi means 30-31 inclusive.
    """
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["ticker", "event_ticker", "result"], source)
    _tickers_valid(frame, "ticker", source, ctx.registry)
    result = frame["result"].astype("string").str.lower()
    pos = _first_bad(result.notna() & ~result.isin(["yes", "no", ""]).fillna(False))
    if pos is not None:
        _raise_at(source, frame, pos, "result", "result must be 'yes' or 'no'")
    results = dict(zip(frame["ticker"].astype(str), result.fillna(""), strict=True))
    markets, _ = inferred_markets(
        results, ctx, source="ladder", results={k: v for k, v in results.items() if v}
    )
    return market_batches(markets.assign(event_title=None), ctx)


def _price_block(block: object, name: str) -> object:
    if not isinstance(block, dict):
        return None
    value = block.get(f"{name}_dollars", block.get(name))
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 100  # legacy integer cents
    return value


def normalize_candles_api(path: Path, ctx: ImportContext) -> list[Batch]:
    """Kalshi candlestick JSON (single market or batch); only 1-minute candles are stored."""
    source = str(path)
    doc = load_json(path)
    series_list = _candle_series(doc, source)
    rows: list[dict[str, Any]] = []
    for ticker, candles in series_list:
        if not ticker:
            raise BadInputError(source, "candlesticks without a market ticker", field="ticker")
        try:
            parsed = parse_market_ticker(ticker)
            ctx.registry.by_prefix(parsed.event.prefix)
            check_climate_date(parsed.event.climate_date, ticker)
        except (TickerError, UnknownCityError) as exc:
            raise BadInputError(source, str(exc), field="ticker", raw=repr(ticker)[:200]) from exc
        ends = [_epoch_seconds(c, i, source) for i, c in enumerate(candles, start=1)]
        steps = np.diff(sorted(ends))
        if len(ends) >= 2 and steps.min() > 60:
            raise NotImportableError(
                f"{steps.min() // 60}-minute candles; md.candles_1m holds 1-minute candles only"
            )
        for candle, end in zip(candles, ends, strict=True):
            price = candle.get("price") or {}
            volume = candle.get("volume_fp", candle.get("volume"))
            row = {
                "ticker": ticker,
                "ts": pd.Timestamp(end - 60, unit="s", tz="UTC"),
                "source": "api",
                "vwap": _price_block(price, "mean"),
                "volume": volume if volume is not None else 0,
                "open_interest": candle.get("open_interest_fp", candle.get("open_interest")),
                "trade_count": None,
                "is_synthetic": False,
            }
            for side in ("yes_bid", "yes_ask"):
                for part in ("open", "high", "low", "close"):
                    row[f"{side}_{part}"] = _price_block(candle.get(side), part)
            for part in ("open", "high", "low", "close"):
                row[f"price_{part}"] = _price_block(price, part)
            row["has_trade"] = row["price_close"] is not None
            rows.append(row)
    frame = pd.DataFrame(rows, columns=[c for c, _ in writers.CANDLE_COLUMNS])
    for col in frame.columns:
        if col.startswith(("yes_", "price_")) or col == "vwap":
            values = pd.to_numeric(frame[col], errors="coerce")
            pos = _first_bad(frame[col].notna() & (values.isna() | (values < 0) | (values > 1)))
            if pos is not None:
                _raise_at(source, frame, pos, col, "impossible price")
    for col in ("volume", "open_interest"):
        frame[col] = _numbers(
            frame, col, source, lo=0, hi=MAX_CONTRACTS, required=col == "volume", what=col
        )
    frame["ts"] = _timestamps(frame, "ts", source)
    return [Batch(writers.CANDLES, frame, {"price_scale": 1})]


def _candle_series(doc: Any, source: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(ticker, candles) pairs of a single-market or batch candlestick payload, every part
    checked to be of the JSON type Kalshi sends before anything reads it."""
    if isinstance(doc, dict) and isinstance(doc.get("candlesticks"), list):
        ticker = doc.get("ticker") or ""
        return [(ticker if isinstance(ticker, str) else repr(ticker), _candle_list(doc, source))]
    markets = doc.get("markets") if isinstance(doc, dict) else None
    if not isinstance(markets, list):
        raise BadInputError(source, "expected candlesticks or a markets list", field="markets")
    out = []
    for i, market in enumerate(markets, start=1):
        if not isinstance(market, dict):
            raise BadInputError(
                source,
                f"each market must be an object, got {type(market).__name__}",
                row=i,
                field="markets",
                raw=repr(market)[:200],
            )
        ticker = market.get("market_ticker") or market.get("ticker") or ""
        out.append(
            (ticker if isinstance(ticker, str) else repr(ticker), _candle_list(market, source))
        )
    return out


def _candle_list(holder: dict[str, Any], source: str) -> list[dict[str, Any]]:
    candles = holder.get("candlesticks") or []
    if not isinstance(candles, list):
        raise BadInputError(source, "candlesticks must be a list", field="candlesticks")
    for i, candle in enumerate(candles, start=1):
        if not isinstance(candle, dict):
            raise BadInputError(
                source,
                f"each candle must be an object, got {type(candle).__name__}",
                row=i,
                field="candlesticks",
                raw=repr(candle)[:200],
            )
        for block in ("price", "yes_bid", "yes_ask"):
            if candle.get(block) is not None and not isinstance(candle[block], dict):
                raise BadInputError(
                    source,
                    f"{block} must be an object",
                    row=i,
                    field=block,
                    raw=repr(candle[block])[:200],
                )
    return candles


def _epoch_seconds(candle: dict[str, Any], row: int, source: str) -> int:
    value = candle.get("end_period_ts")
    if value is None:
        raise BadInputError(source, "missing", row=row, field="end_period_ts")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadInputError(source, f"not an epoch time: {value!r}", row=row, field="end_period_ts")
    try:
        seconds = int(value)
    except ValueError as exc:
        raise BadInputError(
            source, f"not an epoch time: {value!r}", row=row, field="end_period_ts"
        ) from exc
    lo, hi = KALSHI_EPOCH.timestamp(), (now() + MARKET_DATA_LEAD).timestamp()
    if not lo <= seconds <= hi:
        raise BadInputError(
            source, f"epoch time {seconds} out of range", row=row, field="end_period_ts"
        )
    return seconds


def normalize_candles_flat(path: Path, ctx: ImportContext) -> list[Batch]:
    """The flattened parquet export: integer-cent bid/ask OHLC, trade OHLC, volume, OI."""
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    needed = ["ticker", "bucket_start", "is_synthetic", "has_trade", "volume"] + [
        f"{s}_{p}" for s in ("yes_bid", "yes_ask") for p in ("open", "high", "low", "close")
    ]
    _require(frame, needed, source)
    if "period_minutes" in frame.columns:
        pos = _first_bad(frame["period_minutes"] != 1)
        if pos is not None:
            _raise_at(source, frame, pos, "period_minutes", "only 1-minute candles are stored")
    _tickers_valid(frame, "ticker", source, ctx.registry)
    out = pd.DataFrame(
        {
            "ticker": frame["ticker"].astype("string"),
            "ts": _timestamps(frame, "bucket_start", source),
            "source": "api",
        }
    )
    for side in ("yes_bid", "yes_ask"):
        for part in ("open", "high", "low", "close"):
            col = f"{side}_{part}"
            out[col] = _numbers(
                frame, col, source, lo=0, hi=100, integral=True, what="price"
            ).astype("int64")
    for part in ("open", "high", "low", "close"):
        col = f"trade_{part}"
        out[f"price_{part}"] = (
            _numbers(frame, col, source, lo=0, hi=100, required=False, what="price")
            if col in frame.columns
            else np.nan
        )
    out["vwap"] = (
        _numbers(frame, "trade_mean", source, lo=0, hi=100, required=False, what="price")
        if "trade_mean" in frame.columns
        else np.nan
    )
    out["volume"] = _numbers(frame, "volume", source, lo=0, hi=MAX_CONTRACTS, what="volume")
    out["open_interest"] = (
        _numbers(
            frame,
            "open_interest",
            source,
            lo=0,
            hi=MAX_CONTRACTS,
            required=False,
            what="open interest",
        )
        if "open_interest" in frame.columns
        else np.nan
    )
    out["trade_count"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["has_trade"] = frame["has_trade"].astype(bool)
    out["is_synthetic"] = frame["is_synthetic"].astype(bool)
    dup = out.duplicated(["ticker", "ts"])
    pos = _first_bad(dup)
    if pos is not None:
        _raise_at(source, frame, pos, "bucket_start", "duplicate candle for this ticker/minute")
    return [Batch(writers.CANDLES, out, {"price_scale": 100})]


def normalize_top_of_book(path: Path, ctx: ImportContext) -> list[Batch]:
    """Top-of-book logs with naive local timestamps (the logger's zone, see Settings)."""
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["timestamp", "market_ticker", "best_yes_bid", "best_no_bid"], source)
    _tickers_valid(frame, "market_ticker", source, ctx.registry)
    ts = _timestamps(frame, "timestamp", source, tz=ctx.top_of_book_timezone)
    out = pd.DataFrame({"ticker": frame["market_ticker"].astype("string"), "ts": ts})
    yes_bid = _numbers(
        frame, "best_yes_bid", source, lo=0, hi=100, integral=True, required=False, what="price"
    )
    no_bid = _numbers(
        frame, "best_no_bid", source, lo=0, hi=100, integral=True, required=False, what="price"
    )
    out["yes_bid"], out["no_bid"] = yes_bid, no_bid
    # The implied asks are 100 minus the other side's best bid; recompute rather than trust.
    out["yes_ask"] = 100 - no_bid
    out["no_ask"] = 100 - yes_bid
    if "implied_yes_ask" in frame.columns:
        given = _numbers(
            frame, "implied_yes_ask", source, lo=0, hi=100, required=False, what="price"
        )
        pos = _first_bad(given.notna() & out["yes_ask"].notna() & (given != out["yes_ask"]))
        if pos is not None:
            _raise_at(source, frame, pos, "implied_yes_ask", "is not 100 - best_no_bid")
    out["source"] = "top_of_book_log"
    out = out.drop_duplicates(["ticker", "ts"], keep="last")
    return [Batch(writers.TOP_OF_BOOK, out, {"price_scale": 100})]


# ------------------------------------------------------------------------------ weather
def _tmax_column(frame: pd.DataFrame, col: str, source: str) -> pd.Series[float]:
    return _numbers(
        frame,
        col,
        source,
        lo=TMAX_RANGE_F[0],
        hi=TMAX_RANGE_F[1],
        integral=True,
        required=False,
        what="temperature",
    )


def normalize_settlement_city(path: Path, ctx: ImportContext) -> list[Batch]:
    """Per-city settlement files: the official max plus the values it was drawn from."""
    source = str(path)
    city = _city_from_stem(path, ctx.registry)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["date_local", "tmax_final"], source)
    dates = _timestamps(frame, "date_local", source, **WEATHER_RANGE).dt.date
    parts = []
    columns = {
        "tmax_final": "official",
        "tmax_cli_f": "cli",
        "tmax_iem_f": "iem",
        "tmax_ncei_f": "ncei",
    }
    for col, src in columns.items():
        if col not in frame.columns:
            continue
        values = _tmax_column(frame, col, source)
        if col == "tmax_final":
            pos = _first_bad(values.isna())
            if pos is not None:
                _raise_at(source, frame, pos, col, "the official maximum is missing")
        note = (
            frame["source_final"].astype("string")
            if col == "tmax_final" and "source_final" in frame.columns
            else pd.Series(pd.NA, index=frame.index, dtype="string")
        )
        part = pd.DataFrame(
            {
                "city": city.key,
                "climate_date": dates,
                "source": src,
                "tmax": values,
                "published_at": pd.NaT,
                "note": note,
            }
        )
        parts.append(part[values.notna()])
    out = pd.concat(parts, ignore_index=True)
    out["tmax"] = out["tmax"].astype("int64")
    return [Batch(writers.SETTLEMENTS, out)]


def normalize_settlement_acis(path: Path, ctx: ImportContext) -> list[Batch]:
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["ticker", "date", "nws_high"], source)
    cities = _city_from_column(frame, "ticker", source, ctx.registry)
    values = _tmax_column(frame, "nws_high", source)
    out = pd.DataFrame(
        {
            "city": cities,
            "climate_date": _timestamps(frame, "date", source, **WEATHER_RANGE).dt.date,
            "source": "acis",
            "tmax": values,
            "published_at": pd.NaT,
            "note": None,
        }
    )
    out = out[values.notna()].copy()
    out["tmax"] = out["tmax"].astype("int64")
    return [Batch(writers.SETTLEMENTS, out)]


# Visual Crossing's exported `lead_hours` is measured from 00:00Z of the basis date in some
# files and from 12:00Z in others. To never use a forecast before it could have existed, the
# issue time is the later of the two: 12:00 UTC of the basis date.
VC_ISSUE_HOUR_UTC = 12


def _vc_issued_at(frame: pd.DataFrame, source: str) -> pd.Series[pd.Timestamp]:
    basis = _timestamps(frame, "forecast_basis_date", source, **WEATHER_RANGE)
    return basis.dt.normalize() + pd.Timedelta(hours=VC_ISSUE_HOUR_UTC)


def _optional(
    frame: pd.DataFrame, col: str, source: str, lo: float, hi: float
) -> pd.Series[float] | float:
    if col not in frame.columns:
        return np.nan
    return _numbers(frame, col, source, lo=lo, hi=hi, required=False)


def normalize_vc_hourly(path: Path, ctx: ImportContext) -> list[Batch]:
    source = str(path)
    city = _city_from_stem(path, ctx.registry)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["target_datetime_utc", "forecast_basis_date", "temp_f"], source)
    out = pd.DataFrame(
        {
            "city": city.key,
            "source": "vc",
            "issued_at": _vc_issued_at(frame, source),
            "valid_at": _timestamps(frame, "target_datetime_utc", source, **WEATHER_RANGE),
            "temp_f": _numbers(frame, "temp_f", source, lo=-80, hi=140, required=False),
            "dewpoint_f": _optional(frame, "dew_f", source, -100, 120),
            "rel_humidity": _optional(frame, "humidity", source, 0, 100),
            "wind_speed_mph": _optional(frame, "windspeed_mph", source, 0, 300),
            "cloud_cover": _optional(frame, "cloudcover", source, 0, 100),
            "precip_in": _optional(frame, "precip_in", source, 0, 100),
            "precip_prob": _optional(frame, "precipprob", source, 0, 100),
            "conditions": frame["conditions"] if "conditions" in frame.columns else None,
        }
    )
    out = out.drop_duplicates(["issued_at", "valid_at"], keep="last")
    return [Batch(writers.FORECAST, out)]


def normalize_vc_daily(path: Path, ctx: ImportContext) -> list[Batch]:
    source = str(path)
    city = _city_from_stem(path, ctx.registry)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["target_date", "forecast_basis_date", "tempmax_f"], source)
    out = pd.DataFrame(
        {
            "city": city.key,
            "source": "vc",
            "issued_at": _vc_issued_at(frame, source),
            "target_date": _timestamps(frame, "target_date", source, **WEATHER_RANGE).dt.date,
            "tmax_f": _numbers(frame, "tempmax_f", source, lo=-80, hi=140, required=False),
            "tmin_f": _optional(frame, "tempmin_f", source, -100, 140),
            "temp_f": _optional(frame, "temp_f", source, -100, 140),
            "rel_humidity": _optional(frame, "humidity", source, 0, 100),
            "precip_in": _optional(frame, "precip_in", source, 0, 100),
            "precip_prob": _optional(frame, "precipprob", source, 0, 100),
            "wind_speed_mph": _optional(frame, "windspeed_mph", source, 0, 300),
            "wind_gust_mph": _optional(frame, "windgust_mph", source, 0, 300),
            "cloud_cover": _optional(frame, "cloudcover", source, 0, 100),
            "conditions": frame["conditions"] if "conditions" in frame.columns else None,
        }
    )
    out = out.drop_duplicates(["issued_at", "target_date"], keep="last")
    return [Batch(writers.FORECAST_DAILY, out)]


def era5_utc_offset(city: City) -> dt.timedelta:
    """The fixed offset of the ERA5 exports' naive timestamps.

    Measured, not documented: the files were fetched with the city's zone during daylight
    time and Open-Meteo stamps a whole response with one fixed offset. Cross-correlating each
    file with Visual Crossing's UTC-stamped hourly series puts the best match at the zone's
    daylight offset (UTC-5 for Chicago, -4 Miami/Philadelphia, -6 Denver, -7 Los Angeles),
    in winter and summer alike. A zone without DST keeps its standard offset.
    """
    std = standard_offset(city.timezone)
    has_dst = any(
        (city.zone.dst(dt.datetime(2024, m, 15)) or dt.timedelta(0)) > dt.timedelta(0)
        for m in (1, 7)
    )
    return std + dt.timedelta(hours=1) if has_dst else std


def normalize_era5(path: Path, ctx: ImportContext) -> list[Batch]:
    """ERA5 reanalysis at the city centre: stored as observations with source 'era5', a proxy."""
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    _require(frame, ["ticker", "datetime", "temperature_2m"], source)
    cities = _city_from_column(frame, "ticker", source, ctx.registry)
    # Naive: read as UTC, shifted to the real offset below.
    local = _timestamps(frame, "datetime", source, **WEATHER_RANGE)
    offsets = cities.map({c.key: era5_utc_offset(c) for c in ctx.registry})
    out = pd.DataFrame(
        {
            "city": cities,
            "source": "era5",
            "ts": local - pd.to_timedelta(offsets),
            "temp_f": _numbers(frame, "temperature_2m", source, lo=-80, hi=140, required=False),
            "dewpoint_f": np.nan,
            "rel_humidity": np.nan,
            "wind_speed_mph": np.nan,
            "wind_dir_deg": np.nan,
            "temp_c": np.nan,
            "max_temp_6h_f": np.nan,
            "raw": None,
        }
    )
    locations = pd.DataFrame(
        {
            "city": sorted(set(cities)),
            "source": "era5",
            "kind": "proxy",
            "station": None,
            "lat": np.nan,
            "lon": np.nan,
            "note": "ERA5 reanalysis 2 m temperature at the city centre, not the settlement "
            "station; daily max runs a few degrees below the official value",
        }
    )
    return [Batch(writers.LOCATIONS, locations), Batch(writers.OBS, out)]


NORMALIZERS: dict[FileKind, Callable[[Path, ImportContext], list[Batch]]] = {
    FileKind.TRADES: normalize_trades,
    FileKind.MARKETS: normalize_markets,
    FileKind.LADDER: normalize_ladder,
    FileKind.CANDLES_API: normalize_candles_api,
    FileKind.CANDLES_FLAT: normalize_candles_flat,
    FileKind.TOP_OF_BOOK: normalize_top_of_book,
    FileKind.SETTLEMENT_CITY: normalize_settlement_city,
    FileKind.SETTLEMENT_ACIS: normalize_settlement_acis,
    FileKind.VC_HOURLY: normalize_vc_hourly,
    FileKind.VC_DAILY: normalize_vc_daily,
    FileKind.ERA5: normalize_era5,
}
