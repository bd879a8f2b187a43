"""A generator of malformed data files, one per way real files go wrong.

Each entry is a file in a shape kwx recognises (or tries to), broken in one way: truncated
compression, damaged parquet, wrong JSON types, deep nesting, huge numbers, NaN/inf, empty
files, BOMs, wrong encodings, duplicate ids at other prices, dates in 1900 and 2199, tickers
with a newline or non-ASCII digits, strikes that contradict their ticker, a market filed
under another city's event, and so on. Written fresh by each test run; nothing is shipped.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .import_helpers import MARKETS_HEADER, TRADES_HEADER, csv_text, ladder_rows, trade_line

TICKER = "KXHIGHCHI-24DEC01-B40.5"
EVENT = "KXHIGHCHI-24DEC01"
WHEN = "2024-12-01T15:00:00Z"


def _trade_csv(*lines: str) -> str:
    return TRADES_HEADER + "".join(lines)


def _trade_json(**fields: object) -> str:
    trade: dict[str, object] = {
        "trade_id": "00000000-0000-4000-8000-000000000901",
        "ticker": TICKER,
        "count": 1,
        "created_time": WHEN,
        "yes_price": 40,
        "no_price": 60,
        "taker_side": "yes",
    }
    trade.update(fields)
    return json.dumps([trade])


def _market_csv(**fields: str) -> str:
    row = {
        "ticker": TICKER,
        "event_ticker": EVENT,
        "strike_type": "between",
        "floor_strike": "40",
        "cap_strike": "41",
        "status": "finalized",
        "result": "no",
        "expiration_value": "",
    }
    row.update(fields)
    return MARKETS_HEADER + ",".join(row.values()) + "\n"


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _good_trades_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trade_id": [f"00000000-0000-4000-8000-00000000{n:04d}" for n in range(50)],
            "ticker": TICKER,
            "count": 1,
            "created_time": pd.Timestamp(WHEN),
            "yes_price": 40,
            "no_price": 60,
            "taker_side": "yes",
        }
    )


def _candles(**payload: object) -> str:
    return json.dumps(payload)


_GZ = gzip.compress(
    _trade_csv(*(trade_line(800 + n, TICKER, WHEN, 40) for n in range(200))).encode()
)
_PARQUET = _parquet_bytes(_good_trades_frame())

# name -> file content (str is written as UTF-8)
CORPUS: dict[str, Callable[[], str | bytes]] = {
    # --- damaged containers
    "truncated_trades.csv.gz": lambda: _GZ[: len(_GZ) // 2],
    "truncated_trades.parquet": lambda: _PARQUET[: len(_PARQUET) // 2],
    "garbage_bytes.parquet": lambda: b"PAR1" + bytes(range(256)) * 4,
    "not_gzip.csv.gz": lambda: b"this is not gzip at all",
    "binary_junk.json": lambda: bytes(range(256)),
    "empty.csv": lambda: b"",
    "empty.json": lambda: b"",
    "empty.parquet": lambda: b"",
    "nul_bytes.csv": lambda: _trade_csv(trade_line(901, TICKER, WHEN, 40)).encode() + b"\x00" * 9,
    "ragged_rows.csv": lambda: _trade_csv(trade_line(902, TICKER, WHEN, 40).strip() + ",x,y,z\n"),
    # --- encodings and BOMs
    "latin1_ticker.csv": lambda: _trade_csv(
        trade_line(903, "KXHIGHCHI-24DEC01-B40.5é", WHEN, 40)
    ).encode("latin-1"),
    "utf16.csv": lambda: _trade_csv(trade_line(904, TICKER, WHEN, 40)).encode("utf-16"),
    "bom_bad_date.csv": lambda: "\ufeff" + _trade_csv(trade_line(905, TICKER, "1900-01-01", 40)),
    # --- JSON shapes and types
    "deep_nesting.json": lambda: "[" * 100_000 + "]" * 100_000,
    "deep_object.json": lambda: '{"trades":' * 50_000 + "[]" + "}" * 50_000,
    "top_level_string.json": lambda: json.dumps("trades"),
    "top_level_null.json": lambda: "null",
    "trades_numbers.json": lambda: json.dumps({"trades": [1, 2, 3]}),
    "trades_one_not_object.json": lambda: json.dumps(
        {"trades": [json.loads(_trade_json())[0], "x"]}
    ),
    "price_as_list.json": lambda: _trade_json(yes_price=[40], no_price=[60]),
    "price_as_object.json": lambda: _trade_json(yes_price={"v": 40}),
    "count_as_bool.json": lambda: _trade_json(count=True),
    "json_nan.json": lambda: '[{"trade_id": NaN, "ticker": "x", "created_time": 1}]',
    "json_infinity_price.json": lambda: _trade_json(yes_price=1e400, no_price=-1e400),
    "markets_list_of_lists.json": lambda: json.dumps({"markets": [[TICKER, EVENT]]}),
    "markets_event_not_object.json": lambda: json.dumps({"events": ["KXHIGHCHI-24DEC01"]}),
    "candles_market_not_object.json": lambda: _candles(
        markets=[{"market_ticker": TICKER, "candlesticks": []}, 42]
    ),
    "candles_not_list.json": lambda: _candles(
        markets=[{"market_ticker": TICKER, "candlesticks": "many"}]
    ),
    "candle_not_object.json": lambda: _candles(ticker=TICKER, candlesticks=[1, 2]),
    "candle_price_string.json": lambda: _candles(
        ticker=TICKER, candlesticks=[{"end_period_ts": 1733065260, "price": "0.40"}]
    ),
    "candle_ts_float_text.json": lambda: _candles(
        ticker=TICKER, candlesticks=[{"end_period_ts": "12.5e3", "price": {}}]
    ),
    "candle_ticker_number.json": lambda: _candles(ticker=12345, candlesticks=[]),
    # --- values out of range
    "huge_count.csv": lambda: _trade_csv(trade_line(906, TICKER, WHEN, 40, count=10**30)),
    "negative_count.csv": lambda: _trade_csv(trade_line(907, TICKER, WHEN, 40, count=-3)),
    "zero_count.csv": lambda: _trade_csv(trade_line(908, TICKER, WHEN, 40, count=0)),
    "nan_price.csv": lambda: (
        TRADES_HEADER + f"00000000-0000-4000-8000-000000000909,{TICKER},1,{WHEN},NaN,NaN,yes\n"
    ),
    "inf_count.csv": lambda: (
        TRADES_HEADER + f"00000000-0000-4000-8000-000000000910,{TICKER},inf,{WHEN},40,60,yes\n"
    ),
    "price_101.csv": lambda: _trade_csv(trade_line(911, TICKER, WHEN, 101)),
    "prices_not_summing.csv": lambda: (
        TRADES_HEADER + f"00000000-0000-4000-8000-000000000912,{TICKER},1,{WHEN},40,40,yes\n"
    ),
    "date_1900.csv": lambda: _trade_csv(trade_line(913, TICKER, "1900-01-01T00:00:00Z", 40)),
    "date_2199.csv": lambda: _trade_csv(trade_line(914, TICKER, "2199-12-05T00:00:00Z", 40)),
    "not_uuid.csv": lambda: TRADES_HEADER + f"trade-915,{TICKER},1,{WHEN},40,60,yes\n",
    "bad_taker_side.csv": lambda: (
        TRADES_HEADER + f"00000000-0000-4000-8000-000000000916,{TICKER},1,{WHEN},40,60,maybe\n"
    ),
    # --- identities
    "dup_id_other_price.csv": lambda: _trade_csv(
        trade_line(917, TICKER, WHEN, 40), trade_line(917, TICKER, WHEN, 45)
    ),
    "dup_id_other_ticker.csv": lambda: _trade_csv(
        trade_line(918, TICKER, WHEN, 40), trade_line(918, "KXHIGHCHI-24DEC01-B42.5", WHEN, 40)
    ),
    "stored_id_other_price.csv": lambda: _trade_csv(
        trade_line(1, TICKER, "2024-12-01T15:00:00Z", 66)
    ),
    "ticker_newline.json": lambda: _trade_json(ticker=TICKER + "\n"),
    "ticker_space.csv": lambda: _trade_csv(trade_line(919, TICKER + " ", WHEN, 40)),
    "ticker_arabic_digit.csv": lambda: _trade_csv(
        trade_line(920, "KXHIGHCHI-24DEC\u0660\u0661-B40.5", WHEN, 40)
    ),
    "ticker_fullwidth_digit.csv": lambda: _trade_csv(
        trade_line(921, "KXHIGHCHI-24DEC0\uff11-B40.5", WHEN, 40)
    ),
    "ticker_unknown_series.csv": lambda: _trade_csv(
        trade_line(922, "KXHIGHINFLATION-24DEC01-B40.5", WHEN, 40)
    ),
    "ticker_dated_2099.csv": lambda: _trade_csv(
        trade_line(923, "KXHIGHCHI-99DEC01-B40.5", WHEN, 40)
    ),
    # --- market metadata
    "strike_contradiction.csv": lambda: _market_csv(floor_strike="38", cap_strike="39"),
    "strike_type_contradiction.csv": lambda: _market_csv(
        strike_type="greater", floor_strike="40", cap_strike=""
    ),
    "tails_swapped.csv": lambda: csv_text(
        MARKETS_HEADER,
        [
            [r[0], r[1], "greater", r[4], "", *r[5:]]
            if r[2] == "less"
            else [r[0], r[1], "less", "", r[3], *r[5:]]
            if r[2] == "greater"
            else r
            for r in ladder_rows(pd.Timestamp("2024-12-01").date(), 36, 41)
        ],
    ),
    "cross_city_event.csv": lambda: _market_csv(event_ticker="KXHIGHNY-24DEC01"),
    "other_day_event.csv": lambda: _market_csv(event_ticker="KXHIGHCHI-24DEC02"),
    "result_maybe.csv": lambda: _market_csv(result="maybe"),
    "status_exploded.csv": lambda: _market_csv(status="exploded"),
    "expiration_banana.csv": lambda: _market_csv(result="yes", expiration_value="banana"),
    "expiration_fraction.csv": lambda: _market_csv(result="yes", expiration_value="40.5"),
    "expiration_999.csv": lambda: _market_csv(result="yes", expiration_value="999"),
    "unknown_strike_type.csv": lambda: _market_csv(strike_type="sideways"),
    "strike_inf.csv": lambda: _market_csv(floor_strike="inf"),
    "two_settled_values.csv": lambda: csv_text(
        MARKETS_HEADER,
        [
            [TICKER, EVENT, "between", "40", "41", "finalized", "yes", "40"],
            [
                "KXHIGHCHI-24DEC01-B42.5",
                EVENT,
                "between",
                "42",
                "43",
                "finalized",
                "yes",
                "42",
            ],
        ],
    ),
    "ladder_result_maybe.csv": lambda: (
        "ticker,event_ticker,threshold_low,threshold_high,"
        f"strike_type,result\n{TICKER},{EVENT},40,41,between,maybe\n"
    ),
    # --- weather files
    "chicago.csv": lambda: "date_local,tmax_final\n2024-07-01,999\n",
    "miami.csv": lambda: "date_local,tmax_final\n2199-07-01,88\n",
    "austin.csv": lambda: "date_local,tmax_final\n1900-07-01,88\n",
    "KXHIGHDEN.csv": lambda: "ticker,datetime,temperature_2m\nKXHIGHDEN,1900-01-01T00:00,30\n",
    "KXHIGHMIA.csv": lambda: "ticker,datetime,temperature_2m\nKXHIGHMIA,2024-01-01T00:00,inf\n",
    "book_price_150.csv": lambda: (
        f"timestamp,market_ticker,best_yes_bid,best_no_bid\n2025-12-05 10:00:00,{TICKER},150,20\n"
    ),
}


def write_corpus(root: Path) -> list[Path]:
    """Write every malformed file under root (flat); returns their paths."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in CORPUS.items():
        content = make()
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        paths.append(path)
    return paths
