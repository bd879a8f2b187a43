"""Shared helpers for the import robustness tests: small generated files in real shapes and a
checksum of every table an import writes, to prove good data is left exactly as it was."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from kwx.domain.tickers import format_climate_date
from kwx.ingest.file_import import FileOutcome, ImportSummary, import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry

Conn = psycopg.Connection[tuple[object, ...]]
CTX = ImportContext(default_registry())

# Every table a file import writes data to (meta.* is bookkeeping and grows on purpose).
DATA_TABLES = (
    "kalshi.series",
    "kalshi.events",
    "kalshi.markets",
    "md.trades",
    "md.candles_1m",
    "md.top_of_book",
    "wx.settlement",
    "wx.obs",
    "wx.forecast",
    "wx.forecast_daily",
    "wx.location",
)

TRADES_HEADER = "trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"
MARKETS_HEADER = (
    "ticker,event_ticker,strike_type,floor_strike,cap_strike,status,result,expiration_value\n"
)


def run(conn: Conn, root: Path, *, force: bool = False) -> ImportSummary:
    return import_directory(conn, root, CTX, force=force)


def outcome(summary: ImportSummary, name: str) -> FileOutcome:
    return next(o for o in summary.outcomes if o.path.name == name)


def checksums(conn: Conn) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every data table."""
    out = {}
    for table in DATA_TABLES:
        row = conn.execute(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
            f"FROM {table} t"
        ).fetchone()
        assert row is not None
        out[table] = (int(str(row[0])), str(row[1]))
    conn.commit()
    return out


def uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def event_ticker(day: dt.date, prefix: str = "KXHIGHCHI") -> str:
    return f"{prefix}-{format_climate_date(day)}"


def ladder_rows(
    day: dt.date, low: int, settled: int | None, prefix: str = "KXHIGHCHI", status: str = ""
) -> list[list[str]]:
    """Six markets of one event as the markets export writes them: a less tail at `low`, four
    2 °F between brackets and a greater tail; the settled value on the winning row only."""
    event = event_ticker(day, prefix)
    rows = [[f"{event}-T{low}", event, "less", "", str(low)]]
    for k in range(4):
        lo = low + 2 * k
        rows.append([f"{event}-B{lo}.5", event, "between", str(lo), str(lo + 1)])
    top = low + 7
    rows.append([f"{event}-T{top}", event, "greater", str(top), ""])
    out = []
    state = status or ("finalized" if settled is not None else "active")
    for row in rows:
        wins = settled is not None and _wins(row[2], row[3], row[4], settled)
        result = "" if settled is None else ("yes" if wins else "no")
        out.append([*row, state, result, str(settled) if wins else ""])
    return out


def _wins(kind: str, floor: str, cap: str, t: int) -> bool:
    if kind == "less":
        return t < int(cap)
    if kind == "greater":
        return t > int(floor)
    return int(floor) <= t <= int(cap)


def csv_text(header: str, rows: list[list[str]]) -> str:
    return header + "".join(",".join(r) + "\n" for r in rows)


def trade_line(n: int, ticker: str, when: str, price: int, count: int = 1) -> str:
    return f"{uuid(n)},{ticker},{count},{when},{price},{100 - price},yes\n"
