"""The classifiers' data set on hand-built days written through the real tables: labels, ε,
splits and features checked by hand, and no look-ahead in the features."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg
import pytest

from kwx.predict.dataset import (
    build_dataset,
    label_moves,
    labelled_event,
    load_event_panel,
    split_dates,
)
from kwx.predict.features import FEATURES, FeatureError, feature_frame

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
DAY = dt.date(2024, 12, 1)


def _event(day: dt.date) -> str:
    return f"KXHIGHCHI-{day:%y%b%d}".upper()


def _t0(day: dt.date) -> dt.datetime:
    """Noon CST of the climate day."""
    return dt.datetime.combine(day, dt.time(18, 0), tzinfo=UTC)


def _market(
    conn: Conn, day: dt.date, suffix: str, kind: str, lo: int | None, hi: int | None
) -> str:
    ticker = f"{_event(day)}-{suffix}"
    conn.execute(
        "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
        "strike_type, floor_strike, cap_strike, metadata_source) "
        "VALUES (%s, %s, 'KXHIGHCHI', %s, %s, %s, %s, 'api')",
        (ticker, _event(day), day, kind, lo, hi),
    )
    return ticker


def _quote(conn: Conn, ticker: str, ts: dt.datetime, bid: str, ask: str) -> None:
    """A candle of minute `ts` (known from ts + 1 min) with only a closing quote."""
    conn.execute(
        "INSERT INTO md.candles_1m (ticker, ts, source, yes_bid_close, yes_ask_close, volume, "
        "has_trade) VALUES (%s, %s, 'api', %s, %s, 0, false) ON CONFLICT (ticker, ts) DO UPDATE "
        "SET yes_bid_close = excluded.yes_bid_close, yes_ask_close = excluded.yes_ask_close",
        (ticker, ts, bid, ask),
    )


# Quotes of the middle bracket at minutes k after T0 → mid visible from T0 + k + 1:
# .42 from +1, .47 from +4, .47 from +6 (no change), .32 from +9, .325 from +11.
QUOTES = [(0, "0.40", "0.44"), (3, "0.44", "0.50"), (5, "0.46", "0.48"), (8, "0.30", "0.34"),
          (10, "0.30", "0.35")]  # fmt: skip


def _day(conn: Conn, day: dt.date) -> str:
    """Three brackets; only the middle one moves; an hourly observation and weather rows."""
    low = _market(conn, day, "T40", "less", None, 40)
    mid = _market(conn, day, "B40.5", "between", 40, 41)
    high = _market(conn, day, "T41", "greater", 41, None)
    t0 = _t0(day)
    for k, bid, ask in QUOTES:
        _quote(conn, mid, t0 + dt.timedelta(minutes=k), bid, ask)
    _quote(conn, low, t0, "0.30", "0.32")  # constant: never labelled
    _quote(conn, high, t0, "0.20", "0.24")
    conn.execute(
        "INSERT INTO wx.obs (city, source, ts, temp_f) VALUES ('chicago', 'metar', %s, 38.0), "
        "('chicago', 'metar', %s, 41.0)",
        (t0 - dt.timedelta(minutes=30), t0 + dt.timedelta(minutes=30)),
    )
    for k in range(-5, 40):
        for ticker, p in ((low, 0.3), (mid, 0.5), (high, 0.2)):
            conn.execute(
                "INSERT INTO pmf.minute (ticker, ts, mc_version, city, event_ticker, p_wx, "
                "hazard_next_5m, hazard_next_60m) VALUES (%s, %s, 'v1', 'chicago', %s, %s, "
                "0.1, 0.4)",
                (ticker, t0 + dt.timedelta(minutes=k), _event(day), p),
            )
    conn.commit()
    return mid


def _minutes(frame: pd.DataFrame, day: dt.date) -> list[int]:
    return [int((t - _t0(day)).total_seconds() // 60) for t in frame["ts"]]


def test_labels_and_epsilon_by_hand(conn: Conn) -> None:
    mid = _day(conn, DAY)
    panel = load_event_panel(conn, _event(DAY))
    assert len(panel) == 3 * 1440

    one = label_moves(panel, 1, 0.005)
    assert list(one["ticker"]) == [mid] * 3
    assert _minutes(one, DAY) == [3, 8, 10]  # .42→.47, .47→.32, .32→.325
    assert list(one["y"]) == [1, 0, 1]
    assert np.allclose(one["change"], [0.05, -0.15, 0.005])

    five = label_moves(panel, 5, 0.005).sort_values("ts")
    assert _minutes(five, DAY) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert list(five["y"]) == [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]

    # ε = 1¢ drops the half-cent moves (minutes 9 and 10 at 5m; minute 10 at 1m).
    assert _minutes(label_moves(panel, 5, 0.01).sort_values("ts"), DAY) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _minutes(label_moves(panel, 1, 0.01), DAY) == [3, 8]
    # A big ε leaves only the 15¢ drop.
    assert list(label_moves(panel, 1, 0.1)["y"]) == [0]


def test_features_by_hand(conn: Conn) -> None:
    _day(conn, DAY)
    rows, n_panel = labelled_event(conn, _event(DAY), 1, 0.005, "v1")
    assert n_panel == 3 * 1440
    first = rows.iloc[0]  # the middle bracket at T0 + 3: mid .42, quoted .40/.44
    assert first["mid"] == pytest.approx(0.42)
    assert first["spread"] == pytest.approx(0.04)
    assert first["no_quote"] == 0.0
    assert first["left_gap"] == pytest.approx(0.31 - 0.42)  # the low tail's mid .31
    assert first["right_gap"] == pytest.approx(0.22 - 0.42)
    assert first["triad_mass"] == pytest.approx(0.31 + 0.42 + 0.22)
    # 12:03 CST: 11 h 57 min to local standard midnight; civil time 12:03 in December.
    assert first["minutes_to_day_end"] == pytest.approx(717.0)
    assert first["local_hour"] == pytest.approx(12.05)
    # Latest observation 38 °F (30 min old), running max 38; bracket wins on 40..41.
    assert first["temp_above_lo"] == pytest.approx(-2.0)
    assert first["max_below_hi"] == pytest.approx(3.0)
    assert first["ruled_out"] == 0.0
    assert first["p_wx"] == pytest.approx(0.5)
    assert first["wx_edge"] == pytest.approx(0.5 - 0.42)
    assert first["no_wx"] == 0.0
    assert list(rows.columns[4 : 4 + len(FEATURES)]) == list(FEATURES)
    assert not rows[list(FEATURES)].isna().any().any()


def test_missing_columns_and_mids_are_refused(conn: Conn) -> None:
    _day(conn, DAY)
    panel = load_event_panel(conn, _event(DAY))
    with pytest.raises(FeatureError, match="running_max_f"):
        feature_frame(panel.drop(columns=["running_max_f"]))
    with pytest.raises(FeatureError, match="without a mid"):
        feature_frame(panel)  # the first minutes have no quote yet


def test_features_do_not_look_ahead(conn: Conn) -> None:
    """Change everything after a cut-off (quotes, observations, weather rows); the features
    of every row at or before it stay identical."""
    mid = _day(conn, DAY)
    t0 = _t0(DAY)
    cut = t0 + dt.timedelta(minutes=6)

    def past() -> pd.DataFrame:
        panel = load_event_panel(conn, _event(DAY))
        panel = panel[panel["mid"].notna() & (panel["ts"] <= cut)]
        out = pd.concat([panel[["ticker", "ts"]], feature_frame(panel)], axis=1)
        return out.sort_values(["ticker", "ts"]).reset_index(drop=True)

    before = past()
    labels_before = label_moves(load_event_panel(conn, _event(DAY)), 1, 0.005)
    assert len(before) == 3 * 6  # every bracket has a mid from T0 + 1
    # The future: new quotes on every bracket from the cut-off's own minute on (known only
    # after it closes), a heat spike observed after the cut-off, different weather rows.
    for k in range(6, 30):
        _quote(conn, mid, t0 + dt.timedelta(minutes=k), "0.80", "0.90")
        _quote(conn, f"{_event(DAY)}-T40", t0 + dt.timedelta(minutes=k), "0.01", "0.02")
    conn.execute(
        "INSERT INTO wx.obs (city, source, ts, temp_f) VALUES ('chicago', 'metar', %s, 60.0)",
        (cut + dt.timedelta(seconds=1),),
    )
    conn.execute("UPDATE pmf.minute SET p_wx = 0.99, hazard_next_5m = 1 WHERE ts > %s", (cut,))
    conn.commit()
    after = past()
    pd.testing.assert_frame_equal(before, after)
    # The future did change, and with it the labels that look past the cut-off (the
    # quote at T0 + 6 makes the mid jump at T0 + 7), but not those that end before it.
    labels_after = label_moves(load_event_panel(conn, _event(DAY)), 1, 0.005)
    assert _minutes(labels_before, DAY) == [3, 8, 10]
    assert _minutes(labels_after, DAY) == [3, 6, 6]  # both changed brackets jump
    assert labels_after.iloc[0].equals(labels_before.iloc[0])


def test_split_dates_chronological() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(10)]
    parts = split_dates(list(reversed(days)) + days[:3])  # unsorted, repeated
    assert parts == {"train": days[:6], "val": days[6:8], "test": days[8:]}
    five = split_dates(days[:5])
    assert [len(five[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    with pytest.raises(ValueError, match="at least 3 dates"):
        split_dates(days[:2])


def test_build_dataset_over_days(conn: Conn) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(5)]
    for day in days:
        _day(conn, day)
    ds = build_dataset(conn, "chicago", days[0], days[-1], horizon="5m")
    assert ds.events_read == 5
    assert len(ds.rows) == 5 * 10
    assert ds.splits == {"train": days[:3], "val": days[3:4], "test": days[4:]}
    assert (
        ds.rows.groupby("split").size() == pd.Series({"test": 10, "train": 30, "val": 10})
    ).all()
    assert ds.rows["ts"].is_monotonic_increasing
    info = ds.describe()
    assert info["splits"]["val"] == {  # type: ignore[index]
        "from": str(days[3]),
        "to": str(days[3]),
        "dates": 1,
        "rows": 10,
        "positive_rate": 0.5,
    }
    with pytest.raises(ValueError, match="horizon"):
        build_dataset(conn, "chicago", days[0], days[-1], horizon="3m")
    with pytest.raises(ValueError, match="no chicago markets"):
        build_dataset(conn, "chicago", dt.date(2020, 1, 1), dt.date(2020, 1, 5))


def test_features_from_the_full_view_as_the_live_loop_reads_it(conn: Conn) -> None:
    """Rows read straight from feat.minute_panel_full (NUMERIC as Decimal, every column) give
    the same features as the data set's typed read."""
    _day(conn, DAY)
    cur = conn.execute(
        "SELECT * FROM feat.minute_panel_full WHERE event_ticker = %s AND mid IS NOT NULL "
        "AND (mc_version = 'v1' OR mc_version IS NULL) ORDER BY ticker, ts",
        (_event(DAY),),
    )
    full = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or []])
    typed = load_event_panel(conn, _event(DAY))
    typed = typed[typed["mid"].notna()].reset_index(drop=True)
    assert len(full) == len(typed) > 0
    pd.testing.assert_frame_equal(feature_frame(full), feature_frame(typed))
