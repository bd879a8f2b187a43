"""The paper venue's saved state and the liveness of runs, in-process (fast).

The end-to-end version (a real `kwx run --mode paper` killed with SIGKILL and restarted) is
tests/live/test_paper_restart.py; these pin the pieces: a saved and restored venue goes on
exactly as the original (same fills, same ids, same positions); another run's tickers are
carried through untouched; a killed run is closed as interrupted, a live one is not.
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from kwx.backtest.fills import QueueFill
from kwx.config import Settings
from kwx.engine.ports import PlaceLimit, PlaceTaker
from kwx.engine.sim_venue import SimulatedVenue
from kwx.engine.tape import ArrayTape
from kwx.engine.venue_state import VenueStateError, dump_venue, restore_venue
from kwx.live.run_state import claim_run, close_interrupted, latest_paper_state
from kwx.store.engine import connect
from tests.engine.helpers import EVENT, D, bracket, minute, snapshot

A = f"{EVENT}-B40.5"
B = f"{EVENT}-B42.5"


def _tape() -> ArrayTape:
    rows = [
        (A, minute(k) + dt.timedelta(seconds=20), D("7"), D("0.40"), "no") for k in range(1, 12)
    ]
    rows += [(B, minute(k) + dt.timedelta(seconds=30), D("3"), D("0.30"), "yes") for k in range(12)]
    return ArrayTape.from_rows(rows)


def _venue() -> SimulatedVenue:
    return SimulatedVenue(_tape(), QueueFill(), id_prefix="paper1")


def _act(venue: SimulatedVenue) -> None:
    """Minute 0: a taker fill on B and a resting bid on A that the queue model fills later."""
    snap = snapshot(minute(0), [bracket(A, "0.40", "0.44"), bracket(B, "0.28", "0.32")])
    venue.place(PlaceTaker(B, "yes", "buy", D("0.40"), D("4")), snap)
    venue.place(PlaceLimit(A, "yes", "buy", D("0.40"), D("30")), snap)


def _key(venue: SimulatedVenue) -> tuple[object, ...]:
    return (
        sorted((t, p.yes_count, p.cost, p.realized, p.fees) for t, p in venue.positions().items()),
        sorted((o.order_id, o.filled, o.status) for o in venue.resting()),
    )


def test_a_restored_venue_goes_on_exactly_like_the_original() -> None:
    original = _venue()
    _act(original)
    original.advance(minute(3))
    state = json.loads(json.dumps(dump_venue(original)))  # through JSON, as stored
    assert state["resting"], "the test needs a resting order with queue state"

    restored = SimulatedVenue(_tape(), QueueFill(), id_prefix="paper2")
    report = restore_venue(restored, state, [A, B])
    assert (report.positions, report.resting) == (len(original.positions()), 1)
    assert _key(restored) == _key(original)

    later_original = original.advance(minute(11))
    later_restored = restored.advance(minute(11))
    assert later_original, "the resting order must fill after the restart point"
    assert [(f.fill_id, f.ts, f.count, f.price) for f in later_restored] == [
        (f.fill_id, f.ts, f.count, f.price) for f in later_original
    ]
    assert _key(restored) == _key(original)


def test_a_fresh_start_differs_so_the_test_above_can_fail() -> None:
    original = _venue()
    _act(original)
    original.advance(minute(3))
    fresh = SimulatedVenue(_tape(), QueueFill(), id_prefix="paper2")
    assert _key(fresh) != _key(original)


def test_other_tickers_are_carried_untouched() -> None:
    original = _venue()
    _act(original)
    state = dump_venue(original)
    restored = SimulatedVenue(_tape(), QueueFill(), id_prefix="paper2")
    report = restore_venue(restored, state, [B])  # this run trades B only
    assert set(restored.positions()) == {B} and restored.resting() == []
    assert A in {r["order"]["ticker"] for r in report.carried["resting"]}
    again = dump_venue(restored, report.carried)
    assert again["resting"] == state["resting"]
    assert again["books"] == state["books"]
    with pytest.raises(VenueStateError, match="version"):
        restore_venue(SimulatedVenue(_tape(), QueueFill()), {**state, "version": 99}, [A])


def _open(conn: psycopg.Connection[tuple[object, ...]], mode: str = "paper") -> int:
    row = conn.execute(
        "INSERT INTO exec.live_runs (mode, cities, exchange) VALUES (%s, %s, 'x') RETURNING run_id",
        (mode, ["chicago"]),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(str(row[0]))


def test_killed_runs_are_closed_as_interrupted_live_ones_are_not(settings: Settings) -> None:
    with connect(settings) as conn, connect(settings) as alive_conn:
        dead = _open(conn, "live")
        alive = _open(alive_conn)
        claim_run(alive_conn, alive)  # its process is still there
        me = _open(conn)
        claim_run(conn, me)
        assert close_interrupted(conn, by_run=me) == [dead]
        rows = {
            int(str(r)): str(s)
            for r, s in conn.execute(
                "SELECT run_id, status FROM exec.live_runs WHERE finished_at IS NOT NULL"
            ).fetchall()
        }
        assert rows == {dead: "interrupted"}
        conn.commit()
    with connect(settings) as conn:  # the "alive" process is gone now
        assert close_interrupted(conn) == [alive, me]


def test_the_newest_paper_state_of_the_exchange_is_found(settings: Settings) -> None:
    with connect(settings) as conn:
        first, second, third = _open(conn), _open(conn), _open(conn)
        for run_id, n in ((first, 1), (second, 2)):
            conn.execute(
                "UPDATE exec.live_runs SET venue_state = %s WHERE run_id = %s",
                (json.dumps({"version": 1, "n": n}), run_id),
            )
        conn.commit()
        found = latest_paper_state(conn, "x", third)
        assert found is not None and found[0] == second and found[1]["n"] == 2
        assert found[2] is True  # still 'running': the caller refuses to share its account
        conn.execute("UPDATE exec.live_runs SET status = 'done' WHERE run_id = %s", (second,))
        conn.commit()
        found = latest_paper_state(conn, "x", third)
        assert found is not None and found[2] is False
        assert latest_paper_state(conn, "elsewhere", third) is None
        assert latest_paper_state(conn, "x", first) is None
