"""Issue 15, the import half: every bad shape the issue names is refused with its file, row
and field, kept in meta.bad_input, and leaves the good data exactly as it was."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from kwx.domain.brackets import Bracket
from kwx.ingest.normalize import normalize_markets
from kwx.sources.files import BadInputError

from .import_helpers import (
    CTX,
    MARKETS_HEADER,
    TRADES_HEADER,
    Conn,
    checksums,
    csv_text,
    event_ticker,
    ladder_rows,
    outcome,
    run,
    trade_line,
)

DAY = dt.date(2024, 12, 1)
TICKER = "KXHIGHCHI-24DEC01-B40.5"


def _good_store(conn: Conn, root: Path) -> dict[str, tuple[int, str]]:
    """A settled Chicago and New York event plus two trades, imported; their checksums."""
    good = root / "good"
    good.mkdir()
    rows = ladder_rows(DAY, 36, 41) + ladder_rows(DAY, 30, 33, prefix="KXHIGHNY")
    (good / "markets.csv").write_text(csv_text(MARKETS_HEADER, rows))
    (good / "trades.csv").write_text(
        TRADES_HEADER
        + trade_line(1, TICKER, "2024-12-01T15:00:00Z", 40)
        + trade_line(2, TICKER, "2024-12-01T15:00:30Z", 42)
    )
    summary = run(conn, good)
    assert not summary.failed, [o.message for o in summary.failed]
    return checksums(conn)


def _bad_input(conn: Conn) -> list[tuple[str, str | None]]:
    rows = conn.execute("SELECT location, field FROM meta.bad_input ORDER BY id").fetchall()
    conn.commit()
    return [(str(r[0]), None if r[1] is None else str(r[1])) for r in rows]


# name -> (file name, content, field the refusal must name)
BAD_FILES: dict[str, tuple[str, str | bytes, str | None]] = {
    "trade_in_1900": (
        "t1900.csv",
        TRADES_HEADER + trade_line(9, TICKER, "1900-01-01T00:00:00Z", 40),
        "created_time",
    ),
    "trade_in_2199": (
        "t2199.csv",
        TRADES_HEADER + trade_line(9, TICKER, "2199-12-05T00:00:00Z", 40),
        "created_time",
    ),
    "same_trade_id_other_price_in_file": (
        "tdup.csv",
        TRADES_HEADER
        + trade_line(9, TICKER, "2024-12-01T16:00:00Z", 40)
        + trade_line(9, TICKER, "2024-12-01T16:00:00Z", 55),
        "trade_id",
    ),
    "same_trade_id_other_price_than_stored": (
        "tstored.csv",
        TRADES_HEADER + trade_line(1, TICKER, "2024-12-01T15:00:00Z", 77),
        "trade_id",
    ),
    "ticker_with_trailing_newline": (
        "tnl.json",
        json.dumps(
            [
                {
                    "trade_id": "00000000-0000-4000-8000-000000000009",
                    "ticker": TICKER + "\n",
                    "count": 1,
                    "created_time": "2024-12-01T15:00:00Z",
                    "yes_price": 40,
                    "no_price": 60,
                }
            ]
        ),
        "ticker",
    ),
    "ticker_with_arabic_digit": (
        "tdigit.csv",
        TRADES_HEADER + trade_line(9, "KXHIGHCHI-24DEC0\u0661-B40.5", "2024-12-01T15:00:00Z", 40),
        "ticker",
    ),
    "trades_list_of_numbers": ("tnums.json", json.dumps({"trades": [1, 2, 3]}), None),
    "huge_count": (
        "thuge.csv",
        TRADES_HEADER + trade_line(9, TICKER, "2024-12-01T15:00:00Z", 40, count=10**15),
        "count",
    ),
    "bracket_contradicts_ticker": (
        "mstrike.csv",
        csv_text(
            MARKETS_HEADER,
            [[TICKER, "KXHIGHCHI-24DEC01", "between", "40", "45", "finalized", "no", ""]],
        ),
        "cap_strike",
    ),
    "tails_swapped": (
        "mtails.csv",
        csv_text(
            MARKETS_HEADER,
            [
                [*r[:2], {"less": "greater", "greater": "less"}.get(r[2], r[2]), r[4], r[3], *r[5:]]
                if r[2] in ("less", "greater")
                else r
                for r in ladder_rows(DAY, 36, 41)
            ],
        ),
        None,
    ),
    "chicago_market_under_ny_event": (
        "mcross.csv",
        csv_text(
            MARKETS_HEADER,
            [[TICKER, "KXHIGHNY-24DEC01", "between", "40", "41", "finalized", "no", ""]],
        ),
        "event_ticker",
    ),
    "nested_market_of_another_event": (
        "mnested.json",
        json.dumps(
            {
                "events": [
                    {
                        "event_ticker": "KXHIGHNY-24DEC01",
                        "title": "Highest temperature in NYC on Dec 1, 2024?",
                        "markets": [
                            {
                                "ticker": "KXHIGHNY-24DEC01-B30.5",
                                "event_ticker": "KXHIGHCHI-24DEC01",
                                "strike_type": "between",
                                "floor_strike": 30,
                                "cap_strike": 31,
                            }
                        ],
                    }
                ]
            }
        ),
        "event_ticker",
    ),
    "expiration_value_banana": (
        "mbanana.csv",
        csv_text(
            MARKETS_HEADER,
            [[TICKER, "KXHIGHCHI-24DEC01", "between", "40", "41", "finalized", "yes", "banana"]],
        ),
        "expiration_value",
    ),
    "result_maybe": (
        "mmaybe.csv",
        csv_text(
            MARKETS_HEADER,
            [[TICKER, "KXHIGHCHI-24DEC01", "between", "40", "41", "finalized", "maybe", ""]],
        ),
        "result",
    ),
    "status_exploded": (
        "mexploded.csv",
        csv_text(
            MARKETS_HEADER,
            [[TICKER, "KXHIGHCHI-24DEC01", "between", "40", "41", "exploded", "no", ""]],
        ),
        "status",
    ),
    "candle_market_not_object": (
        "cmarket.json",
        json.dumps(
            {
                "markets": [
                    {"market_ticker": TICKER, "candlesticks": []},
                    "KXHIGHCHI-24DEC01-B42.5",
                ]
            }
        ),
        "markets",
    ),
    "markets_json_market_not_object": (
        "mlist.json",
        json.dumps({"markets": ["KXHIGHCHI-24DEC01-B40.5"]}),
        "markets",
    ),
    "candle_end_in_2199": (
        "c2199.json",
        json.dumps(
            {
                "ticker": TICKER,
                "candlesticks": [{"end_period_ts": 7_200_000_000, "volume": 1, "price": {}}],
            }
        ),
        "end_period_ts",
    ),
    "json_nested_100k_deep": ("deep.json", "[" * 100_000 + "]" * 100_000, None),
    "json_with_nan": ("nan.json", '[{"trade_id": NaN}]', None),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_refused_named_and_changes_nothing(
    conn: Conn, tmp_path: Path, case: str
) -> None:
    before = _good_store(conn, tmp_path)
    name, content, field = BAD_FILES[case]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    path = bad_dir / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    summary = run(conn, bad_dir)
    got = outcome(summary, name)
    assert got.status == "failed", (case, got)
    assert str(path) in got.message
    kept = _bad_input(conn)
    assert [loc for loc, _ in kept if loc.startswith(str(path))], kept
    if field is not None:
        assert (f"field {field!r}" in got.message) or any(f == field for _, f in kept), got
    assert checksums(conn) == before, case


def test_truncated_gzip_fails_alone_and_the_rest_imports(conn: Conn, tmp_path: Path) -> None:
    body = gzip.compress(
        (TRADES_HEADER + trade_line(5, TICKER, "2024-12-01T15:00:00Z", 40) * 1).encode() * 1
    )
    (tmp_path / "cut.csv.gz").write_bytes(body[: len(body) // 2])
    (tmp_path / "ok.csv").write_text(
        TRADES_HEADER + trade_line(6, TICKER, "2024-12-01T15:05:00Z", 41)
    )
    (tmp_path / "cli_garbage.txt").write_bytes(b"\x00\xff garbage CLI text")
    summary = run(conn, tmp_path)
    statuses = {o.path.name: o.status for o in summary.outcomes}
    assert statuses == {"cut.csv.gz": "failed", "ok.csv": "imported", "cli_garbage.txt": "skipped"}
    assert "cut.csv.gz" in outcome(summary, "cut.csv.gz").message
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (1,)


def test_garbage_expiration_value_never_erases_a_settled_value(conn: Conn, tmp_path: Path) -> None:
    _good_store(conn, tmp_path)
    # An older snapshot of the same event, taken before it settled, arrives later.
    early = tmp_path / "early"
    early.mkdir()
    (early / "m.csv").write_text(csv_text(MARKETS_HEADER, ladder_rows(DAY, 36, None)))
    assert not run(conn, early).failed
    rows = conn.execute(
        "SELECT DISTINCT settled_tmax FROM kalshi.markets WHERE event_ticker = %s",
        (event_ticker(DAY),),
    ).fetchall()
    assert rows == [(41,)]


def test_2025_export_with_blank_winning_strikes_is_inferred(conn: Conn, tmp_path: Path) -> None:
    """The 2025 exports leave strike_type, floor and cap blank on each day's winning row;
    the ticker and its siblings say what they are. A lone blank tail cannot be known."""
    rows: list[list[str]] = []
    days = [dt.date(2025, 1, 16) + dt.timedelta(days=k) for k in range(4)]
    settled = [37, 45, 30, 46]  # between, between, less tail, greater tail
    for day, tmax in zip(days, settled, strict=True):
        for row in ladder_rows(day, 31, tmax):
            if row[6] == "yes":
                row[2:5] = ["", "", ""]
            rows.append(row)
    lone = dt.date(2025, 1, 25)
    lone_event = event_ticker(lone)
    rows.append([f"{lone_event}-T50", lone_event, "", "", "", "finalized", "yes", "51"])
    (tmp_path / "KXHIGHCHI_2025.csv").write_text(csv_text(MARKETS_HEADER, rows))
    summary = run(conn, tmp_path)
    got = outcome(summary, "KXHIGHCHI_2025.csv")
    assert got.status == "imported", got
    assert "4 row(s) had blank strikes" in got.message
    assert "1 row(s) left out" in got.message
    stored = conn.execute(
        "SELECT ticker, strike_type, floor_strike, cap_strike, settled_tmax FROM kalshi.markets"
    ).fetchall()
    assert len(stored) == 24
    by_ticker = {str(r[0]): r for r in stored}
    assert by_ticker["KXHIGHCHI-25JAN16-B37.5"][1:] == ("between", Decimal(37), Decimal(38), 37)
    assert by_ticker["KXHIGHCHI-25JAN18-T31"][1:] == ("less", None, Decimal(31), 30)
    assert by_ticker["KXHIGHCHI-25JAN19-T38"][1:] == ("greater", Decimal(38), None, 46)
    # Every event's stored ladder tiles, and its winner pays at the settled value.
    for day, tmax in zip(days, settled, strict=True):
        ladder = [
            Bracket.from_strikes(str(r[1]), r[2], r[3])  # type: ignore[arg-type]
            for r in stored
            if str(r[0]).startswith(event_ticker(day))
        ]
        assert sum(b.wins(tmax) for b in ladder) == 1
    kept = _bad_input(conn)
    assert (f"{tmp_path / 'KXHIGHCHI_2025.csv'}:{len(rows)}", "strike_type") in kept


def test_blank_strikes_are_inferred_in_the_normaliser_alone(tmp_path: Path) -> None:
    """Without inference the file was refused whole (issue 15: all 774 markets lost)."""
    rows = ladder_rows(dt.date(2025, 2, 1), 20, 23)
    rows[2][2:5] = ["", "", ""]
    path = tmp_path / "m.csv"
    path.write_text(csv_text(MARKETS_HEADER, rows))
    batches = normalize_markets(path, CTX)
    markets = next(b.frame for b in batches if b.writer.table == "kalshi.markets")
    row = markets.set_index("ticker").loc["KXHIGHCHI-25FEB01-B22.5"]
    assert (row["strike_type"], row["floor_strike"], row["cap_strike"]) == (
        "between",
        Decimal(22),
        Decimal(23),
    )


def test_symlinked_folders_import_and_loops_end(conn: Conn, tmp_path: Path) -> None:
    real = tmp_path / "real" / "trades"
    real.mkdir(parents=True)
    (real / "t.csv").write_text(TRADES_HEADER + trade_line(7, TICKER, "2024-12-01T15:00:00Z", 40))
    view = tmp_path / "view"
    view.mkdir()
    (view / "trades").symlink_to(real)
    (view / "loop").symlink_to(view)  # a link back up the tree
    summary = run(conn, view)
    assert [(o.path.name, o.status) for o in summary.outcomes] == [("t.csv", "imported")]
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (1,)


def test_market_record_errors_name_row_and_field(tmp_path: Path) -> None:
    rows = ladder_rows(DAY, 36, 41)
    rows[3][5] = "exploded"
    path = tmp_path / "m.csv"
    path.write_text(csv_text(MARKETS_HEADER, rows))
    with pytest.raises(BadInputError) as err:
        normalize_markets(path, CTX)
    assert (err.value.row, err.value.field) == (4, "status")
