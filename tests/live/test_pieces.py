"""The live loop's pieces on their own: touch without our orders, client ids, the market data,
the venue's accounting, and live mode's two locks (TRADE_MODE=live and --live)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from typer.testing import CliRunner

from kwx.backtest.loader import EventMeta
from kwx.cli import app
from kwx.config import Settings, TradeMode
from kwx.domain.brackets import Bracket
from kwx.live.kalshi_venue import _Held, v2_side
from kwx.live.market_data import LiveMarketData
from kwx.live.order_ledger import client_order_id
from kwx.live.runner import refuse_live
from kwx.live.source import touch_without

D = Decimal
UTC = dt.UTC
START = dt.datetime(2024, 12, 5, 6, 0, tzinfo=UTC)
EVENT = EventMeta(
    event_ticker="KXHIGHCHI-24DEC05",
    series_ticker="KXHIGHCHI",
    city="chicago",
    climate_date=dt.date(2024, 12, 5),
    day_start=START,
    close_time=dt.datetime(2024, 12, 6, 4, 59, tzinfo=UTC),
    tickers=("KXHIGHCHI-24DEC05-T24", "KXHIGHCHI-24DEC05-B24.5"),
    brackets=(Bracket.from_strikes("less", None, 24), Bracket.from_strikes("between", 24, 25)),
    results=(None, None),
    fee_type="quadratic",
)
runner = CliRunner()


def test_touch_leaves_out_only_our_own_size() -> None:
    bids = {D("0.40"): D(25), D("0.41"): D(10)}
    asks = {D("0.45"): D(25), D("0.44"): D(5)}
    assert touch_without(bids, asks) == (D("0.41"), D("0.44"))
    # Our 10 at 0.41 is the whole level: the market's bid is 0.40. Our 3 of the 5 at 0.44
    # leave 2 of someone else's: the ask stays.
    own = ({D("0.41"): D(10)}, {D("0.44"): D(3)})
    assert touch_without(bids, asks, own) == (D("0.40"), D("0.44"))
    own = ({D("0.40"): D(25), D("0.41"): D(10)}, {D("0.44"): D(5), D("0.45"): D(25)})
    assert touch_without(bids, asks, own) == (None, None)


def test_v2_sides_quote_the_yes_leg() -> None:
    assert v2_side("yes", "buy", D("0.30")) == ("bid", D("0.30"))
    assert v2_side("yes", "sell", D("0.30")) == ("ask", D("0.30"))
    assert v2_side("no", "buy", D("0.30")) == ("ask", D("0.70"))
    assert v2_side("no", "sell", D("0.30")) == ("bid", D("0.70"))


def test_client_order_id_is_named_by_the_decision() -> None:
    at = dt.datetime(2024, 12, 5, 14, 37, tzinfo=UTC)
    args = ("http://x", "T", "yes", "buy", "limit", D("0.30"), D(10), at)
    first = client_order_id(*args, 0)  # type: ignore[arg-type]
    assert first == client_order_id(*args, 0)  # type: ignore[arg-type]
    # The same decision spelled differently is the same decision.
    assert first == client_order_id(
        "http://x", "T", "yes", "buy", "limit", D("0.300"), D("10.00"), at, 0
    )
    others = {
        client_order_id(*args, 1),  # type: ignore[arg-type]
        client_order_id("http://x", "T", "yes", "buy", "limit", D("0.31"), D(10), at, 0),
        client_order_id(
            "http://x",
            "T",
            "yes",
            "buy",
            "limit",
            D("0.30"),
            D(10),
            at + dt.timedelta(minutes=1),
            0,
        ),
        client_order_id("http://y", "T", "yes", "buy", "limit", D("0.30"), D(10), at, 0),
    }
    assert first not in others and len(others) == 4


def test_market_data_keeps_each_print_once_and_closes_candles_with_the_touch() -> None:
    m = LiveMarketData("chicago", [EVENT], "v1")
    t = START + dt.timedelta(minutes=10, seconds=5, microseconds=123_456)
    ticker = EVENT.tickers[1]
    assert m.add_trade("a", ticker, t, D("0.40"), D(3), "yes")
    assert not m.add_trade("a", ticker, t + dt.timedelta(seconds=1), D("0.41"), D(3), "yes")
    assert not m.add_trade("z", "OTHER-T1", t, D("0.40"), D(3), "yes")
    m.add_trade("b", ticker, t + dt.timedelta(seconds=20), D("0.38"), D(2), "no")
    with pytest.raises(ValueError, match="impossible price"):
        m.add_trade("c", ticker, t, D("1.2"), D(1), "yes")
    raw = m.raw()
    assert raw.trades["ts_us"][0] % 1000 == 0  # floored to the millisecond, as the stream
    minute = int(t.timestamp()) // 60
    [bar] = raw.candles
    assert (bar["minute"], bar["low"], bar["high"], bar["close"], bar["volume"]) == (
        minute, 0.38, 0.40, 0.38, 5.0,
    )  # fmt: skip
    assert np.isnan(bar["bid"]) and bar["has_trade"]
    # The touch read at the next boundary closes this minute's candle; an empty side is
    # Kalshi's 0/1 (no quote), not unknown.
    m.set_touch(ticker, START + dt.timedelta(minutes=11), 0.37, None)
    [bar] = m.raw().candles
    assert (bar["bid"], bar["ask"]) == (0.37, 1.0)


def test_positions_follow_kalshis_accounting() -> None:
    held = _Held("E", "chicago")
    held.apply("bid", D("0.40"), D(10), D("0.17"))  # buy 10 YES at 0.40
    held.apply("ask", D("0.50"), D(4), D("0.07"))  # sell 4 YES at 0.50 = buy 4 NO at 0.50
    assert held.position == D(6)
    assert held.cost == D("2.40")
    assert held.realized == D("0.40")  # 4 × (0.50 − 0.40)
    assert held.fees == D("0.24")
    held.apply("ask", D("0.30"), D(8), D(0))  # closes 6 YES, opens 2 NO at 0.70
    assert held.position == D(-2) and held.cost == D("1.40")
    assert held.realized == D("0.40") + D(6) * (D("0.30") - D("0.40"))


def test_live_mode_needs_both_locks() -> None:
    paper = Settings(trade_mode=TradeMode.PAPER)
    live = Settings(trade_mode=TradeMode.LIVE)
    assert refuse_live(paper, True) is not None and "TRADE_MODE=live" in str(
        refuse_live(paper, True)
    )
    assert "--live" in str(refuse_live(live, False))
    assert refuse_live(live, True) is None


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run", "--mode", "live", "--live"], {"TRADE_MODE": "paper"}, "TRADE_MODE=live"),
        (["run", "--mode", "live"], {"TRADE_MODE": "live"}, "--live"),
        (["run", "--mode", "paper", "--live"], {"TRADE_MODE": "live"}, "--mode live only"),
        (["run", "--mode", "yolo"], {}, "expected paper or live"),
    ],
)
def test_kwx_run_refuses_live_without_both_locks(
    args: list[str], env: dict[str, str], message: str
) -> None:
    from kwx.config import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(app, args, env={"COLUMNS": "200", **env})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert message in result.output
