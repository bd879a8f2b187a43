"""The bracket and ticker rules checked against every settled market in the shared real data.

``kalshi/markets/*.csv`` is Kalshi's own metadata (strike_type, floor/cap, result and the
settled ``expiration_value``), so the rules must reproduce it exactly. ``kalshi/ladders/*.csv``
comes from another project whose ``actual_tmax`` is not the official value (sometimes a
tenths-of-°C conversion), so there we only require 99 % agreement and report the rest.
Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from kwx.domain.brackets import (
    Bracket,
    LadderError,
    StrikeType,
    settled_tmax,
    validate_ladder,
    winning_index,
)
from kwx.domain.tickers import infer_event_brackets, parse_event_ticker, parse_market_ticker

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MARKETS_DIR = DATA_DIR / "kalshi" / "markets"
LADDERS_DIR = DATA_DIR / "kalshi" / "ladders"
LADDER_CITIES = ["chi", "nyc", "aus", "phl"]
HALF = Decimal("0.5")

pytestmark = pytest.mark.skipif(
    not DATA_DIR.is_dir(),
    reason=f"shared real data not found at {DATA_DIR} (expected next to the repository)",
)

Row = dict[str, str]


def _read(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _by_event(rows: list[Row]) -> dict[str, list[Row]]:
    events: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        events[row["event_ticker"]].append(row)
    return dict(events)


def _bracket(row: Row) -> Bracket:
    return Bracket.from_strikes(row["strike_type"], row["floor_strike"], row["cap_strike"])


@pytest.fixture(scope="module")
def market_rows() -> list[Row]:
    files = sorted(MARKETS_DIR.glob("*.csv"))
    assert files, f"no market CSVs under {MARKETS_DIR}"
    rows = [row for path in files for row in _read(path)]
    assert rows
    return rows


@pytest.fixture(scope="module")
def settled_events(market_rows: list[Row]) -> dict[str, tuple[int, list[Row]]]:
    """Event ticker -> (official settled high, its market rows), for events Kalshi settled.

    Metadata of the real-quote window (``KXHIGHCHI_2025-05.csv``) was captured while the markets
    were open: no result, no ``expiration_value``. Those events are checked against the
    official values in :func:`test_open_metadata_ladders_settle_on_the_official_value`."""
    out = {}
    for event, rows in _by_event(market_rows).items():
        if not any(r["result"] or r["expiration_value"] for r in rows):
            continue
        # expiration_value is only filled on the winning row; every filled one must agree.
        values = {settled_tmax(r["expiration_value"]) for r in rows if r["expiration_value"]}
        values.discard(None)
        assert len(values) == 1, f"{event}: settled values {values}"
        (tmax,) = values
        assert tmax is not None
        out[event] = (tmax, rows)
    return out


def test_every_settled_market_follows_the_bracket_rules(
    settled_events: dict[str, tuple[int, list[Row]]],
) -> None:
    checked = 0
    matched = 0
    failures: list[str] = []
    for event, (tmax, rows) in settled_events.items():
        brackets = [_bracket(r) for r in rows]
        try:
            validate_ladder(brackets)
        except LadderError as exc:
            failures.append(f"{event}: {exc}")
        assert len(brackets) == 6, f"{event} has {len(brackets)} markets"
        for row, bracket in zip(rows, brackets, strict=True):
            checked += 1
            if bracket.wins(tmax) == (row["result"] == "yes"):
                matched += 1
            else:
                failures.append(f"{row['ticker']}: T={tmax} {bracket} result={row['result']}")
        winners = [r["ticker"] for r in rows if r["result"] == "yes"]
        assert len(winners) == 1, f"{event}: winners {winners}"
        assert rows[winning_index(brackets, tmax)]["ticker"] == winners[0]
    rate = matched / checked
    print(
        f"\nsettled markets: {checked} markets in {len(settled_events)} events, "
        f"bracket rule matched {matched}/{checked} = {rate:.2%}"
    )
    assert not failures, "\n".join(failures[:20])
    assert rate == 1.0


def test_free_text_expiration_value_is_present_and_parsed(market_rows: list[Row]) -> None:
    # KXHIGHMIA 2024-11-05 settled on hourly data with an explanatory sentence after the value.
    texts = [r for r in market_rows if r["expiration_value"].startswith("84. Although")]
    assert [r["ticker"] for r in texts] == ["KXHIGHMIA-24NOV05-B84.5"]
    assert settled_tmax(texts[0]["expiration_value"]) == 84


def test_every_ticker_agrees_with_its_metadata(market_rows: list[Row]) -> None:
    failures: list[str] = []
    for row in market_rows:
        m = parse_market_ticker(row["ticker"])
        event = parse_event_ticker(row["event_ticker"])
        bracket = _bracket(row)
        if m.event_ticker != row["event_ticker"] or m.event != event:
            failures.append(f"{row['ticker']}: event part differs from {row['event_ticker']}")
        if event.series != row["series_ticker"]:
            failures.append(f"{row['ticker']}: series {event.series} != {row['series_ticker']}")
        if event.climate_date.isoformat() != row["file_date"]:
            failures.append(f"{row['ticker']}: date {event.climate_date} != {row['file_date']}")
        if m.kind == "B":
            ok = bracket.strike_type is StrikeType.BETWEEN and (bracket.floor, bracket.cap) == (
                m.strike - HALF,
                m.strike + HALF,
            )
        elif bracket.strike_type is StrikeType.LESS:
            ok = bracket.cap == m.strike
        else:
            ok = bracket.strike_type is StrikeType.GREATER and bracket.floor == m.strike
        if not ok:
            failures.append(
                f"{row['ticker']}: strike does not match {bracket.strike_type} {bracket}"
            )
    print(f"\ntickers parsed and matched to metadata: {len(market_rows)}")
    assert not failures, "\n".join(failures[:20])


def test_inferred_brackets_reproduce_metadata(
    settled_events: dict[str, tuple[int, list[Row]]],
) -> None:
    failures: list[str] = []
    for event, (_, rows) in settled_events.items():
        inferred = infer_event_brackets([r["ticker"] for r in rows])
        for row in rows:
            if inferred[row["ticker"]] != _bracket(row):
                failures.append(f"{event}: {row['ticker']} inferred {inferred[row['ticker']]}")
    assert not failures, "\n".join(failures[:20])


def _round_half_up(text: str) -> int:
    return int(Decimal(text).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("city", LADDER_CITIES)
def test_ladder_file(city: str) -> None:
    rows = _read(LADDERS_DIR / f"ladder_{city}.csv")
    events = _by_event(rows)
    assert events
    mismatches: list[str] = []
    not_tiling: list[str] = []
    sizes: dict[int, int] = defaultdict(int)
    for event, ev_rows in events.items():
        sizes[len(ev_rows)] += 1
        inferred = infer_event_brackets([r["ticker"] for r in ev_rows])
        for row in ev_rows:
            # The file's strike_type came from Kalshi, so tail inference must agree with it.
            assert inferred[row["ticker"]].strike_type == row["strike_type"], row["ticker"]
            assert parse_market_ticker(row["ticker"]).event.climate_date.isoformat() == row["date"]
        try:
            validate_ladder(list(inferred.values()))
        except LadderError as exc:
            not_tiling.append(f"{event}: {exc}")
        highs = {r["actual_tmax"] for r in ev_rows}
        assert len(highs) == 1, f"{event}: several actual_tmax {highs}"
        tmax = _round_half_up(highs.pop())
        winners = {r["ticker"] for r in ev_rows if inferred[r["ticker"]].wins(tmax)}
        yes = {r["ticker"] for r in ev_rows if r["result"] == "yes"}
        if winners != yes:
            mismatches.append(f"{event}: T={tmax} wins {sorted(winners)}, result yes {sorted(yes)}")
    print(
        f"\nladder_{city}: {len(rows)} markets, {len(events)} events "
        f"(markets per event: {dict(sorted(sizes.items()))}); "
        f"round(actual_tmax) mismatches: {len(mismatches)}; "
        f"ladders not tiling: {len(not_tiling)}"
    )
    for line in [*mismatches, *not_tiling][:10]:
        print("  " + line)
    assert len(mismatches) <= 0.01 * len(events), "\n".join(mismatches[:20])
    # Known gap: a few Chicago sub-zero days lack their negative "less" tail in this file.
    assert len(not_tiling) <= 0.01 * len(events), "\n".join(not_tiling[:20])


def test_ladders_agree_with_kalshi_metadata_where_they_overlap(
    settled_events: dict[str, tuple[int, list[Row]]],
) -> None:
    official = {
        row["ticker"]: (tmax, row["result"])
        for tmax, rows in settled_events.values()
        for row in rows
    }
    overlap = 0
    for city in LADDER_CITIES:
        for row in _read(LADDERS_DIR / f"ladder_{city}.csv"):
            if row["ticker"] not in official:
                continue
            overlap += 1
            tmax, result = official[row["ticker"]]
            assert row["result"] == result, row["ticker"]
            assert _round_half_up(row["actual_tmax"]) == tmax, row["ticker"]
    print(f"\nladder rows also in market metadata: {overlap}, all agree")
    assert overlap > 0


def test_open_metadata_ladders_settle_on_the_official_value(
    market_rows: list[Row], settled_events: dict[str, tuple[int, list[Row]]]
) -> None:
    """The real-quote window's metadata (``KXHIGHCHI_2025-05.csv``) was captured over days:
    events still open tile the line and the official maximum of their climate day
    (``weather/settlements/chicago_2025-05.csv``) lands in exactly one bracket; events Kalshi
    had settled carry that same official value."""
    official = {
        r["date_local"]: int(r["tmax_final"])
        for r in _read(DATA_DIR / "weather" / "settlements" / "chicago_2025-05.csv")
    }
    open_events = {
        event: rows
        for event, rows in _by_event(market_rows).items()
        if not any(r["result"] or r["expiration_value"] for r in rows)
    }
    assert len(open_events) >= 3, sorted(open_events)
    checked_open = 0
    for event, rows in open_events.items():
        brackets = [_bracket(r) for r in rows]
        validate_ladder(brackets)
        assert len(brackets) == 6, f"{event} has {len(brackets)} markets"
        day = parse_event_ticker(event).climate_date.isoformat()
        if day in official:
            winners = [b for b in brackets if b.wins(official[day])]
            assert len(winners) == 1, f"{event}: T={official[day]} wins {winners}"
            checked_open += 1
    assert checked_open >= 2, f"only {checked_open} open events have an official value"
    settled_in_window = {
        parse_event_ticker(event).climate_date.isoformat(): tmax
        for event, (tmax, _) in settled_events.items()
        if parse_event_ticker(event).climate_date.isoformat() in official
    }
    assert len(settled_in_window) >= 5
    assert settled_in_window == {day: official[day] for day in settled_in_window}
