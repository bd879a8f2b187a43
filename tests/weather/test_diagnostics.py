"""Diagnostics: hand-computed reliability and PIT, and the checks on a real model run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from kwx.weather.diagnostics import (
    hazard_trace,
    morning_cases,
    pit_values,
    plot_hazard_trace,
    plot_pit,
    plot_pmf_sum,
    plot_reliability,
    pmf_sum,
    reliability,
)
from kwx.weather.run_day import run_city_day
from tests.weather.test_run_day import CHICAGO, DAY, EVENT, day  # noqa: F401  (fixture)

Conn = psycopg.Connection[tuple[object, ...]]


def test_reliability_and_pit_by_hand() -> None:
    cases = [(np.array([0.25, 0.75]), 1), (np.array([0.25, 0.75]), 0)]
    table = reliability(cases, bins=4)
    low = table[table["bin_lo"] == 0.25].iloc[0]  # the two 0.25 forecasts: one came true
    high = table[table["bin_lo"] == 0.5].iloc[0]  # [0.5, 0.75) holds nothing: 0.75 is above
    assert (low["n"], low["mean_predicted"], low["observed_frequency"]) == (2, 0.25, 0.5)
    assert high["n"] == 0
    top = table[table["bin_lo"] == 0.75].iloc[0]
    assert (top["n"], top["observed_frequency"]) == (2, 0.5)

    class Fixed:
        def uniform(self) -> float:
            return 0.5

    pit = pit_values(cases, Fixed())  # type: ignore[arg-type]
    assert pit.tolist() == pytest.approx([0.25 + 0.5 * 0.75, 0.5 * 0.25])


def test_checks_on_a_model_run(day: Conn, tmp_path: Path) -> None:  # noqa: F811
    run_city_day(day, CHICAGO, DAY, paths=500)
    day.execute("UPDATE kalshi.markets SET settled_tmax = 86 WHERE event_ticker = %s", (EVENT,))
    day.commit()
    sums = pmf_sum(day, CHICAGO, DAY, DAY)
    assert len(sums) == 1
    assert sums["max_abs_sum_error"].iloc[0] < 1e-12
    assert sums["max_ruled_out_p"].iloc[0] == 0.0
    cases = morning_cases(day, CHICAGO, DAY, DAY, "v1")
    assert len(cases) == 1 and cases[0][1] == 4  # 86 °F wins the 86–87 bracket (5th of 6)
    assert cases[0][0].sum() == pytest.approx(1.0)
    trace = hazard_trace(day, CHICAGO, DAY, DAY)
    assert trace["minutes_from_max"].min() == -360 and trace["days"].max() == 1
    after = trace[trace["minutes_from_max"] > 60]["mean_hazard_60m"]
    assert (after < 0.5).all()  # past the day's high, new highs become unlikely
    plot_pmf_sum(sums, tmp_path / "sum.png", "t")
    plot_reliability(reliability(cases), tmp_path / "rel.png", "t")
    plot_pit(pit_values(cases, np.random.default_rng(0)), tmp_path / "pit.png", "t")
    plot_hazard_trace(trace, tmp_path / "trace.png", "t")
    for name in ("sum.png", "rel.png", "pit.png", "trace.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
