"""`kwx weather run-day` on a small synthetic city-day in a real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
import pytest

from kwx.registry import default_registry
from kwx.weather.run_day import (
    OFF_CADENCE_F,
    load_day,
    load_measurement,
    mask_to_cadence,
    run_city_day,
)

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CHICAGO = default_registry().by_key("chicago")
DAY = dt.date(2024, 7, 1)
START = dt.datetime(2024, 7, 1, 5, tzinfo=UTC) + dt.timedelta(hours=1)  # 00:00 CST
EVENT = "KXHIGHCHI-24JUL01"
LADDER = [
    ("T80", "less", None, 80),
    ("B80.5", "between", 80, 81),
    ("B82.5", "between", 82, 83),
    ("B84.5", "between", 84, 85),
    ("B86.5", "between", 86, 87),
    ("T87", "greater", 87, None),
]


def _hourly(hour: int) -> float:
    """A warm day: 70 °F at dawn, 86 °F at 20Z (3 pm CDT)."""
    return 70.0 + 16.0 * max(0.0, float(np.sin(np.pi * (hour - 11) / 18)))


@pytest.fixture
def day(conn: Conn) -> Conn:
    for code, strike_type, floor, cap in LADDER:
        conn.execute(
            "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
            "strike_type, floor_strike, cap_strike, metadata_source) "
            "VALUES (%s, %s, 'KXHIGHCHI', %s, %s, %s, %s, 'api')",
            (f"{EVENT}-{code}", EVENT, DAY, strike_type, floor, cap),
        )
    issued = dt.datetime(2024, 6, 30, 12, tzinfo=UTC)
    for h in range(0, 26):
        ts = START + dt.timedelta(hours=h)
        conn.execute(
            "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
            "VALUES ('chicago', 'vc', %s, %s, %s)",
            (issued, ts, _hourly(ts.hour) - 1),
        )
        if h < 24:
            conn.execute(
                "INSERT INTO wx.obs (city, source, ts, temp_f) VALUES ('chicago', 'metar', %s, %s)",
                (ts, _hourly(ts.hour)),
            )
    for bucket, rho, sigma in (("0-60m", 0.999, 0.1), ("60-180m", 0.998, 0.12)):
        conn.execute(
            "INSERT INTO wx.mc_params (city, version, lead_bucket, rho, sigma, "
            "date_from, date_to) VALUES ('chicago', 'v1', %s, %s, %s, %s, %s)",
            (bucket, rho, sigma, DAY, DAY),
        )
    for offset, prob in ((0, 0.6), (1, 0.4)):
        conn.execute(
            "INSERT INTO wx.measurement_model (city, source, offset_f, prob, n_days, "
            "date_from, date_to) VALUES ('chicago', 'metar', %s, %s, 10, %s, %s)",
            (offset, prob, DAY, DAY),
        )
    conn.commit()
    return conn


def _p(conn: Conn, until: dt.datetime) -> dict[tuple[str, dt.datetime], float]:
    rows = conn.execute(
        "SELECT ticker, ts, p_wx, hazard_next_60m FROM pmf.minute WHERE ts <= %s", (until,)
    ).fetchall()
    conn.commit()
    return {(str(r[0]), r[1]): (float(str(r[2])), r[3]) for r in rows}  # type: ignore[misc]


def test_a_day_of_probabilities(day: Conn) -> None:
    assert run_city_day(day, CHICAGO, DAY, paths=500) == 1440 * len(LADDER)
    sums = day.execute(
        "SELECT min(s), max(s) FROM (SELECT ts, sum(p_wx) s FROM pmf.minute GROUP BY ts) x"
    ).fetchone()
    assert sums == (pytest.approx(1.0, abs=1e-12), pytest.approx(1.0, abs=1e-12))
    # By 20Z the station has seen 86 °F: every bracket capped below 86 is ruled out.
    late = {
        str(ticker): float(str(p))
        for ticker, p in day.execute(
            "SELECT ticker, p_wx FROM pmf.minute WHERE ts = %s",
            (dt.datetime(2024, 7, 1, 21, tzinfo=UTC),),
        ).fetchall()
    }
    for code in ("T80", "B80.5", "B82.5", "B84.5"):
        assert late[f"{EVENT}-{code}"] == 0.0
    assert late[f"{EVENT}-B86.5"] + late[f"{EVENT}-T87"] == pytest.approx(1.0)
    q = day.execute(
        "SELECT tmax_q05, tmax_q50, tmax_q95 FROM pmf.minute WHERE ts = %s LIMIT 1",
        (dt.datetime(2024, 7, 1, 21, tzinfo=UTC),),
    ).fetchone()
    assert q is not None and 86 <= float(str(q[0])) <= float(str(q[1])) <= float(str(q[2]))


def test_inputs_use_only_the_past(day: Conn) -> None:
    inputs = load_day(day, CHICAGO, DAY)
    assert inputs.obs_source == "metar"
    assert np.isnan(inputs.obs[1:60]).all() and inputs.obs[60] == pytest.approx(_hourly(7))
    # The forecast was 1 °F cold all day. The baseline is the forecast itself; the +1 is the
    # residual at the last observation, which the engine starts from and decays as fitted.
    noon = 12 * 60
    assert inputs.baseline[noon][noon + 60] == pytest.approx(_hourly(19) - 1, abs=0.05)
    last = int(np.flatnonzero(~np.isnan(inputs.obs[: noon + 1]))[-1])
    assert inputs.obs[last] - inputs.baseline[noon][last] == pytest.approx(1.0, abs=0.05)


def test_changing_the_future_leaves_the_past_alone(day: Conn) -> None:
    cut = dt.datetime(2024, 7, 1, 17, tzinfo=UTC)
    run_city_day(day, CHICAGO, DAY, paths=500)
    before = _p(day, cut)
    later = dt.datetime(2024, 7, 1, 21, tzinfo=UTC)
    first_later = {k: v for k, v in _p(day, later).items() if k[1] > cut}
    day.execute("UPDATE wx.obs SET temp_f = temp_f + 9 WHERE ts > %s", (cut,))
    day.execute(
        "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
        "VALUES ('chicago', 'vc', %s, %s, 99)",
        (cut, cut + dt.timedelta(hours=2)),
    )
    day.commit()
    run_city_day(day, CHICAGO, DAY, paths=500)
    assert _p(day, cut) == before
    # ... while the rows after the cut did see the change (the test can fail).
    second_later = {k: v for k, v in _p(day, later).items() if k[1] > cut}
    assert second_later.keys() == first_later.keys()
    assert second_later != first_later


def test_missing_inputs_are_clear_errors(conn: Conn) -> None:
    with pytest.raises(ValueError, match="no KXHIGHCHI markets"):
        run_city_day(conn, CHICAGO, DAY)


def test_the_maximum_is_taken_over_the_minutes_the_source_reports() -> None:
    obs = np.full(1440, np.nan)
    obs[[0, 60]] = 70.0
    base = np.full((1440, 1440), 75.0)
    masked = mask_to_cadence(base, obs, 60)
    # Row 70 is anchored at minute 60: only 60, 120, 180, … can set the maximum.
    kept = np.flatnonzero(masked[70] > OFF_CADENCE_F)
    assert kept.tolist() == list(range(0, 1440, 60))
    # Row 30 is anchored at minute 0, the same phase here.
    assert np.flatnonzero(masked[30] > OFF_CADENCE_F).tolist() == list(range(0, 1440, 60))
    assert mask_to_cadence(base, obs, 1) is base  # a 1-minute source keeps every minute
    # Before any report the phase is unknown: nothing is masked.
    late = np.full(1440, np.nan)
    late[[7, 67]] = 70.0
    masked = mask_to_cadence(base, late, 60)
    assert (masked[:7] == 75.0).all()
    assert np.flatnonzero(masked[100] > OFF_CADENCE_F).tolist() == list(range(7, 1440, 60))


def test_the_month_s_measurement_model_is_preferred(day: Conn) -> None:
    for offset, prob in ((5, 1.0),):
        day.execute(
            "INSERT INTO wx.measurement_model (city, source, month, offset_f, prob, n_days, "
            "date_from, date_to) VALUES ('chicago', 'metar', 7, %s, %s, 10, %s, %s)",
            (offset, prob, DAY, DAY),
        )
    day.commit()
    july = load_measurement(day, CHICAGO, "metar", 7)
    assert july.offsets.tolist() == [5] and july.probs.tolist() == [1.0]
    march = load_measurement(day, CHICAGO, "metar", 3)
    assert march.offsets.tolist() == [0, 1]
    assert load_day(day, CHICAGO, DAY).measurement.offsets.tolist() == [5]  # DAY is in July


def test_a_fitted_diurnal_bias_shifts_the_forecast(day: Conn) -> None:
    plain = load_day(day, CHICAGO, DAY)
    for hour in range(24):
        day.execute(
            "INSERT INTO wx.baseline_bias (city, version, local_hour, mean_f, date_from, "
            "date_to) VALUES ('chicago', 'v1', %s, %s, %s, %s)",
            (hour, 2.0 if hour == 15 else 0.0, DAY, DAY),
        )
    day.commit()
    shifted = load_day(day, CHICAGO, DAY)
    # Row noon (13:00 CDT) keeps the hourly report minutes; the bias sits at the middle of its
    # hour (15:30) and is interpolated between hour middles, so 15:00 and 16:00 get +1 °F.
    noon = 12 * 60
    for minute, shift in ((780, 0.0), (840, 1.0), (900, 1.0), (960, 0.0)):
        expected = plain.baseline[noon][minute] + shift
        assert shifted.baseline[noon][minute] == pytest.approx(expected)


def test_a_fitted_calibration_shift_reaches_the_engine(day: Conn) -> None:
    from kwx.weather.calibration import HourShifts, store_tmax_shift
    from kwx.weather.mc import run_day

    assert load_day(day, CHICAGO, DAY).tmax_shift is None
    fit = HourShifts(np.full(24, 1.0), np.full(24, 2.0), np.full(24, 1.9), 10)
    store_tmax_shift(day, CHICAGO, "v1", fit, DAY, DAY)
    inputs = load_day(day, CHICAGO, DAY)
    assert inputs.tmax_shift is not None and np.all(inputs.tmax_shift == 1.0)
    assert load_day(day, CHICAGO, DAY, calibrated=False).tmax_shift is None
    # The stored pmf is the uncalibrated one moved up a whole degree.
    run_city_day(day, CHICAGO, DAY, paths=500)
    noon = START + dt.timedelta(hours=12)
    q50 = day.execute("SELECT tmax_q50 FROM pmf.minute WHERE ts = %s LIMIT 1", (noon,)).fetchone()
    assert q50 is not None
    plain = load_day(day, CHICAGO, DAY, calibrated=False)
    times = np.array([12 * 60])
    base = run_day(
        plain.baseline[times],
        plain.obs,
        plain.params,
        plain.measurement,
        plain.brackets,
        paths=500,
        rng=np.random.default_rng([0, DAY.toordinal(), sum(map(ord, "chicago"))]),
        times=times,
    )
    assert float(str(q50[0])) == base.quantiles[0, 2] + 1
    # Without brackets (days with no markets, for the fit) the inputs still load.
    assert load_day(day, CHICAGO, DAY, brackets=False).brackets == []
