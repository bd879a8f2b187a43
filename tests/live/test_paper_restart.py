"""Paper mode restarts like live: `kwx run --mode paper` killed with SIGKILL mid-day, then
started again, ends where an uninterrupted run ends.

Both runs are real subprocesses (`kwx run --mode paper --clock exchange`) against an
in-process simulator at manual speed, driven minute by minute by the test: the clock moves to
minute m, then the test waits until the run has saved its state for m (exec.live_runs.state_at)
before moving on, so what the loop sees each minute does not depend on thread timing. The
reference run goes from START to UNTIL on a simulator of its own; the interrupted one is killed
(SIGKILL, from outside, while it waits for the next minute) after KILL_AT, and a second process
takes over from the next minute to UNTIL.

Checked: the interrupted pair's fills, taken together, are the reference's fills (ticker, side,
action, price, count, time); its final positions equal the reference's and stay within the
position limit; the killed run is closed as ``interrupted``; no order is left ``resting``.
The broken variant (the restart starting flat) fails every one of these.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kwx.config import Settings
from kwx.sim.simulator import Simulator
from kwx.store.engine import connect
from kwx.strategy.config import RiskConfig
from tests.conftest import needs_data
from tests.live.conftest import KEY_ID, at

pytestmark = needs_data()

START, UNTIL = at("2024-12-05T14:35:00"), at("2024-12-05T15:05:00")
MINUTE = dt.timedelta(minutes=1)
STEP_TIMEOUT_S = 90.0
START_TIMEOUT_S = 400.0  # a process start (imports, REST backfill) on a loaded 2-core box


def _spawn(sim: Simulator, settings: Settings, key_file: Path, tmp: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KWX_DATABASE_URL": settings.kwx_database_url.get_secret_value()
        if settings.kwx_database_url
        else "",
        "KWX_DATA_DIR": str(tmp),
        "KALSHI_REST_BASE_URL": sim.rest_url,
        "KALSHI_WS_URL": sim.ws_url,
        "KALSHI_API_KEY_ID": KEY_ID,
        "KALSHI_PRIVATE_KEY_PATH": str(key_file),
        "TRADE_MODE": "paper",
        "HTTP_TIMEOUT_S": "5",
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kwx.cli",
            "run",
            "--mode",
            "paper",
            "--city",
            "chicago",
            "--clock",
            "exchange",
            "--until",
            UNTIL.isoformat(),
            "--fill-model",
            "maker-b",
            "--no-history",
            "--weather",
            "store",
            "--no-edge-gate",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp,
    )


def _latest_run(settings: Settings, exchange: str) -> tuple[int, dt.datetime | None] | None:
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT run_id, state_at FROM exec.live_runs WHERE mode = 'paper' AND exchange = %s "
            "ORDER BY run_id DESC LIMIT 1",
            (exchange,),
        ).fetchone()
    if row is None:
        return None
    state_at = row[1]
    assert state_at is None or isinstance(state_at, dt.datetime)
    return int(str(row[0])), state_at


def _drive(
    sim: Simulator,
    settings: Settings,
    proc: subprocess.Popen[str],
    first: dt.datetime,
    last: dt.datetime,
    known_runs: set[int],
) -> int:
    """Move the simulator minute by minute from ``first`` to ``last``, each time waiting
    until the (new) run has saved that minute; the run's id."""
    run_id: int | None = None
    m = first
    while m <= last:
        if sim.clock.now() < m:
            sim.advance_to(m)
        deadline = time.monotonic() + (START_TIMEOUT_S if m == first else STEP_TIMEOUT_S)
        while True:
            if proc.poll() is not None:
                _, stderr = proc.communicate()
                raise AssertionError(f"kwx run exited {proc.returncode} at {m}:\n{stderr[-3000:]}")
            latest = _latest_run(settings, sim.rest_url)
            if latest is not None and latest[0] not in known_runs:
                run_id = latest[0]
                if latest[1] is not None and latest[1] >= m:
                    break
            assert time.monotonic() < deadline, f"no step saved for {m}"
            time.sleep(0.05)
        m += MINUTE
    assert run_id is not None
    return run_id


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    import json

    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(stats, dict)
    return stats


def _fills(settings: Settings, runs: list[int]) -> Counter[tuple[Any, ...]]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT ticker, side, action, price, count_fp, is_taker, ts FROM exec.fills "
            "WHERE mode = 'paper' AND run_id = ANY(%s)",
            (runs,),
        ).fetchall()
    return Counter(tuple(r) for r in rows)


def _positions(settings: Settings, run_id: int) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT ticker, position_fp, cost, realized_pnl FROM exec.positions "
            "WHERE mode = 'paper' AND run_id = %s AND (position_fp <> 0 OR realized_pnl <> 0)",
            (run_id,),
        ).fetchall()
    out: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    for ticker, pos, cost, realized in rows:
        assert isinstance(pos, Decimal) and isinstance(cost, Decimal)
        assert isinstance(realized, Decimal)
        out[str(ticker)] = (pos, cost, realized)
    return out


def _paper_runs(settings: Settings, exchange: str) -> list[tuple[int, str, bool]]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT run_id, status, finished_at IS NOT NULL FROM exec.live_runs "
            "WHERE mode = 'paper' AND exchange = %s ORDER BY run_id",
            (exchange,),
        ).fetchall()
    return [(int(str(r)), str(s), bool(f)) for r, s, f in rows]


def _resting_left(settings: Settings, runs: list[int]) -> int:
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*) FROM exec.orders WHERE mode = 'paper' AND run_id = ANY(%s) "
            "AND status = 'resting'",
            (runs,),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.mark.timeout(1800)  # three process starts and 60 driven minutes on a shared 2-core box
def test_paper_killed_mid_day_then_restarted_ends_like_an_uninterrupted_run(
    day_settings: Settings,
    make_sim: Callable[..., Simulator],
    key_file: Path,
    tmp_path: Path,
) -> None:
    # The reference: one process, START → UNTIL.
    ref_sim = make_sim(START)
    ref_proc = _spawn(ref_sim, day_settings, key_file, tmp_path)
    ref_run = _drive(ref_sim, day_settings, ref_proc, START, UNTIL, set())
    ref_stats = _finish(ref_proc)
    reference = _fills(day_settings, [ref_run])
    ref_positions = _positions(day_settings, ref_run)
    assert ref_stats["venue"]["fills"] > 0
    assert ref_positions, "the window must leave the reference with a position"

    # Killed after the minute that leaves it holding a position and a resting order.
    sim = make_sim(START)
    proc = _spawn(sim, day_settings, key_file, tmp_path)
    kill_at = _kill_point(day_settings, ref_run)
    first_run = _drive(sim, day_settings, proc, START, kill_at, set())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _paper_runs(day_settings, sim.rest_url) == [(first_run, "running", False)]

    sim.advance_to(kill_at + MINUTE)
    proc2 = _spawn(sim, day_settings, key_file, tmp_path)
    second_run = _drive(sim, day_settings, proc2, kill_at + MINUTE, UNTIL, {first_run})
    stats = _finish(proc2)

    # The outcome first (what a flat restart gets wrong), then the bookkeeping.
    positions = _positions(day_settings, second_run)
    assert positions == ref_positions
    assert _fills(day_settings, [first_run, second_run]) == reference
    limit = RiskConfig().max_position
    assert all(abs(p[0]) <= limit for p in positions.values())
    assert _resting_left(day_settings, [first_run, second_run]) == 0
    assert _resting_left(day_settings, [ref_run]) == 0
    assert _paper_runs(day_settings, sim.rest_url) == [
        (first_run, "interrupted", True),
        (second_run, "done", True),
    ]
    assert stats["restored"]["from_run"] == first_run
    assert stats["restored"]["positions"] > 0 and stats["restored"]["resting"] > 0
    assert stats["interrupted_runs"] == [first_run]


def _kill_point(settings: Settings, ref_run: int) -> dt.datetime:
    """The first minute after which the reference holds a position and a resting order that
    fills later (so the restart must carry both)."""
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT o.created_at, min(f.ts) FROM exec.orders o JOIN exec.fills f "
            "ON f.order_id = o.order_id WHERE o.mode = 'paper' AND o.run_id = %s "
            "AND NOT f.is_taker GROUP BY o.order_id, o.created_at ORDER BY 1",
            (ref_run,),
        ).fetchall()
        first_fill = conn.execute(
            "SELECT min(ts) FROM exec.fills WHERE mode = 'paper' AND run_id = %s", (ref_run,)
        ).fetchone()
    assert first_fill is not None and isinstance(first_fill[0], dt.datetime)
    for created, filled in rows:
        assert isinstance(created, dt.datetime) and isinstance(filled, dt.datetime)
        kill = created.replace(second=0, microsecond=0)
        if filled - kill >= MINUTE and kill >= first_fill[0]:
            return kill
    pytest.fail(f"no maker order in the window rests over a minute after a fill: {rows}")
