"""The book-gain evaluation: its rows on real quotes, its walk-forward, its verdicts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg
import pytest

from kwx.features.book import BOOK_FEATURES, NS_PER_MIN
from kwx.features.book_data import load_market_book
from kwx.ingest.file_import import import_file
from kwx.ingest.normalize import ImportContext
from kwx.predict.book_gain import (
    BASE_FEATURES,
    book_gain,
    labelled,
    market_feature_rows,
    walk_forward,
)
from kwx.registry import default_registry
from kwx.sources.files import FileKind
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
DAY0 = dt.date(2025, 5, 1)


@needs_data()
def test_rows_of_a_real_new_york_market(conn: Conn) -> None:
    path = DATA / "kalshi" / "top_of_book" / "KXHIGHNY-26JAN04.csv.gz"
    import_file(conn, path, FileKind.TOP_OF_BOOK, ImportContext(default_registry()))
    rows = market_feature_rows(load_market_book(conn, "KXHIGHNY-26JAN04-B31.5"))
    assert len(rows) > 100
    assert set(BASE_FEATURES) | set(BOOK_FEATURES) <= set(rows.columns)
    assert ((rows["mid"] > 0) & (rows["mid"] < 1) & (rows["spread"] > 0)).all()
    assert not rows[list(BASE_FEATURES) + list(BOOK_FEATURES)].isna().any().any()
    # the label's mid is the same market's mid exactly 5 minutes later
    by_ts = dict(zip(rows["ts_ns"], rows["mid"], strict=True))
    for _, r in rows.iloc[::97].iterrows():
        later = by_ts.get(r["ts_ns"] + 5 * NS_PER_MIN)
        if later is not None and np.isfinite(r["mid_ahead_5m"]):
            assert r["mid_ahead_5m"] == later
    # the climate day of Jan 4 ends at midnight EST = 05:00 UTC on Jan 5
    end = pd.Timestamp("2026-01-05T05:00:00Z").value
    np.testing.assert_allclose(rows["minutes_to_day_end"], (end - rows["ts_ns"]) / NS_PER_MIN)


def _synthetic(n_days: int, informative: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_day = 250
    n = n_days * per_day
    frame = pd.DataFrame({c: rng.normal(size=n) for c in (*BASE_FEATURES, *BOOK_FEATURES)})
    frame["climate_date"] = [DAY0 + dt.timedelta(days=i // per_day) for i in range(n)]
    frame["mid"] = 0.5
    drift = frame["velocity"] * 0.3 + (frame["ofi_5m"] * 1.5 if informative else 0.0)
    up = drift + rng.normal(size=n) > 0
    frame["mid_ahead_5m"] = np.where(up, 0.51, 0.49)
    frame["mid_ahead_1m"] = np.nan
    return frame


def test_walk_forward_leaves_out_the_test_day_the_day_before_and_the_future() -> None:
    rows = labelled(_synthetic(12, True, 1), "5m")
    base = walk_forward(rows, BASE_FEATURES)
    day = DAY0 + dt.timedelta(days=8)
    mine = base[base["climate_date"] == day]["p"].to_numpy()
    assert sorted(set(base["climate_date"]))[0] == DAY0 + dt.timedelta(days=5)
    changed = rows.copy()
    later = changed["climate_date"] >= day - dt.timedelta(days=1)  # d − 1, d and after
    changed.loc[later, "y"] = 1 - changed.loc[later, "y"]
    again = walk_forward(changed, BASE_FEATURES)
    np.testing.assert_array_equal(again[again["climate_date"] == day]["p"].to_numpy(), mine)
    # ... while the day before that (d − 2) is training data: changing it moves d's predictions
    earlier = changed["climate_date"] == day - dt.timedelta(days=2)
    changed.loc[earlier, "y"] = 1 - changed.loc[earlier, "y"]
    third = walk_forward(changed, BASE_FEATURES)
    assert not np.array_equal(third[third["climate_date"] == day]["p"].to_numpy(), mine)


def test_an_informative_book_feature_is_found_and_noise_is_not() -> None:
    gain = book_gain(_synthetic(14, True, 2), "synthetic", "5m", n_boot=100)
    assert gain.test_days == 9 and gain.verdict == "ahead" and gain.target_met
    assert gain.delta["roc_auc"][1] > 0.05
    assert gain.delta["brier"][2] < 0  # Brier falls, with its interval below 0
    noise = book_gain(_synthetic(14, False, 3), "synthetic", "5m", n_boot=100)
    assert not noise.target_met and abs(noise.delta["roc_auc"][0]) < 0.02
    assert noise.verdict != "ahead"


def test_unknown_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        labelled(_synthetic(3, True, 4), "7m")
