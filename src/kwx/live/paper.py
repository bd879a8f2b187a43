"""Paper trading: the backtest's simulated venue matching against live prints.

Paper and backtest differ only in their data (DESIGN.md, principle 1): the venue is
:class:`~kwx.engine.sim_venue.SimulatedVenue` with one of the backtest's fill models
(:mod:`kwx.backtest.fills`), and its :class:`~kwx.engine.tape.MarketTape` is
:class:`LiveTape`, the prints the live loop has heard so far (the stream, completed by REST).
The venue only ever matches data before the step it is advanced to, which the loop has
completely by then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kwx.backtest.fills import make_fill_model
from kwx.engine.sim_venue import SimulatedVenue
from kwx.engine.tape import EMPTY_BARS, EMPTY_PRINTS, L2Levels, MinuteBars, Prints, bars_from_prints
from kwx.live.market_data import LiveMarketData
from kwx.strategy.config import StrategyConfig

__all__ = ["LiveTape", "paper_venue"]


class LiveTape:
    """A :class:`~kwx.engine.tape.MarketTape` over the cities' live market data."""

    def __init__(self, markets: Sequence[LiveMarketData]) -> None:
        self._markets = {t: m for m in markets for t in m.tickers}
        self._cache: dict[str, tuple[int, Prints, MinuteBars]] = {}

    def prints(self, ticker: str) -> Prints:
        return self._arrays(ticker)[0]

    def bars(self, ticker: str) -> MinuteBars:
        return self._arrays(ticker)[1]

    def book(self, ticker: str) -> L2Levels | None:
        del ticker  # depth from the stream is not kept: the queue model assumes it
        return None

    def _arrays(self, ticker: str) -> tuple[Prints, MinuteBars]:
        market = self._markets.get(ticker)
        if market is None:
            return EMPTY_PRINTS, EMPTY_BARS
        raw = market.raw()
        tid = market.tid_of[ticker]
        n = len(raw.trades)
        cached = self._cache.get(ticker)
        if cached is not None and cached[0] == n:
            return cached[1], cached[2]
        rows = raw.trades[raw.trades["tid"] == tid]
        prints = Prints(
            ts_ns=rows["ts_us"].astype(np.int64) * 1_000,
            yes_price=rows["price"].astype(np.int64),
            count=rows["count"].astype(np.int64),
            taker_yes=rows["taker_yes"].astype(bool),
        )
        bars = bars_from_prints(prints)
        self._cache[ticker] = (n, prints, bars)
        return prints, bars


def paper_venue(
    markets: Sequence[LiveMarketData],
    fill_model: str,
    config: StrategyConfig,
    *,
    run_id: int,
    fee_types: Mapping[str, str],
) -> SimulatedVenue:
    """The backtest's venue on live prints; ids are prefixed by the run (unique in exec.*)."""
    model = make_fill_model(fill_model, slippage=config.execution.taker_slippage)
    return SimulatedVenue(
        LiveTape(markets), model, fee_types=dict(fee_types), id_prefix=f"paper{run_id}"
    )
