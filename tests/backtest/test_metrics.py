"""Backtest metrics on a tiny hand-worked ledger: every figure below was computed by hand."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

import pytest

from kwx.backtest.ledger import FillRecord, Settlement
from kwx.backtest.metrics import compute_metrics, fill_pnl, hazard_regime
from kwx.domain.fees import taker_fee

D = Decimal


def fill(
    ts: str,
    ticker: str,
    side: Literal["yes", "no"],
    action: Literal["buy", "sell"],
    price: str,
    count: int,
    fee: str,
    *,
    taker: bool,
    hazard: float | None = None,
    city: str = "chicago",
) -> FillRecord:
    return FillRecord(
        ts=datetime.fromisoformat(ts).replace(tzinfo=UTC),
        ticker=ticker,
        event_ticker=ticker.rsplit("-", 1)[0],
        city=city,
        side=side,
        action=action,
        price=D(price),
        count=D(count),
        fee=D(fee),
        is_taker=taker,
        hazard_next_60m=hazard,
        p_fused_norm=0.5,
        order_id=f"o-{ticker}-{ts}",
    )


A = "KXHIGHCHI-24JAN10-B30.5"  # settles YES
B = "KXHIGHCHI-24JAN10-B32.5"  # settles NO
C = "KXHIGHCHI-24JAN11-B28.5"  # settles NO
M = "KXHIGHMIA-24JAN13-T80"  # settles YES (Miami, Eastern time)
E = "KXHIGHCHI-24FEB01-B40.5"  # never settled, round trip back to flat
F = "KXHIGHCHI-24FEB02-B40.5"  # never settled, still open


def ledger() -> tuple[list[FillRecord], list[Settlement]]:
    """The worked example. Fees: 0.07·C·P·(1−P) rounded up to the cent (makers pay 0)."""
    fills = [
        # A: +10 @0.40 (fee 0.168→0.17), −4 @0.55 maker. Net +6, cash −1.80, YES → pnl 4.03
        fill("2024-01-10T15:00", A, "yes", "buy", "0.40", 10, "0.17", taker=True, hazard=0.1),
        fill("2024-01-10T17:00", A, "yes", "sell", "0.55", 4, "0", taker=False, hazard=0.5),
        # B: buy NO 5 @0.70 (= short YES @0.30, fee 0.0735→0.08), buy YES 2 @0.25 (0.02625→
        # 0.03). Net YES −3, cash +1.50 − 0.50 = 1.00, NO → gross 1.00, pnl 0.89
        fill("2024-01-10T20:00", B, "no", "buy", "0.70", 5, "0.08", taker=True, hazard=0.7),
        fill("2024-01-10T21:00", B, "yes", "buy", "0.25", 2, "0.03", taker=True),
        # C: +20 @0.50 (fee 0.35), NO → pnl −10.35
        fill("2024-01-11T16:00", C, "yes", "buy", "0.50", 20, "0.35", taker=True, hazard=0.3),
        # M: sell NO 10 @0.90 (= long YES @0.10, fee 0.063→0.07), YES → pnl 8.93
        fill("2024-01-13T18:00", M, "no", "sell", "0.90", 10, "0.07", taker=True, city="miami"),
        # E: +3 @0.20, −3 @0.30, both maker: flat, pnl 0.30 on its ticker date 2024-02-01
        fill("2024-02-01T15:00", E, "yes", "buy", "0.20", 3, "0", taker=False),
        fill("2024-02-01T16:00", E, "yes", "sell", "0.30", 3, "0", taker=False),
        # F: open, no settlement: out of every P&L figure, still in trade counts
        fill("2024-02-02T15:00", F, "yes", "buy", "0.50", 1, "0.02", taker=True),
    ]
    at = datetime(2024, 2, 3, tzinfo=UTC)
    settlements = [
        Settlement(A, A.rsplit("-", 1)[0], "chicago", date(2024, 1, 10), "yes", at),
        Settlement(B, B.rsplit("-", 1)[0], "chicago", date(2024, 1, 10), "no", at),
        Settlement(C, C.rsplit("-", 1)[0], "chicago", date(2024, 1, 11), "no", at),
        Settlement(M, M.rsplit("-", 1)[0], "miami", date(2024, 1, 13), "yes", at),
        # a market we never traded: ignored
        Settlement(
            "KXHIGHCHI-24JAN12-B30.5", "KXHIGHCHI-24JAN12", "chicago", date(2024, 1, 12), "yes", at
        ),
    ]
    return fills, settlements


def test_hand_fees_are_the_fee_formula() -> None:
    fills, _ = ledger()
    for f in fills:
        assert f.fee == (taker_fee(f.count, f.price) if f.is_taker else 0)


def test_headline_figures() -> None:
    m = compute_metrics(*ledger())
    assert m.n_fills == 9
    assert m.n_positions == 5
    assert m.open_positions == (F,)
    assert m.net_pnl == D("3.80")  # 4.03 + 0.89 − 10.35 + 8.93 + 0.30
    assert m.fees == D("0.70")  # fees of booked positions
    assert m.gross_pnl == D("4.50")
    assert (m.taker_fills, m.maker_fills) == (6, 3)
    assert m.taker_fees == D("0.72") and m.maker_fees == 0  # every fill, F included
    assert (m.taker_contracts, m.maker_contracts) == (D(48), D(10))
    assert m.contracts_traded == D(58)
    assert m.turnover == D("31.20")
    assert (m.wins, m.hit_rate) == (4, 0.8)
    pnl = dict(zip(m.positions["ticker"], m.positions["pnl"], strict=True))
    assert pnl == {A: D("4.03"), B: D("0.89"), C: D("-10.35"), M: D("8.93"), E: D("0.30")}


def test_daily_series_drawdown_and_sharpe() -> None:
    m = compute_metrics(*ledger())
    assert (m.first_date, m.last_date) == (date(2024, 1, 10), date(2024, 2, 1))
    assert m.n_days == 23
    hand = [D("4.92"), D("-10.35"), D(0), D("8.93"), *([D(0)] * 18), D("0.30")]
    assert list(m.daily["pnl"]) == hand
    assert list(m.daily["equity"])[:4] == [D("4.92"), D("-5.43"), D("-5.43"), D("3.50")]
    assert m.daily["equity"].iloc[-1] == m.net_pnl
    # Peak 4.92 on day 1, trough −5.43 on day 2.
    assert m.max_drawdown == D("10.35")
    assert list(m.daily["drawdown"])[:4] == [D(0), D("10.35"), D("10.35"), D("1.42")]
    values = [float(x) for x in hand]
    expected = statistics.fmean(values) / statistics.stdev(values) * math.sqrt(365)
    assert m.sharpe_daily == pytest.approx(expected)
    assert m.sharpe_daily == pytest.approx(3.80 / 23 / statistics.stdev(values) * math.sqrt(365))


def _slice(frame: object, key: str) -> Decimal:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    row = frame.loc[frame["slice"] == key]
    assert len(row) == 1, key
    value = row["pnl"].iloc[0]
    assert isinstance(value, Decimal)
    return value


def test_slices_add_up_and_match_hand_values() -> None:
    m = compute_metrics(*ledger())
    for frame in m.slices.values():
        assert sum(frame["pnl"], D(0)) == m.net_pnl
        assert sum(frame["fees"], D(0)) == m.fees
        assert frame["fills"].sum() == 8  # F is open: not booked
    assert list(m.by_hazard["slice"]) == ["low", "mid", "high", "n/a"]
    assert _slice(m.by_hazard, "low") == D("5.83")  # A buy: 10·0.60 − 0.17
    assert _slice(m.by_hazard, "mid") == D("-12.15")  # A sell −1.80, C −10.35
    assert _slice(m.by_hazard, "high") == D("1.42")  # B NO buy: 5·0.30 − 0.08
    assert _slice(m.by_hazard, "n/a") == D("8.70")  # B YES −0.53, M 8.93, E 0.30 + 0
    assert _slice(m.by_city, "chicago") == D("-5.13")
    assert _slice(m.by_city, "miami") == D("8.93")
    # Local hours: Chicago CST = UTC−6, Miami EST = UTC−5.
    assert dict(zip(m.by_hour["slice"], m.by_hour["pnl"], strict=True)) == {
        "09": D("6.13"),
        "10": D("-10.35"),
        "11": D("-1.80"),
        "13": D("8.93"),
        "14": D("1.42"),
        "15": D("-0.53"),
    }
    assert dict(zip(m.by_month["slice"], m.by_month["pnl"], strict=True)) == {
        "2024-01": D("3.50"),
        "2024-02": D("0.30"),
    }


def test_yes_and_no_on_one_ticker_net_to_flat() -> None:
    """Buy 5 YES @0.40 and buy 5 NO @0.60: a sure $5 payout for $5 — only the fees are lost."""
    t = "KXHIGHCHI-24JUL10-B90.5"
    fills = [
        fill("2024-07-10T14:00", t, "yes", "buy", "0.40", 5, "0.09", taker=True),
        fill("2024-07-10T15:00", t, "no", "buy", "0.60", 5, "0.09", taker=True),
    ]
    for result in ("yes", "no"):
        s = Settlement(
            t, t[:-6], "chicago", date(2024, 7, 10), result, datetime(2024, 7, 11, tzinfo=UTC)
        )
        m = compute_metrics(fills, [s])
        assert m.net_pnl == D("-0.18")
        assert m.positions["net_yes"].iloc[0] == 0
        assert m.hit_rate == 0.0
        # Chicago is on daylight time in July (UTC−5).
        assert list(m.by_hour["slice"]) == ["09", "10"]
    assert fill_pnl(fills[1], D(0)) == D("1.91")  # NO held to a NO result: 5·0.40 − 0.09


def test_no_fills_gives_empty_but_defined_metrics() -> None:
    m = compute_metrics([], [])
    assert m.n_fills == m.n_positions == 0
    assert m.net_pnl == 0 and m.max_drawdown == 0
    assert m.hit_rate is None and m.sharpe_daily is None
    assert m.daily.empty and m.positions.empty and m.by_city.empty
    assert m.first_date is None


def test_single_day_has_no_sharpe_and_drawdown_from_zero() -> None:
    fills, settlements = ledger()
    m = compute_metrics([f for f in fills if f.ticker == C], settlements)
    assert m.n_days == 1 and m.sharpe_daily is None
    assert m.max_drawdown == D("10.35")  # the peak starts at 0 before the first day


def test_conflicting_settlements_and_unknown_cities_are_refused() -> None:
    fills, settlements = ledger()
    twice = [
        *settlements,
        Settlement(A, "x", "chicago", date(2024, 1, 10), "no", settlements[0].settled_at),
    ]
    with pytest.raises(ValueError, match=f"settlement '{A}': two results"):
        compute_metrics(fills, twice)
    bad = [
        *fills[:1],
        fill("2024-01-10T15:00", C, "yes", "buy", "0.5", 1, "0.02", taker=True, city="gotham"),
    ]
    with pytest.raises(ValueError, match="city 'gotham'"):
        compute_metrics(bad, settlements)


@pytest.mark.parametrize(
    ("hazard", "regime"),
    [
        (None, "n/a"),
        (math.nan, "n/a"),
        (0.0, "low"),
        (0.1999, "low"),
        (0.2, "mid"),
        (0.6, "mid"),
        (0.61, "high"),
    ],
)
def test_hazard_regimes(hazard: float | None, regime: str) -> None:
    assert hazard_regime(hazard) == regime
