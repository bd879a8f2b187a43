from __future__ import annotations
import traceback
from pathlib import Path
import psycopg
from kwx.ingest.file_import import import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry

CTX = ImportContext(default_registry())
H = "trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"

def run(conn, root):
    try:
        s = import_directory(conn, root, CTX)
        print([(o.path.name, o.status, o.message) for o in s.outcomes], s.inference_errors)
    except Exception:
        traceback.print_exc()

def test_unknown_series(conn, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(H + "00000000-0000-4000-8000-000000000001,KXHIGHNYD-24DEC01-B40.5,1,2024-12-01T15:00:00Z,40,60,yes\n")
    run(conn, tmp_path)
    print(conn.execute("select count(*) from md.trades").fetchone())

def test_dup_market(conn, tmp_path: Path) -> None:
    hdr = "ticker,event_ticker,strike_type,floor_strike,cap_strike\n"
    (tmp_path / "m.csv").write_text(hdr + "KXHIGHCHI-24DEC01-B40.5,KXHIGHCHI-24DEC01,between,40,41\n" * 2)
    run(conn, tmp_path)

def test_dup_settle(conn, tmp_path: Path) -> None:
    (tmp_path / "chicago.csv").write_text("date_local,tmax_final\n2024-07-01,88\n2024-07-01,89\n")
    run(conn, tmp_path)

def test_dup_era5(conn, tmp_path: Path) -> None:
    (tmp_path / "KXHIGHCHI.csv").write_text("ticker,datetime,temperature_2m\nKXHIGHCHI,2024-07-01T15:00,88\nKXHIGHCHI,2024-07-01T15:00,89\n")
    run(conn, tmp_path)

def test_mixed_tz(conn, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(H + "00000000-0000-4000-8000-000000000001,KXHIGHCHI-24DEC01-B40.5,1,2024-12-01T15:00:00Z,40,60,yes\n"
        "00000000-0000-4000-8000-000000000002,KXHIGHCHI-24DEC01-B40.5,1,2024-12-01T10:00:00-05:00,40,60,yes\n")
    run(conn, tmp_path)
    print(conn.execute("select created_time from md.trades").fetchall())

def test_fp_precision(conn, tmp_path: Path) -> None:
    import json
    t = {"trade_id":"00000000-0000-4000-8000-000000000001","ticker":"KXHIGHCHI-24DEC01-B40.5","count_fp":"3.555","yes_price_dollars":"0.4212345","no_price_dollars":"0.5787655","taker_outcome_side":"yes","created_time":"2026-08-12T15:04:05.123Z"}
    (tmp_path / "t.json").write_text(json.dumps({"trades":[t]}))
    run(conn, tmp_path)
    print(conn.execute("select count_fp, yes_price, no_price from md.trades").fetchall())

def test_market_last_price(conn, tmp_path: Path) -> None:
    hdr = "ticker,event_ticker,strike_type,floor_strike,cap_strike,last_price,volume\n"
    (tmp_path / "m.csv").write_text(hdr + "KXHIGHCHI-24DEC01-B40.5,KXHIGHCHI-24DEC01,between,40,41,150,-5\n")
    run(conn, tmp_path)
    print(conn.execute("select last_price, volume from kalshi.markets").fetchall())

def test_dup_candles(conn, tmp_path: Path) -> None:
    import json
    c = {"end_period_ts": 1783674000, "volume_fp": "1.00", "price": {"close_dollars": "0.5"}}
    (tmp_path / "c.json").write_text(json.dumps({"ticker": "KXHIGHNY-26JUL10-B84.5", "candlesticks": [c, c]}))
    run(conn, tmp_path)
