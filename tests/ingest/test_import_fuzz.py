"""Property-based fuzzing of the importers' parsing and normalising functions (hypothesis).

The properties: whatever the input, a parser either returns values that pass every rule at
the edge (ASCII tickers of the registry's series, brackets agreeing with their tickers,
Kalshi's vocabulary, prices and times in range) or raises the one error the import catches
per file (BadInputError, or NotImportableError for a shape kwx skips). Never anything else.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwx.domain.tickers import TickerError, parse_market_ticker
from kwx.ingest.edge import KALSHI_EPOCH, MARKET_RESULTS, MARKET_STATUSES
from kwx.ingest.normalize import (
    market_record_batches,
    normalize_candles_api,
    normalize_trades,
)
from kwx.sources.files import BadInputError, NotImportableError, detect, load_json, read_table
from kwx.store import writers

from .import_helpers import CTX

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DIGITS = st.sampled_from("0123456789\u0660\u0661\uff11\u09e7")
TICKERS = st.one_of(
    st.builds(
        lambda series, day, kind, strike, tail: f"{series}-{day}-{kind}{strike}{tail}",
        st.sampled_from(["KXHIGHCHI", "HIGHNY", "KXHIGHNY", "KXHIGHMIA", "KXHIGHZZZ", "kxhighchi"]),
        st.builds(
            lambda a, b, mon, c, d: f"{a}{b}{mon}{c}{d}",
            DIGITS,
            DIGITS,
            st.sampled_from(["DEC", "JAN", "dec", "XYZ"]),
            DIGITS,
            DIGITS,
        ),
        st.sampled_from(["B", "T", "X"]),
        st.sampled_from(["40.5", "41", "-3", "1e3", "40.55"]),
        st.sampled_from(["", "", "", "\n", " ", "\t", "é"]),
    ),
    st.text(max_size=30),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _is_plain_ascii_ticker(text: str) -> bool:
    return text.isascii() and text.strip() == text and not any(c.isspace() for c in text)


@FUZZ
@given(TICKERS)
def test_ticker_parser_accepts_only_plain_ascii(text: str) -> None:
    try:
        parsed = parse_market_ticker(text)
    except TickerError:
        return
    assert _is_plain_ascii_ticker(parsed.raw)
    assert parsed.raw == text
    assert parsed.event.climate_date.year >= 2000


def _with_file(suffix: str, content: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="kwxfuzz"))
    path = folder / f"f{suffix}"
    path.write_bytes(content)
    return path


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".json", ".csv", ".csv.gz", ".parquet"]))
def test_any_bytes_are_read_or_refused(content: bytes, suffix: str) -> None:
    path = _with_file(suffix, content)
    for reader in (detect, read_table):
        try:
            reader(path)
        except BadInputError as exc:
            assert str(path) in str(exc)


@FUZZ
@given(JSON_VALUES)
def test_any_json_document_is_read_or_refused(doc: Any) -> None:
    path = _with_file(".json", json.dumps(doc, allow_nan=True).encode())
    try:
        load_json(path)
        read_table(path)
    except BadInputError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(
    st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries(
            {
                "ticker": TICKERS,
                "candlesticks": st.lists(
                    st.dictionaries(
                        st.sampled_from(["end_period_ts", "price", "yes_bid", "volume"]),
                        st.one_of(
                            JSON_SCALARS,
                            st.integers(min_value=1_600_000_000, max_value=1_800_000_000),
                            st.dictionaries(
                                st.sampled_from(["close_dollars", "close", "mean"]),
                                JSON_SCALARS,
                            ),
                        ),
                    ),
                    max_size=4,
                ),
            }
        ),
        st.fixed_dictionaries({"markets": st.lists(JSON_VALUES, max_size=3)}),
    )
)
def test_candle_payloads_normalise_or_are_refused(doc: Any) -> None:
    path = _with_file(".json", json.dumps(doc, allow_nan=True).encode())
    try:
        batches = normalize_candles_api(path, CTX)
    except (BadInputError, NotImportableError):
        return
    for batch in batches:
        frame = batch.frame
        for col in ("price_close", "yes_bid_close", "vwap"):
            values = pd.to_numeric(frame[col], errors="coerce").dropna()
            assert ((values >= 0) & (values <= 1)).all()
        assert (frame["ts"] >= KALSHI_EPOCH).all()


def _mutated(base: dict[str, Any], bad: dict[str, st.SearchStrategy[Any]]) -> Any:
    """A valid record with at most one field replaced by a fuzzed value: each example then
    tests one rule, and a parser that lets a bad value through is caught accepting it."""
    return st.one_of(*(st.builds(lambda v, k=k: {**base, k: v}, s) for k, s in bad.items()))


def _trade(n: int, minute: int, price: int) -> dict[str, Any]:
    return {
        "trade_id": f"00000000-0000-4000-8000-{n:012d}",
        "ticker": "KXHIGHCHI-24DEC01-B40.5",
        "count": 1 + n % 3,
        "created_time": f"2024-12-01T15:{minute:02d}:00Z",
        "yes_price": price,
        "no_price": 100 - price,
    }


TRADE_BAD = {
    "trade_id": st.one_of(
        st.just("00000000-0000-4000-8000-000000000001"), st.text(max_size=8), JSON_SCALARS
    ),
    "ticker": TICKERS,
    "count": st.one_of(st.integers(-2, 5), JSON_SCALARS),
    "created_time": st.one_of(
        st.sampled_from(
            [
                "2024-12-01T15:00:00Z",
                "1900-01-01T00:00:00Z",
                "2199-12-05T00:00:00Z",
                "2020-12-31T23:59:59Z",
                "soon",
            ]
        ),
        JSON_SCALARS,
    ),
    "yes_price": st.one_of(st.integers(-5, 105), JSON_SCALARS),
    "no_price": st.one_of(st.integers(-5, 105), JSON_SCALARS),
}
TRADE_RECORDS = st.builds(
    lambda good, bad: [*good, bad],
    st.lists(
        st.builds(_trade, st.integers(1, 3), st.integers(0, 59), st.integers(1, 99)),
        max_size=3,
    ),
    _mutated(_trade(1, 0, 40), TRADE_BAD),
)


@FUZZ
@given(TRADE_RECORDS)
def test_trade_files_normalise_within_the_rules_or_are_refused(
    records: list[dict[str, Any]],
) -> None:
    path = _with_file(".json", json.dumps(records, allow_nan=True).encode())
    try:
        batches = normalize_trades(path, CTX)
    except BadInputError as exc:
        assert exc.source == str(path)
        assert exc.row is None or 1 <= exc.row <= len(records)
        return
    (batch,) = batches
    frame = batch.frame
    now = pd.Timestamp.now(tz="UTC")
    assert frame["created_time"].between(KALSHI_EPOCH, now + pd.Timedelta(days=2)).all()
    for ticker in frame["ticker"]:
        assert _is_plain_ascii_ticker(str(ticker))
        parse_market_ticker(str(ticker))
    assert all(Decimal(0) <= Decimal(str(p)) <= Decimal(1) for p in frame["yes_price"])
    assert (frame["count_fp"].astype(float) > 0).all()
    # One trade_id, one price: the same id twice is the same print or refused.
    per_id = frame.groupby("trade_id")["yes_price"].nunique()
    assert (per_id == 1).all()


class _Row:
    """Attribute access to one market row, typed loosely (the frame holds mixed types)."""

    def __init__(self, values: dict[Any, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values[name]


MARKET_BASE: dict[str, Any] = {
    "ticker": "KXHIGHCHI-24DEC01-B40.5",
    "event_ticker": "KXHIGHCHI-24DEC01",
    "strike_type": "between",
    "floor_strike": 40,
    "cap_strike": 41,
    "status": "finalized",
    "result": "yes",
    "expiration_value": "40",
}
MARKET_BAD = {
    "ticker": st.one_of(
        st.sampled_from(
            ["KXHIGHCHI-24DEC01-T40", "KXHIGHCHI-24DEC01-B42.5", "KXHIGHNY-24DEC01-B40.5"]
        ),
        TICKERS,
    ),
    "event_ticker": st.one_of(
        st.sampled_from(["KXHIGHNY-24DEC01", "KXHIGHCHI-24DEC02", "X", ""]), JSON_SCALARS
    ),
    "strike_type": st.one_of(
        st.sampled_from(["less", "greater", "", "sideways", None]), JSON_SCALARS
    ),
    "floor_strike": st.one_of(st.sampled_from([39, 40.5, "40", "", None]), JSON_SCALARS),
    "cap_strike": st.one_of(st.sampled_from([42, 40, "41", "", None]), JSON_SCALARS),
    "status": st.one_of(st.sampled_from(["active", "exploded", "FINALIZED"]), JSON_SCALARS),
    "result": st.one_of(st.sampled_from(["no", "", "maybe"]), JSON_SCALARS),
    "expiration_value": st.one_of(st.sampled_from(["", "banana", "40.5", "999"]), JSON_SCALARS),
}
MARKET_RECORDS = st.lists(_mutated(MARKET_BASE, MARKET_BAD), min_size=1, max_size=3)


@FUZZ
@given(MARKET_RECORDS)
def test_market_records_normalise_within_the_rules_or_are_refused(
    records: list[dict[str, Any]],
) -> None:
    try:
        batches = market_record_batches(records, CTX, source="fuzz")
    except BadInputError as exc:
        assert exc.source == "fuzz"
        return
    markets = [b.frame for b in batches if b.writer is writers.MARKETS]
    for frame in markets:
        for rec in frame.to_dict(orient="records"):
            row = _Row(rec)
            parsed = parse_market_ticker(str(row.ticker))
            assert parsed.event.series == row.series_ticker
            assert str(row.event_ticker) in (parsed.event.raw, parsed.event.canonical)
            assert row.status is None or row.status in MARKET_STATUSES
            assert row.result is None or row.result in MARKET_RESULTS
            half = Decimal("0.5")
            if parsed.kind == "B":
                assert row.strike_type == "between"
                assert (row.floor_strike, row.cap_strike) == (
                    parsed.strike - half,
                    parsed.strike + half,
                )
            else:
                assert parsed.strike in (row.floor_strike, row.cap_strike)
            assert parsed.event.climate_date <= dt.date.today() + dt.timedelta(days=400)
            if not pd.isna(row.settled_tmax):
                assert -80 <= int(row.settled_tmax) <= 140
