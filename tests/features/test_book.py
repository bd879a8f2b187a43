"""Book features on hand-made event sequences, with values computed by hand, and causality."""

from __future__ import annotations

import numpy as np
import pytest

from kwx.features.book import (
    BOOK_FEATURES,
    NS_PER_MIN,
    RAW_FEATURES,
    BookDataError,
    Quotes,
    Trades,
    aggressive_orders,
    book_features,
    fill_book_features,
    replay_l2,
    touch_depletions,
    unit_or_sized_ofi,
)

S = 1_000_000_000  # ns per second
NAN = float("nan")


def _sized() -> Quotes:
    return Quotes(
        np.array([0, 10, 70, 130]) * S,
        np.array([0.40, 0.40, 0.41, 0.39]),
        np.array([0.45, 0.45, 0.44, 0.46]),
        np.array([10.0, 12.0, 3.0, 7.0]),
        np.array([5.0, 5.0, 4.0, 2.0]),
    )


def test_sized_ofi_follows_cont_kukanov_stoikov() -> None:
    # t1: bid size 10 → 12 at the same price: +12 − 10; ask unchanged: +5 − 5      →  2
    # t2: bid up to 0.41 (size 3): +3; ask down to 0.44 (size 4): −4               → −1
    # t3: bid down to 0.39: −3 (the old size); ask up to 0.46: +4 (the old size)    →  1
    assert unit_or_sized_ofi(_sized()).tolist() == [0.0, 2.0, -1.0, 1.0]


def test_unit_ofi_counts_ticks_and_ignores_empty_sides() -> None:
    q = Quotes.unsized(
        np.array([0, 1, 2, 3, 4]) * S,
        [0.40, 0.42, 0.42, NAN, 0.41],
        [0.45, 0.45, 0.47, 0.47, 0.43],
    )
    # bid up +1 / ask same 0; bid same 0 / ask up +1; bid to empty 0 / ask same 0;
    # bid from empty 0 / ask down −1
    assert unit_or_sized_ofi(q).tolist() == [0.0, 1.0, 1.0, 0.0, -1.0]
    # depletions: the ask up-tick at 2 s and the bid vanishing at 3 s
    assert touch_depletions(q).tolist() == [2 * S, 3 * S]


def test_minute_windows_spread_and_queue_imbalance() -> None:
    grid = np.array([1, 2, 3]) * NS_PER_MIN  # minute ends: 60 s, 120 s, 180 s
    f = book_features(grid, _sized()).columns
    # minute 1 sees the events at 0 s and 10 s; minute 2 the one at 70 s; minute 3 at 130 s
    assert f["ofi_1m"].tolist() == [2.0, -1.0, 1.0]
    assert f["ofi_5m"].tolist() == [2.0, 1.0, 2.0]
    assert f["quote_changes_1m"].tolist() == [2.0, 1.0, 1.0]
    assert np.allclose(f["spread"], [0.05, 0.03, 0.07])
    assert np.isnan(f["d_spread_1m"][0])  # no quote a minute before the first minute's end
    assert np.allclose(f["d_spread_1m"][1:], [-0.02, 0.04])
    assert np.allclose(f["queue_imbalance"], [(12 - 5) / 17, (3 - 4) / 7, (7 - 2) / 9])
    # no cancels or trades were given: NaN, not zero
    assert np.isnan(f["cancel_1m"]).all() and np.isnan(f["trade_imbalance_5m"]).all()


def test_an_event_at_the_minute_end_belongs_to_the_next_minute() -> None:
    q = Quotes.unsized(np.array([0, 60]) * S, [0.40, 0.41], [0.45, 0.45])
    f = book_features(np.array([1, 2]) * NS_PER_MIN, q)
    assert f.columns["ofi_1m"].tolist() == [0.0, 1.0]
    assert f.mid == pytest.approx([0.425, 0.43])


def test_trade_sign_imbalance_over_five_minutes() -> None:
    q = Quotes.unsized(np.array([0]), [0.40], [0.45])
    trades = Trades(
        np.array([20, 50, 400]) * S,
        np.array([0.45, 0.40, 0.45]),
        np.array([3.0, 1.0, 2.0]),
        np.array([1.0, -1.0, 1.0]),
    )
    f = book_features(np.array([5, 6, 7]) * NS_PER_MIN, q, trades).columns
    # [0 s, 300 s): 3 bought, 1 sold → 0.5; [60 s, 360 s): none → 0; [120 s, 420 s): +2 → 1
    assert f["trade_imbalance_5m"].tolist() == [0.5, 0.0, 1.0]
    assert f["trades_5m"].tolist() == [4.0, 0.0, 2.0]


def test_prints_of_one_sweep_are_one_aggressive_order() -> None:
    t = np.array([0, 0, 500_000_000, 2 * S, 4 * S, 4 * S + 900_000_000, 5 * S + 800_000_000])
    n = t.size
    trades = Trades(t, np.full(n, 0.4), np.ones(n), np.ones(n))
    # 0 s, 0 s and 0.5 s: one order; 2 s; 4 s, 4.9 s and 5.8 s (each within 1 s of the last)
    assert aggressive_orders(trades).tolist() == [0, 2 * S, 4 * S]


def test_l2_replay_separates_cancels_from_trades() -> None:
    # snapshot at 0 s: YES bids 40¢ × 10 and 39¢ × 5, NO bid 55¢ × 5 (YES ask 45¢)
    t = np.array([0, 0, 0, 10, 16, 20, 30]) * S
    snap = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    side = np.array([0, 0, 1, 0, 0, 0, 0])
    price = np.array([40, 39, 55, 40, 40, 39, 40])
    size = np.array([10.0, 5.0, 5.0, -4.0, -3.0, -5.0, -3.0])
    # a taker sold 3 YES at 40¢ at 15 s: it hit the YES bid, explaining the −3 at 16 s
    trades = Trades(np.array([15 * S]), np.array([0.40]), np.array([3.0]), np.array([-1.0]))
    quotes, cancels = replay_l2(t, snap, side, price, size, trades)
    # 10 s: 4 cancelled at the touch; 16 s: traded, not cancelled; 20 s: 39¢ is not the touch;
    # 30 s: the last 3 at 40¢ cancelled
    assert cancels.t_ns.tolist() == [10 * S, 30 * S]
    assert cancels.size.tolist() == [4.0, 3.0]
    assert quotes.t_ns.tolist() == [0, 10 * S, 16 * S, 30 * S]  # 20 s left the touch as it was
    assert quotes.bid_size.tolist() == [10.0, 6.0, 3.0, 0.0]
    assert np.allclose(quotes.bid[:3], 0.40) and np.isnan(quotes.bid[3])
    assert np.allclose(quotes.ask, 0.45) and quotes.ask_size.tolist() == [5.0] * 4
    f = book_features(np.array([1]) * NS_PER_MIN, quotes, trades, cancels).columns
    assert f["cancel_1m"].tolist() == [7.0]


def test_bad_events_are_refused() -> None:
    with pytest.raises(BookDataError, match="non-decreasing"):
        Quotes.unsized(np.array([2, 1]), [0.4, 0.4], [0.5, 0.5])
    with pytest.raises(BookDataError, match="length"):
        Trades(np.array([1]), np.array([0.4, 0.5]), np.array([1.0]), np.array([1.0]))


def test_changes_only_drops_repeated_touches() -> None:
    q = Quotes.unsized(np.array([0, 1, 2, 3]), [0.4, 0.4, NAN, NAN], [0.5, 0.5, 0.5, 0.5])
    assert q.changes_only().t_ns.tolist() == [0, 2]


def _random_day(seed: int, minutes: int) -> tuple[Quotes, Trades]:
    rng = np.random.default_rng(seed)
    n = 40 * minutes
    t = np.sort(rng.integers(0, minutes * NS_PER_MIN, n))
    bid = np.clip(0.40 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n)), 0.01, 0.97)
    ask = bid + rng.choice([0.01, 0.02, 0.03], n)
    sizes = rng.integers(1, 50, (2, n)).astype(np.float64)
    m = 6 * minutes
    tt = np.sort(rng.integers(0, minutes * NS_PER_MIN, m))
    trades = Trades(
        tt,
        rng.uniform(0.3, 0.6, m),
        rng.integers(1, 20, m).astype(float),
        rng.choice([-1.0, 1.0], m),
    )
    return Quotes(t, bid, ask, sizes[0], sizes[1]), trades


def _cut(q: Quotes, tr: Trades, cut_ns: int, seed: int) -> tuple[Quotes, Trades]:
    """Keep everything before ``cut_ns``; replace the rest with a different random future."""
    other_q, other_t = _random_day(seed, 240)
    kq, kt = q.t_ns < cut_ns, tr.t_ns < cut_ns
    fq, ft = other_q.t_ns >= cut_ns, other_t.t_ns >= cut_ns
    quotes = Quotes(
        np.r_[q.t_ns[kq], other_q.t_ns[fq]],
        np.r_[q.bid[kq], other_q.bid[fq]],
        np.r_[q.ask[kq], other_q.ask[fq]],
        np.r_[q.bid_size[kq], other_q.bid_size[fq]],
        np.r_[q.ask_size[kq], other_q.ask_size[fq]],
    )
    trades = Trades(
        np.r_[tr.t_ns[kt], other_t.t_ns[ft]],
        np.r_[tr.price[kt], other_t.price[ft]],
        np.r_[tr.count[kt], other_t.count[ft]],
        np.r_[tr.sign[kt], other_t.sign[ft]],
    )
    return quotes, trades


@pytest.mark.parametrize("with_trades", [True, False])
def test_changing_the_future_leaves_the_past_unchanged(with_trades: bool) -> None:
    quotes, trades = _random_day(1, 240)
    grid = np.arange(1, 241, dtype=np.int64) * NS_PER_MIN
    base = book_features(grid, quotes, trades if with_trades else None, origin_ns=0)
    assert len(base.hawkes_fits) >= 2  # the Hawkes columns are exercised, not all NaN
    for cut_minute in (61, 130, 200):
        cut = cut_minute * NS_PER_MIN
        q2, t2 = _cut(quotes, trades, cut, seed=99 + cut_minute)
        other = book_features(grid, q2, t2 if with_trades else None, origin_ns=0)
        past = grid <= cut
        for name in RAW_FEATURES:
            np.testing.assert_array_equal(
                base.columns[name][past], other.columns[name][past], err_msg=name
            )
        np.testing.assert_array_equal(base.mid[past], other.mid[past])
        # and the future did change (the check can fail)
        assert not np.array_equal(base.columns["ofi_5m"][~past], other.columns["ofi_5m"][~past])


def test_fill_adds_indicators_and_leaves_no_nan() -> None:
    q = Quotes.unsized(np.array([0, 30]) * S, [0.40, 0.41], [0.45, 0.45])
    raw = book_features(np.array([1, 2]) * NS_PER_MIN, q).columns
    filled = fill_book_features(raw)
    assert list(filled) == list(BOOK_FEATURES)
    assert all(not np.isnan(v).any() for v in filled.values())
    assert filled["no_depth"].tolist() == [1.0, 1.0]
    assert filled["no_trades"].tolist() == [1.0, 1.0]
    assert filled["no_l2"].tolist() == [1.0, 1.0]
    assert filled["no_hawkes"].tolist() == [1.0, 1.0]
    assert filled["ofi_1m"].tolist() == [1.0, 0.0]
