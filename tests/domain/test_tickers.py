"""Ticker parsing, series mapping and bracket inference from tickers."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwx.domain.brackets import Bracket, StrikeType, validate_ladder
from kwx.domain.tickers import (
    EventTicker,
    MarketTicker,
    TickerError,
    format_climate_date,
    infer_event_brackets,
    parse_event_ticker,
    parse_market_ticker,
)

D = Decimal
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


# --- parsing examples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "prefix", "series", "day", "event_raw", "kind", "strike"),
    [
        ("KXHIGHCHI-24AUG20-B69.5", "KXHIGHCHI", "KXHIGHCHI", "2024-08-20", "KXHIGHCHI-24AUG20",
         "B", "69.5"),
        ("HIGHCHI-24AUG20-T69", "HIGHCHI", "KXHIGHCHI", "2024-08-20", "HIGHCHI-24AUG20", "T", "69"),
        ("HIGHAUS--23MAY11-T84", "HIGHAUS", "KXHIGHAUS", "2023-05-11", "HIGHAUS--23MAY11", "T",
         "84"),
        ("KXHIGHTSFO-26JAN05-T60", "KXHIGHTSFO", "KXHIGHTSFO", "2026-01-05", "KXHIGHTSFO-26JAN05",
         "T", "60"),
        ("HIGHCHI-22DEC23-B-2.5", "HIGHCHI", "KXHIGHCHI", "2022-12-23", "HIGHCHI-22DEC23", "B",
         "-2.5"),
        ("KXHIGHPHIL-24nov20-B50.5", "KXHIGHPHIL", "KXHIGHPHIL", "2024-11-20",
         "KXHIGHPHIL-24nov20", "B", "50.5"),
    ],
)  # fmt: skip
def test_parse_market_ticker(
    ticker: str,
    prefix: str,
    series: str,
    day: str,
    event_raw: str,
    kind: str,
    strike: str,
) -> None:
    m = parse_market_ticker(ticker)
    assert m.raw == ticker
    assert m.kind == kind
    assert m.strike == D(strike)
    assert m.event_ticker == event_raw
    assert m.event.raw == event_raw
    assert m.event.prefix == prefix
    assert m.event.series == series
    assert m.event.climate_date == dt.date.fromisoformat(day)
    assert parse_event_ticker(m.event_ticker) == m.event


@pytest.mark.parametrize(
    ("ticker", "series", "day"),
    [
        ("KXHIGHNY-26AUG12", "KXHIGHNY", dt.date(2026, 8, 12)),
        ("HIGHNY-24AUG15", "KXHIGHNY", dt.date(2024, 8, 15)),
        ("HIGHAUS--23MAY11", "KXHIGHAUS", dt.date(2023, 5, 11)),
        ("KXHIGHTPHX-24FEB29", "KXHIGHTPHX", dt.date(2024, 2, 29)),
    ],
)
def test_parse_event_ticker(ticker: str, series: str, day: dt.date) -> None:
    e = parse_event_ticker(ticker)
    assert e.series == series
    assert e.climate_date == day
    assert e.event_ticker == ticker


def test_canonical_event_form() -> None:
    assert parse_event_ticker("HIGHAUS--23MAY11").canonical == "HIGHAUS-23MAY11"
    assert parse_event_ticker("KXHIGHNY-26aug12").canonical == "KXHIGHNY-26AUG12"
    assert parse_event_ticker("KXHIGHNY-26aug12").event_ticker == "KXHIGHNY-26aug12"


@pytest.mark.parametrize(
    "bad",
    [
        "KXHIGHINFLATION-24DEC-T3",
        "KXHIGHINFLATION-24DEC",
        "KXCPI-24DEC20-T3",
        "kxhighchi-24AUG20-B69.5",
        "KXHIGHCHI-24AUG20-X69",
        "KXHIGHCHI-24AUG20-B",
        "KXHIGHCHI-24AUG20-B69.",
        "KXHIGHCHI-24AUG20",
        "KXHIGHCHI-24FEB30-B69.5",
        "KXHIGHCHI-23FEB29-T50",
        "KXHIGHCHI-24ABC20-T50",
        "KXHIGHCHI---24AUG20-T50",
        "KXHIGH-24AUG20-T50",
        "KXHIGHCHI-24AUG20-T50 ",
        "KXHIGHCHI-2024-08-20-T50",
        "",
    ],
)
def test_parse_market_ticker_rejects(bad: str) -> None:
    with pytest.raises(TickerError, match="ticker"):
        parse_market_ticker(bad)


@pytest.mark.parametrize(
    "bad", ["KXHIGHNY-26AUG12-B77.5", "KXHIGHINFLATION-24DEC", "KXHIGHNY-26AUG32", "HIGHNY", ""]
)
def test_parse_event_ticker_rejects(bad: str) -> None:
    with pytest.raises(TickerError) as info:
        parse_event_ticker(bad)
    assert repr(bad) in str(info.value)


def test_ticker_error_is_value_error() -> None:
    assert issubclass(TickerError, ValueError)


def test_format_climate_date() -> None:
    assert format_climate_date(dt.date(2024, 8, 20)) == "24AUG20"
    assert format_climate_date(dt.date(2026, 1, 5)) == "26JAN05"
    with pytest.raises(ValueError):
        format_climate_date(dt.date(1999, 12, 31))


# --- round trip -----------------------------------------------------------------------------

prefixes = st.builds(
    lambda kx, city: f"{kx}HIGH{city}",
    st.sampled_from(["", "KX"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
)
ticker_dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))
# Kalshi writes whole strikes for T and x.5 midpoints for B, negatives included (B-2.5).
strikes = st.integers(-300, 300).map(lambda halves: Decimal(halves) / 2)


@given(prefixes, ticker_dates, st.sampled_from(["-", "--"]), st.booleans())
def test_event_round_trip(prefix: str, day: dt.date, sep: str, lower: bool) -> None:
    date_text = format_climate_date(day)
    raw = f"{prefix}{sep}{date_text.lower() if lower else date_text}"
    e = parse_event_ticker(raw)
    series = prefix if prefix.startswith("KX") else "KX" + prefix
    assert e == EventTicker(raw=raw, prefix=prefix, series=series, climate_date=day)
    assert e.canonical == f"{prefix}-{date_text}"


@given(prefixes, ticker_dates, st.sampled_from(["-", "--"]), st.sampled_from(["B", "T"]), strikes)
def test_market_round_trip(prefix: str, day: dt.date, sep: str, kind: str, strike: Decimal) -> None:
    event_raw = f"{prefix}{sep}{format_climate_date(day)}"
    raw = f"{event_raw}-{kind}{strike}"
    m = parse_market_ticker(raw)
    assert m == MarketTicker(
        raw=raw, event=parse_event_ticker(event_raw), kind=m.kind, strike=strike
    )
    assert m.kind == kind
    assert m.event_ticker == event_raw
    assert str(m.strike) == str(strike)


# --- inference ------------------------------------------------------------------------------


def tickers_for(event: str, low_cap: int, n_between: int = 4) -> dict[str, Bracket]:
    """A Kalshi-shaped event: T{L} less, B{L+0.5} ..., T{L+2n-1} greater."""
    out = {f"{event}-T{low_cap}": Bracket(StrikeType.LESS, None, D(low_cap))}
    for i in range(n_between):
        lo = low_cap + 2 * i
        out[f"{event}-B{D(lo) + D('0.5')}"] = Bracket(StrikeType.BETWEEN, D(lo), D(lo + 1))
    top = low_cap + 2 * n_between - 1
    out[f"{event}-T{top}"] = Bracket(StrikeType.GREATER, D(top), None)
    return out


def test_infer_full_ladder() -> None:
    truth = tickers_for("KXHIGHCHI-24AUG20", 66)
    got = infer_event_brackets(list(truth))
    assert got == truth
    assert list(got) == list(truth)  # keyed and ordered as given
    validate_ladder(list(got.values()))
    assert got["KXHIGHCHI-24AUG20-B68.5"] == Bracket(StrikeType.BETWEEN, D(68), D(69))


def test_infer_single_tail_from_position() -> None:
    got = infer_event_brackets(["HIGHNY-24AUG15-B80.5", "HIGHNY-24AUG15-T80"])
    assert got["HIGHNY-24AUG15-T80"] == Bracket(StrikeType.LESS, None, D(80))
    got = infer_event_brackets(["HIGHNY-24AUG15-B80.5", "HIGHNY-24AUG15-T81"])
    assert got["HIGHNY-24AUG15-T81"] == Bracket(StrikeType.GREATER, D(81), None)
    # Only a high between traded: the T below it is still unambiguous.
    got = infer_event_brackets(["HIGHNY-24AUG15-B86.5", "HIGHNY-24AUG15-T80"])
    assert got["HIGHNY-24AUG15-T80"].strike_type is StrikeType.LESS


def test_infer_accepts_double_dash_mixed_with_single() -> None:
    # ladder_aus.csv writes this event's markets with "--" and its event ticker with "-".
    got = infer_event_brackets(["HIGHAUS--23MAY11-T84", "HIGHAUS-23MAY11-B86.5"])
    assert got["HIGHAUS--23MAY11-T84"] == Bracket(StrikeType.LESS, None, D(84))


@pytest.mark.parametrize(
    ("tickers", "message"),
    [
        (["HIGHNY-24AUG15-T80"], "without the event's between markets"),
        (["HIGHNY-24AUG15-B80.5", "HIGHNY-24AUG15-B82.5", "HIGHNY-24AUG15-T82"], "inside"),
        (["HIGHNY-24AUG15-T80", "HIGHNY-24AUG16-B80.5"], "more than one event"),
        (["HIGHNY-24AUG15-T80", "HIGHCHI-24AUG15-T88"], "more than one event"),
        (["HIGHNY-24AUG15-T80", "HIGHNY-24AUG15-T85", "HIGHNY-24AUG15-T90"], "at most two"),
        (["HIGHNY-24AUG15-T80", "HIGHNY-24AUG15-T85", "HIGHNY-24AUG15-B78.5"], "lower tail"),
        (["HIGHNY-24AUG15-T80", "HIGHNY-24AUG15-T85", "HIGHNY-24AUG15-B85.5"], "upper tail"),
        (["HIGHNY-24AUG15-T80", "KXHIGHINFLATION-24DEC-T3"], "KXHIGHINFLATION"),
    ],
)
def test_infer_rejects(tickers: list[str], message: str) -> None:
    with pytest.raises(TickerError, match=message):
        infer_event_brackets(tickers)


def test_infer_empty() -> None:
    assert infer_event_brackets([]) == {}


@given(st.integers(-20, 110), st.integers(1, 6), st.data())
def test_infer_any_decidable_subset(low: int, n: int, data: st.DataObject) -> None:
    truth = tickers_for("KXHIGHDEN-24DEC01", low, n)
    subset = data.draw(
        st.lists(st.sampled_from(list(truth)), min_size=1, unique=True), label="subset"
    )
    n_tails = sum("-T" in t for t in subset)
    decidable = n_tails != 1 or len(subset) > 1
    if decidable:
        assert infer_event_brackets(subset) == {t: truth[t] for t in subset}
    else:
        with pytest.raises(TickerError):
            infer_event_brackets(subset)


# --- real tickers ---------------------------------------------------------------------------


def _real_rows() -> list[dict[str, str]]:
    path = DATA_DIR / "kalshi" / "markets" / "KXHIGHCHI.csv"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    with path.open(newline="") as f:
        return list(itertools.islice(csv.DictReader(f), 0, None, 50))


def test_real_chicago_tickers() -> None:
    rows = _real_rows()
    assert len(rows) >= 10
    prefixes_seen = set()
    for row in rows:
        m = parse_market_ticker(row["ticker"])
        prefixes_seen.add(m.event.prefix)
        assert m.event_ticker == row["event_ticker"]
        assert m.event.series == row["series_ticker"] == "KXHIGHCHI"
        assert m.event.climate_date.isoformat() == row["file_date"]
        bracket = Bracket.from_strikes(row["strike_type"], row["floor_strike"], row["cap_strike"])
        if m.kind == "B":
            assert (bracket.floor, bracket.cap) == (m.strike - D("0.5"), m.strike + D("0.5"))
        elif bracket.strike_type is StrikeType.LESS:
            assert bracket.cap == m.strike
        else:
            assert bracket.floor == m.strike
    assert prefixes_seen == {"HIGHCHI", "KXHIGHCHI"}  # the legacy-to-KX switch is in this file
