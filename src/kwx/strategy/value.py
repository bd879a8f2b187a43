"""The value strategy: trade where p_fused_norm and the executable price disagree after fees.

A pure object (no I/O, no clock, no state between calls): each call sees one event at one
minute — every bracket's quotes, probabilities, S_j(t) and features, our positions and resting
orders, and what risk allows — and returns order intents. The engine checks every intent
against risk before it reaches a venue, in every mode.

:meth:`ValueStrategy.screen` is the same entry rule vectorised over a whole grid of minutes, a
*superset* of the minutes at which :meth:`on_event` could open a position (it ignores fees,
which only lower an edge). Feeds use it to skip minutes with nothing to do while we hold no
position and no order in the event; the agent visits every minute otherwise.

With ``execution.edge_gate`` (the default) an entry also needs its (city, local hour, p_mkt)
cell to be measured and open (`kwx.strategy.edge`): the strategy trades only where p_fused has
beaten the market out of sample. Without cells (none given, or none measured) it enters
nothing; `entry_block` says so in one line for the run's notes.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

from kwx.domain.climate_day import climate_day_window
from kwx.engine.ports import AccountView, EventSnapshot, Intent
from kwx.pmf.edge_cells import EdgeCells
from kwx.registry import default_registry
from kwx.strategy.config import StrategyConfig
from kwx.strategy.edge import edge_verdict
from kwx.strategy.execution import bracket_intents, gate

__all__ = ["ValueStrategy"]

FloatArray = npt.NDArray[np.float64]


class ValueStrategy:
    """Maker-first value trading on p_fused_norm, gated by S_j(t), volume and spread."""

    name = "value"

    def __init__(
        self, config: StrategyConfig | None = None, edge_cells: EdgeCells | None = None
    ) -> None:
        self.config = config or StrategyConfig()
        self.edge_cells = edge_cells if edge_cells is not None else EdgeCells(())
        self._day_start: dict[tuple[str, dt.date], dt.datetime] = {}

    def params(self) -> dict[str, object]:
        out: dict[str, object] = {"strategy": self.name, **self.config.as_json()}
        if self.config.execution.edge_gate:
            out["edge_cells_open"] = sorted(c.label for c in self.edge_cells.open_cells())
        return out

    def entry_block(self, city: str) -> str | None:
        """One line saying why the edge gate keeps every entry in `city` shut, or None."""
        if not self.config.execution.edge_gate:
            return None
        if city not in self.edge_cells.cities:
            return (
                f"edge gate: no measured cells for {city} (run kwx fusion edge): "
                "no entries — only exits and cancels"
            )
        if not self.edge_cells.open_cells(city):
            return (
                f"edge gate: no cell of {city} has p_fused's gain over p_mkt above 0 "
                "(95% interval): no entries — only exits and cancels"
            )
        return None

    def _local_hour(self, snapshot: EventSnapshot) -> float:
        key = (snapshot.city, snapshot.climate_date)
        start = self._day_start.get(key)
        if start is None:
            tz = default_registry().by_key(snapshot.city).timezone
            start = climate_day_window(tz, snapshot.climate_date)[0]
            self._day_start[key] = start
        return (snapshot.ts - start).total_seconds() / 3600.0

    def on_event(self, snapshot: EventSnapshot, account: AccountView) -> list[Intent]:
        cfg = self.config
        risk = account.risk
        entries = not (risk.killed or risk.no_new_orders or risk.time_stop)
        now_min = snapshot.ts.timestamp() / 60.0
        out: list[Intent] = []
        for k, ticker in enumerate(snapshot.tickers):
            resting = [o for o in account.resting if o.ticker == ticker]
            held = account.position(ticker)
            # Off the screen (a superset of where gates and edge can pass) only held brackets
            # and resting orders need attention; the views of the others are never built.
            if not (snapshot.screened and entries) and not resting and held == 0:
                continue
            b = snapshot.bracket_at(k)
            allowed = entries and snapshot.screened and gate(b, cfg.execution).ok
            if allowed and cfg.execution.edge_gate:
                hour = self._local_hour(snapshot)
                allowed = edge_verdict(self.edge_cells, snapshot.city, hour, b.p_mkt).ok
            out.extend(
                bracket_intents(
                    b,
                    held=held,
                    resting=resting,
                    now_minutes=now_min,
                    fee_type=snapshot.fee_type,
                    cfg=cfg.execution,
                    risk=cfg.risk,
                    entries_allowed=allowed,
                )
            )
        return out

    def screen(
        self,
        *,
        p: FloatArray,
        yes_bid: FloatArray,
        yes_ask: FloatArray,
        volume_20m: FloatArray,
        signal: FloatArray | None,
    ) -> npt.NDArray[np.bool_]:
        """Minutes × brackets at which an entry could pass the gates and the maker edge
        (before fees, so a superset). Arrays are floats, NaN where unknown; without
        ``signal`` the |S| gate is left out."""
        ex = self.config.execution
        improve = float(ex.improve)
        tick = 0.01
        spread = yes_ask - yes_bid
        with np.errstate(invalid="ignore"):
            ok = (p >= ex.p_min) & (p <= ex.p_max)
            ok &= spread <= float(ex.max_spread) + 1e-9
            ok &= volume_20m >= ex.min_volume_20m
            if signal is not None:
                ok &= np.abs(np.nan_to_num(signal)) >= ex.signal_threshold
            yes_limit = np.maximum(np.minimum(yes_bid + improve, yes_ask - tick), yes_bid)
            no_bid, no_ask = 1.0 - yes_ask, 1.0 - yes_bid
            no_limit = np.maximum(np.minimum(no_bid + improve, no_ask - tick), no_bid)
            threshold = float(ex.maker_edge) - 1e-9
            edge = (p - yes_limit >= threshold) | ((1.0 - p) - no_limit >= threshold)
        return np.asarray(ok & edge, dtype=np.bool_)

    def exit_screen(
        self, *, p: FloatArray, yes_bid: FloatArray, yes_ask: FloatArray
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """(YES holding, NO holding) minutes × brackets at which an exit could clear
        ``exit_edge`` — before the fee, so a superset of where :meth:`on_event` exits."""
        ex = self.config.execution
        slip = float(ex.taker_slippage)
        threshold = float(ex.exit_edge) - 1e-9
        with np.errstate(invalid="ignore"):
            exit_yes = (yes_bid - slip) - p >= threshold
            exit_no = ((1.0 - yes_ask) - slip) - (1.0 - p) >= threshold
        return np.asarray(exit_yes, dtype=np.bool_), np.asarray(exit_no, dtype=np.bool_)
