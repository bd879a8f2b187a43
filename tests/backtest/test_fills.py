"""Each fill model on hand-made prints, bars and books; no model sees data before the order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from kwx.backtest.fills import MakerA, MakerB, QueueFill, TakerOnly, make_fill_model
from kwx.engine.ports import PlaceLimit
from kwx.engine.sim_venue import FillModel, SimulatedVenue
from kwx.engine.tape import ArrayTape, L2Levels, ns_of, to_micro
from tests.engine.helpers import EVENT, D, bracket, minute, snapshot

A = f"{EVENT}-B40.5"
S = dt.timedelta(seconds=1)


def _rest(
    tape: ArrayTape,
    model: FillModel,
    price: str = "0.40",
    count: str = "10",
    side: str = "yes",
    at: int = 1,
    bid: str = "0.40",
    ask: str = "0.45",
) -> SimulatedVenue:
    venue = SimulatedVenue(tape, model)
    snap = snapshot(minute(at), [bracket(A, bid, ask)])
    order, fills = venue.place(PlaceLimit(A, side, "buy", D(price), D(count)), snap)  # type: ignore[arg-type]
    assert order.status == "resting" and not fills
    return venue


def _filled(venue: SimulatedVenue, until: int = 10) -> list[tuple[Decimal, dt.datetime]]:
    return [(f.count, f.ts) for f in venue.advance(minute(until))]


PRINTS = [
    (A, minute(0) + 5 * S, D("30"), D("0.40"), "no"),  # before placement
    (A, minute(2) + 5 * S, D("6"), D("0.40"), "no"),  # at our price, our side
    (A, minute(2) + 9 * S, D("8"), D("0.40"), "yes"),  # a YES taker: hits NO bids, not us
    (A, minute(3) + 5 * S, D("5"), D("0.41"), "no"),  # above our bid: not us
    (A, minute(4) + 5 * S, D("3"), D("0.39"), "no"),  # through our price
]


def test_taker_model_never_fills_a_resting_order() -> None:
    venue = _rest(ArrayTape.from_rows(PRINTS), TakerOnly())
    assert _filled(venue) == []


def test_maker_b_fills_only_from_prints_through_the_limit() -> None:
    # The 6 printed at our price 0.40 may have been the queue ahead of us: no fill (issue 13).
    venue = _rest(ArrayTape.from_rows(PRINTS), MakerB())
    assert _filled(venue) == [(D("3"), minute(4) + 5 * S)]


def test_maker_b_on_the_no_side() -> None:
    # A NO bid at 0.55 is a YES ask at 0.45: YES takers paying ≥ 0.45 hit it.
    prints = [
        (A, minute(2) + S, D("4"), D("0.44"), "yes"),  # NO price 0.56 > 0.55: not through
        (A, minute(2) + 2 * S, D("4"), D("0.45"), "yes"),  # at our price: not through
        (A, minute(2) + 3 * S, D("5"), D("0.47"), "yes"),
    ]
    venue = _rest(ArrayTape.from_rows(prints), MakerB(), price="0.55", side="no")
    assert [c for c, _ in _filled(venue)] == [D("5")]


def test_maker_a_fills_a_share_of_the_volume_of_minutes_that_traded_through_the_limit() -> None:
    venue = _rest(ArrayTape.from_rows(PRINTS), MakerA(participation=0.5))
    # Minute 2: low 0.40 = 0.40, only at the limit: no fill. Minute 3: low 0.41, not reached.
    # Minute 4: low 0.39 < 0.40, volume 3 → 1 (floor of 1.5). Minute 0 was before placement.
    end = dt.timedelta(seconds=60) - dt.timedelta(microseconds=1)
    assert _filled(venue) == [(D("1"), minute(4) + end)]


def test_queue_without_depth_assumes_recent_volume_ahead() -> None:
    # No L2: ahead = prints at 0.40 on our side in the 30 minutes before placement = 30.
    prints = [
        *PRINTS,
        (A, minute(5) + S, D("27"), D("0.40"), "no"),
        (A, minute(6) + S, D("10"), D("0.40"), "no"),
    ]
    model = QueueFill()
    venue = _rest(ArrayTape.from_rows(prints), model)
    # 6 at 0.40 leaves 24 ahead; the print through 0.39 at minute 4 empties the level: fill 10.
    assert _filled(venue) == [(D("10"), minute(4) + 5 * S)]
    assert model.assumed_depth == {A}
    assert any("assumed" in note for note in model.assumptions())


def test_queue_counts_down_before_filling() -> None:
    prints = [
        (A, minute(0) + S, D("12"), D("0.40"), "no"),  # 12 ahead when we join
        (A, minute(2) + S, D("5"), D("0.40"), "no"),  # 7 ahead
        (A, minute(3) + S, D("9"), D("0.40"), "no"),  # 0 ahead, 2 to us
        (A, minute(4) + S, D("20"), D("0.40"), "no"),  # the other 8
    ]
    venue = _rest(ArrayTape.from_rows(prints), QueueFill())
    assert [c for c, _ in _filled(venue)] == [D("2"), D("8")]


def test_queue_is_zero_when_we_improve_on_the_touch() -> None:
    prints = [
        (A, minute(0) + S, D("50"), D("0.41"), "no"),
        (A, minute(2) + S, D("3"), D("0.41"), "no"),
    ]
    venue = _rest(ArrayTape.from_rows(prints), QueueFill(), price="0.41", bid="0.40")
    assert [c for c, _ in _filled(venue)] == [D("3")]


def _book(size_at_40: int) -> L2Levels:
    book = L2Levels()
    book.snapshot_ns.append(ns_of(minute(0)))
    book.snapshots.append({("yes", to_micro(D("0.40"))): size_at_40 * 100})
    return book


def test_queue_with_l2_depth_and_cancels_split_by_probability() -> None:
    book = _book(20)  # 20 ahead of us at 0.40
    level = ("yes", to_micro(D("0.40")))
    # Minute 2: 10 cancel at the level (ahead 20, behind 0 → all ahead: 10 left).
    # Minute 3: a print of 4 at 0.40 and its book decrease (explained, not a cancel): 6 left.
    # Minute 4: a print of 9: 6 ahead, so 3 to us.
    for ts, delta in ((minute(2), -10), (minute(3) + 2 * S, -4)):
        book.delta_ns.append(ns_of(ts))
        book.delta_level.append(level)
        book.delta_size.append(delta * 100)
    prints = [
        (A, minute(3) + S, D("4"), D("0.40"), "no"),
        (A, minute(4) + S, D("9"), D("0.40"), "no"),
    ]
    model = QueueFill(cancels=True)
    venue = _rest(ArrayTape.from_rows(prints, books={A: book}), model)
    assert [c for c, _ in _filled(venue)] == [D("3")]
    assert model.used_depth == {A}
    # Without counting cancels, 20 − 4 − 9 > 0: nothing fills.
    venue = _rest(
        ArrayTape.from_rows(prints, books={A: _with_deltas(book)}), QueueFill(cancels=False)
    )
    assert _filled(venue) == []


def _with_deltas(book: L2Levels) -> L2Levels:
    return L2Levels(
        list(book.snapshot_ns),
        [dict(s) for s in book.snapshots],
        list(book.delta_ns),
        list(book.delta_level),
        list(book.delta_size),
    )


def test_cancel_share_grows_with_the_queue_ahead() -> None:
    model = QueueFill(power=2.0)
    assert model._cancel_share(0, 10) == 0.0
    assert model._cancel_share(10, 10) == pytest.approx(0.5)
    assert model._cancel_share(30, 10) == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["maker-a", "maker-b", "queue"])
def test_no_model_fills_from_data_before_the_order(name: str) -> None:
    """Changing everything before placement changes nothing; changing after does."""
    after = [(A, minute(3) + S, D("6"), D("0.39"), "no")]
    before = [(A, minute(0) + S, D("500"), D("0.30"), "no")]
    base = _filled(_rest(ArrayTape.from_rows(after), make_fill_model(name), at=1))
    more = _filled(_rest(ArrayTape.from_rows(before + after), make_fill_model(name), at=1))
    assert base == more
    assert base, "the print through the limit should fill"
    none = _filled(_rest(ArrayTape.from_rows(before), make_fill_model(name), at=1))
    assert none == []


def test_unknown_fill_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown fill model 'magic'"):
        make_fill_model("magic")
