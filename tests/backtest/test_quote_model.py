"""The rebuilt-quote model's rules on a generated book: a consumed level is gone, a crossed pair
is widened, the touch is monotone in the quantile, the depth is limited, and it round-trips
through its stored JSON. (The real-data checks are in ``test_quote_check.py``.)"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pytest

from kwx.backtest.quote_model import QuoteInputs, QuoteModel

FloatArray = npt.NDArray[np.float64]


def _book(n: int, seed: int) -> tuple[QuoteInputs, FloatArray, FloatArray, FloatArray]:
    """A generated market: a real touch around a wandering mid, prints that lifted it some
    minutes ago (the book has moved since, by an amount growing with the age)."""
    rng = np.random.default_rng(seed)
    mid = rng.uniform(0.05, 0.95, n)
    half = rng.integers(1, 8, n) / 100
    bid, ask = np.round(mid - half, 2), np.round(mid + half, 2)
    ask_age = rng.integers(0, 90, n).astype(np.float64)
    bid_age = rng.integers(0, 90, n).astype(np.float64)

    def drift(age: FloatArray) -> FloatArray:
        return np.asarray(rng.normal(0, 0.004, n) * np.sqrt(age + 1), dtype=np.float64)

    ask_print = np.clip(np.round(ask + drift(ask_age), 2), 0.01, 0.99).astype(np.float64)
    bid_print = np.clip(np.round(bid + drift(bid_age), 2), 0.01, 0.99).astype(np.float64)
    ask_print[rng.random(n) < 0.1] = np.nan
    sizes = rng.integers(1, 60, 5 * n).astype(np.float64)
    return QuoteInputs(ask_print, ask_age, bid_print, bid_age), bid, ask, sizes


@pytest.fixture(scope="module")
def fitted() -> QuoteModel:
    x, bid, ask, sizes = _book(20_000, 1)
    return QuoteModel().fit(x, bid, ask, sizes)


def test_fit_learns_state_ending_in_underscore_and_predict_needs_it() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        QuoteModel().predict(_book(10, 2)[0])
    with pytest.raises(ValueError, match=r"q_ask must be in \[0, 1\]"):
        QuoteModel(q_ask=1.5)


def test_a_consumed_level_is_gone(fitted: QuoteModel) -> None:
    x, _, _, _ = _book(5_000, 3)
    for q in (0.0, 0.1, 0.5, 0.9):
        bid, ask = fitted.predict(x, q_ask=q, q_bid=q)
        fresh_a = ~np.isnan(x.ask_print) & ~np.isnan(ask)
        fresh_b = ~np.isnan(x.bid_print) & ~np.isnan(bid)
        assert (ask[fresh_a] >= x.ask_print[fresh_a] - 1e-12).all()
        assert (bid[fresh_b] <= x.bid_print[fresh_b] + 1e-12).all()
    # Even at the lowest quantile, where the learnt offset alone would go below the print.
    raw_low = x.ask_print + fitted._offset("ask", fitted._sides(x)[0].fine, 0.0)
    assert (raw_low[~np.isnan(raw_low)] < x.ask_print[~np.isnan(raw_low)]).any()


def test_a_crossed_pair_is_widened_not_a_one_cent_market(fitted: QuoteModel) -> None:
    n = 200
    x = QuoteInputs(
        ask_print=np.full(n, 0.40),
        ask_age=np.linspace(0, 100, n),
        bid_print=np.full(n, 0.45),  # a NO taker sold YES at 0.45, above the last YES buy
        bid_age=np.linspace(100, 0, n),
    )
    bid, ask = fitted.predict(x)
    spread = ask - bid
    assert np.isfinite(spread).all()
    assert (spread >= max(fitted.crossed_spread(fitted.q_ask), 0.02) - 1e-9).all()
    assert (ask >= 0.40).all() and (bid <= 0.45).all()  # the consumed levels stay gone
    # The old rule would have made these 1 ¢ markets.
    assert spread.min() > 0.01


def test_monotone_in_the_quantile(fitted: QuoteModel) -> None:
    x, _, _, _ = _book(3_000, 4)
    qs = np.linspace(0, 1, 11)
    asks = np.array([fitted.predict(x, q_ask=q)[1] for q in qs])
    bids = np.array([fitted.predict(x, q_bid=q)[0] for q in qs])
    ok_a = np.isfinite(asks).all(axis=0)
    ok_b = np.isfinite(bids).all(axis=0)
    assert (np.diff(asks[:, ok_a], axis=0) >= -1e-12).all()
    assert (np.diff(bids[:, ok_b], axis=0) <= 1e-12).all()
    assert (asks[-1, ok_a] > asks[0, ok_a]).any()  # and it does move


def test_a_high_quantile_is_not_kinder_than_the_book_out_of_sample(fitted: QuoteModel) -> None:
    x, bid, ask, _ = _book(20_000, 5)  # another draw: not the fit sample
    b, a = fitted.predict(x)
    ok = np.isfinite(a)
    assert np.mean(a[ok] < ask[ok]) <= 0.12
    ok = np.isfinite(b)
    assert np.mean(b[ok] > bid[ok]) <= 0.12


def test_each_minute_reads_only_its_own_inputs(fitted: QuoteModel) -> None:
    """No look-ahead within the model: changing later minutes' prints moves no earlier one."""
    x, _, _, _ = _book(1_000, 6)
    before = fitted.predict(x)
    later = QuoteInputs(
        *(np.concatenate([v[:500], v[500:][::-1]]) for v in vars(x).values() if v is not None)
    )
    after = fitted.predict(later)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b[:500], a[:500])


def test_depth_is_limited_per_level(fitted: QuoteModel) -> None:
    size = Decimal(int(fitted.touch_size_))
    assert size >= 1
    levels = fitted.levels_for(Decimal(1000))
    assert [lvl for lvl, _ in levels] == list(range(fitted.levels))
    assert all(q == size for _, q in levels)
    assert sum(q for _, q in levels) < Decimal(1000)  # the rest is left
    assert fitted.levels_for(size / 2) == [(0, size / 2)]


def test_json_round_trip_predicts_the_same(fitted: QuoteModel) -> None:
    x, _, _, _ = _book(2_000, 7)
    again = QuoteModel.from_json(fitted.to_json())
    for a, b in zip(fitted.predict(x), again.predict(x), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="refit"):
        QuoteModel.from_json('{"format": 0}')
