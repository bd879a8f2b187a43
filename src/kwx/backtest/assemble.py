"""The last step from a panel to what the feed replays: screens, wake-ups and columns.

The backtest (`kwx.backtest.runner.prepare`) and the live loop (`kwx.live.features`) reach
this point by different roads — the backtest computes its signals over a whole range, the
live loop over today's grid widened by the days before it — and must agree field by field
from here on: the live snapshot is tested to equal the backtest's. Keeping the assembly in
one function is what makes that a property of the code rather than of two copies.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kwx.backtest.feed import FEED_COLUMNS, FeedArrays
from kwx.backtest.loader import MINUTES_PER_DAY
from kwx.backtest.panel import Panel
from kwx.strategy.signals import SignalTerms
from kwx.strategy.value import ValueStrategy

__all__ = ["DERIVED_COLUMNS", "PANEL_FEED_COLUMNS", "feed_arrays"]

FloatArray = npt.NDArray[np.float64]

# Feed columns computed here (the pooled p, the signal and its terms); every other one is
# the panel's column as it is.
DERIVED_COLUMNS = ("p", "signal", "ras_z", "velocity_z", "flow_pct", "hazard_score", "relative_cal")
PANEL_FEED_COLUMNS = tuple(c for c in FEED_COLUMNS if c not in DERIVED_COLUMNS)


def feed_arrays(
    panel: Panel,
    strategy: ValueStrategy,
    *,
    p: FloatArray,
    bid: FloatArray,
    ask: FloatArray,
    quote_source: npt.NDArray[np.int8],
    terms: SignalTerms,
) -> FeedArrays:
    """FeedArrays for a panel: the entry screen (gates, signal, no new orders near the
    close), a wake-up at each event's time stop (risk cancels resting orders and may flatten
    there), the exit screens (none once the market has closed) and the feed columns.

    ``p`` is the pooled probability on the (E, T, K) grid; ``terms`` are flat (E·T, K).
    """
    cfg = strategy.config
    e_n, _, k_n = panel.shape
    c = panel.cols

    def grid(x: FloatArray) -> FloatArray:
        return x.reshape(e_n, MINUTES_PER_DAY, k_n)

    signal = grid(terms.signal)
    entry = strategy.screen(
        p=p, yes_bid=bid, yes_ask=ask, volume_20m=c["volume_20m"], signal=signal
    )
    mtc = c["minutes_to_close"][:, :, 0]
    screen = np.asarray(
        (entry & (c["minutes_to_close"] > cfg.risk.no_new_orders_min)).any(axis=2), dtype=bool
    )
    stop = np.argmax(mtc <= cfg.risk.time_stop_min, axis=1)
    has_stop = (mtc <= cfg.risk.time_stop_min).any(axis=1)
    screen[np.flatnonzero(has_stop), stop[has_stop]] = True
    exit_yes, exit_no = strategy.exit_screen(p=p, yes_bid=bid, yes_ask=ask)
    still_open = mtc[:, :, None] > 0
    columns = {
        "p": p,
        "signal": signal,
        **{name: c[name] for name in PANEL_FEED_COLUMNS},
        "ras_z": grid(terms.ras_z),
        "velocity_z": grid(terms.velocity_z),
        "flow_pct": grid(terms.flow_pct),
        "hazard_score": grid(terms.hazard),
        "relative_cal": grid(terms.relative_cal),
    }
    return FeedArrays(
        events=panel.events,
        columns=columns,
        yes_bid=bid,
        yes_ask=ask,
        quote_source=quote_source,
        screen=screen,
        exit_yes=exit_yes & still_open,
        exit_no=exit_no & still_open,
    )
