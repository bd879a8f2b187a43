"""Read data files (CSV, CSV.gz, parquet, JSON) and tell what kind of data each one holds.

Files are recognised by their columns or JSON keys, never by their names alone, so an export
renamed or moved still imports, and a file of an unknown shape is reported, not guessed at.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq


class BadInputError(ValueError):
    """A file or payload that cannot be imported; says where (source, row, field) and why."""

    def __init__(
        self,
        source: str,
        message: str,
        *,
        row: int | None = None,
        field: str | None = None,
        raw: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.field = field
        self.reason = message
        self.raw = raw
        where = source
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class NotImportableError(Exception):
    """A well-formed file of a shape kwx does not store (e.g. hourly candles): skipped."""


class FileKind(StrEnum):
    MARKETS = "markets"
    TRADES = "trades"
    CANDLES_FLAT = "candles_flat"
    CANDLES_API = "candles_api"
    TOP_OF_BOOK = "top_of_book"
    LADDER = "ladder"
    SETTLEMENT_CITY = "settlement_city"
    SETTLEMENT_ACIS = "settlement_acis"
    VC_HOURLY = "vc_forecast_hourly"
    VC_DAILY = "vc_forecast_daily"
    ERA5 = "era5_hourly"
    GUIDANCE_STATION = "guidance_station"
    GUIDANCE_PEAK = "guidance_peak"


TABULAR_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".json")

# Columns that identify each tabular kind (all must be present). Order matters: the first
# match wins, so the more specific shapes come first.
_SIGNATURES: tuple[tuple[FileKind, frozenset[str]], ...] = (
    (
        FileKind.LADDER,
        frozenset(
            {"ticker", "event_ticker", "threshold_low", "threshold_high", "strike_type", "result"}
        ),
    ),
    (FileKind.MARKETS, frozenset({"ticker", "event_ticker", "strike_type"})),
    (FileKind.TRADES, frozenset({"trade_id", "ticker", "created_time"})),
    (
        FileKind.CANDLES_FLAT,
        frozenset({"ticker", "bucket_start", "yes_bid_close", "yes_ask_close"}),
    ),
    (
        FileKind.TOP_OF_BOOK,
        frozenset({"timestamp", "market_ticker", "best_yes_bid", "best_no_bid"}),
    ),
    (FileKind.SETTLEMENT_CITY, frozenset({"date_local", "tmax_final"})),
    (FileKind.SETTLEMENT_ACIS, frozenset({"ticker", "date", "nws_high"})),
    (FileKind.VC_HOURLY, frozenset({"target_datetime_utc", "forecast_basis_date", "temp_f"})),
    (FileKind.VC_DAILY, frozenset({"target_date", "forecast_basis_date", "tempmax_f"})),
    (FileKind.ERA5, frozenset({"ticker", "datetime", "temperature_2m"})),
    # Station guidance (MOS, model Tmax): see kwx.ingest.guidance.
    (FileKind.GUIDANCE_STATION, frozenset({"station_id", "target_date_local", "asof_utc"})),
    (
        FileKind.GUIDANCE_PEAK,
        frozenset({"target_date", "model", "run_datetime_utc", "peak_window_max_f"}),
    ),
)


def is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(TABULAR_SUFFIXES)


def _columns(path: Path) -> set[str]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return set(pq.read_schema(path).names)
    if name.endswith((".csv", ".csv.gz")):
        head = pd.read_csv(path, nrows=0)
        return {str(c) for c in head.columns}
    return set()


def load_json(path: Path) -> Any:
    """A JSON document; malformed, non-UTF-8, NaN/Infinity or absurdly nested input refused.

    The decoder recurses per nesting level, so JSON nested 100k deep raises RecursionError:
    that is this file's fault, reported as such.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(str(path), f"unreadable file: {exc}") from exc
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise BadInputError(str(path), f"malformed JSON: {exc}", row=line) from exc
    except RecursionError as exc:
        raise BadInputError(str(path), "malformed JSON: nested too deeply") from exc
    except ValueError as exc:
        raise BadInputError(str(path), f"malformed JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's decoder accepts them unless told otherwise."""
    raise ValueError(f"{name} is not a JSON value")


def _json_records(doc: Any, key: str, source: str) -> list[dict[str, Any]] | None:
    if isinstance(doc, dict) and isinstance(doc.get(key), list):
        return _all_objects(doc[key], source)
    return None


def _all_objects(records: list[Any], source: str) -> list[dict[str, Any]]:
    """Every record an object: `{"trades": [1, 2, 3]}` is refused, not read as no trades."""
    for i, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise BadInputError(
                source,
                f"expected an object, got {type(record).__name__}",
                row=i,
                raw=repr(record)[:200],
            )
    return records


def detect_json(doc: Any) -> FileKind | None:
    """Kalshi API payloads: markets/events lists, candlesticks, trades; or plain record lists."""
    if isinstance(doc, dict):
        if "candlesticks" in doc or (
            isinstance(doc.get("markets"), list)
            and doc["markets"]
            and isinstance(doc["markets"][0], dict)
            and "candlesticks" in doc["markets"][0]
        ):
            return FileKind.CANDLES_API
        if any(k in doc for k in ("markets", "market", "events", "event")):
            return FileKind.MARKETS
        if "trades" in doc:
            return FileKind.TRADES
        return None
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        return match_columns(set(doc[0]))
    return None


# Account fills (GET /portfolio/fills) share the trade columns but are our own executions,
# not public prints: they must never land in md.trades.
_FILL_MARKERS = frozenset({"fill_id", "order_id", "is_taker"})


def match_columns(columns: set[str]) -> FileKind | None:
    for kind, needed in _SIGNATURES:
        if needed <= columns:
            if kind is FileKind.TRADES and columns & _FILL_MARKERS:
                return None
            return kind
    return None


def detect(path: Path) -> FileKind | None:
    """What a file holds, or None when it is not a shape kwx imports."""
    if path.name.lower().endswith(".json"):
        return detect_json(load_json(path))
    try:
        return match_columns(_columns(path))
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise BadInputError(str(path), f"unreadable file: {exc}") from exc


def read_table(path: Path) -> pd.DataFrame:
    """A tabular file as a DataFrame; JSON record lists (or {"trades": [...]}) included."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        # A truncated gzip raises EOFError, a damaged parquet OSError/ValueError (ArrowInvalid).
        raise BadInputError(str(path), f"unreadable file: {type(exc).__name__}: {exc}") from exc
    doc = load_json(path)
    records = _json_records(doc, "trades", str(path)) if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise BadInputError(str(path), "expected a list of records")
    return pd.DataFrame.from_records(_all_objects(records, str(path)))
