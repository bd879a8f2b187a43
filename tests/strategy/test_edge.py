"""The edge gate: entries only in cells whose measured gain interval is above zero."""

from __future__ import annotations

import math

from kwx.engine.ports import PlaceLimit, PlaceTaker
from kwx.pmf.edge_cells import EdgeCell, EdgeCells, hour_bucket, price_bucket
from kwx.strategy.config import ExecutionConfig, StrategyConfig
from kwx.strategy.edge import edge_verdict
from kwx.strategy.value import ValueStrategy
from tests.engine.helpers import EVENT, D, account, bracket, minute, position, snapshot

A = f"{EVENT}-B40.5"
# minute(0) is noon CST: local hour 12 of the climate day, bucket 12–16; p 0.47: 0.35–0.65.
HOUR, PRICE = hour_bucket(12.0), price_bucket(0.47)


def _cell(lo: float, hi: float, *, hour: int = HOUR, price: int = PRICE) -> EdgeCell:
    return EdgeCell("chicago", hour, price, (lo + hi) / 2, lo, hi, 40, 4000)


def _strategy(cells: EdgeCells | None) -> ValueStrategy:
    return ValueStrategy(StrategyConfig(), edge_cells=cells)


def _entry() -> list[object]:
    return [bracket(A, "0.40", "0.44", p=0.47)]


MAKER = PlaceLimit(A, "yes", "buy", D("0.41"), D("10"), "maker edge 0.06")


def test_buckets() -> None:
    assert (hour_bucket(0.0), hour_bucket(11.99), hour_bucket(12.0), hour_bucket(23.9)) == (
        0,
        2,
        3,
        5,
    )
    assert (price_bucket(0.0), price_bucket(0.049), price_bucket(0.05)) == (0, 0, 1)
    assert (price_bucket(0.5), price_bucket(0.95), price_bucket(1.0)) == (3, 6, 6)


def test_a_cell_whose_interval_is_above_zero_allows_the_entry() -> None:
    s = _strategy(EdgeCells([_cell(0.001, 0.02)]))
    out = s.on_event(snapshot(minute(0), _entry()), account())  # type: ignore[arg-type]
    assert out == [MAKER]
    assert s.entry_block("chicago") is None


def test_a_cell_whose_interval_reaches_zero_or_below_blocks_it() -> None:
    for lo, hi in ((0.0, 0.02), (-0.01, 0.03), (-0.02, -0.001)):
        s = _strategy(EdgeCells([_cell(lo, hi)]))
        assert s.on_event(snapshot(minute(0), _entry()), account()) == []  # type: ignore[arg-type]
        verdict = edge_verdict(s.edge_cells, "chicago", 12.0, 0.47)
        assert not verdict.ok and "not above 0" in verdict.reason
        assert "no cell of chicago" in str(s.entry_block("chicago"))


def test_an_open_cell_elsewhere_does_not_open_this_one() -> None:
    """Open at another hour and another price, shut here: nothing enters here."""
    cells = EdgeCells([_cell(0.01, 0.02, hour=HOUR + 1), _cell(0.01, 0.02, price=PRICE + 1)])
    s = _strategy(cells)
    assert s.on_event(snapshot(minute(0), _entry()), account()) == []  # type: ignore[arg-type]
    assert "no measured cell" in edge_verdict(cells, "chicago", 12.0, 0.47).reason
    # Four hours later (bucket 16–20) the open cell lets the same bracket in.
    later = s.on_event(snapshot(minute(240), _entry()), account())  # type: ignore[arg-type]
    assert later == [MAKER]


def test_no_measured_cells_enters_nothing_and_says_so_but_still_exits() -> None:
    s = _strategy(None)
    assert s.on_event(snapshot(minute(0), _entry()), account()) == []  # type: ignore[arg-type]
    block = s.entry_block("chicago")
    assert block is not None and "no measured cells for chicago" in block
    assert "no entries" in block
    # Holding YES the model now prices far below the bid: the exit is never gated.
    held = [bracket(A, "0.60", "0.62", p=0.30)]
    holding = account(positions={A: position(A, "10", "5.00")})
    out = s.on_event(snapshot(minute(0), held), holding)
    assert any(isinstance(i, PlaceTaker) and i.action == "sell" for i in out)


def test_the_gate_off_ignores_the_cells() -> None:
    cfg = StrategyConfig(execution=ExecutionConfig(edge_gate=False))
    s = ValueStrategy(cfg, edge_cells=EdgeCells([_cell(-0.02, -0.01)]))
    assert s.on_event(snapshot(minute(0), _entry()), account()) == [MAKER]  # type: ignore[arg-type]
    assert s.entry_block("chicago") is None


def test_no_p_mkt_is_no_cell() -> None:
    cells = EdgeCells([_cell(0.01, 0.02)])
    assert not edge_verdict(cells, "chicago", 12.0, None).ok
    assert not edge_verdict(cells, "chicago", 12.0, math.nan).ok
    assert edge_verdict(cells, "chicago", 12.0, 0.47).ok
