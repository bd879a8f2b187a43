"""Which runs are alive, which were killed, and where a paper run's venue was left.

A run that ends normally closes its exec.live_runs row; one killed with SIGKILL (or by a
power cut) cannot, and used to stay ``running`` with no end time for ever. Every run holds a
session advisory lock on its run id for as long as its process lives (PostgreSQL releases it
when the connection dies, however the process ended), so the next start can tell a run still
trading (the lock is held) from a dead one (the lock is free) and close only the dead ones, as
``interrupted``.

Paper mode's venue state (:mod:`kwx.engine.venue_state`) is saved on the run's row after each
step; :func:`latest_paper_state` finds the newest on the same exchange for the next paper run.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

import psycopg

__all__ = [
    "RUN_LOCK_CLASS",
    "claim_run",
    "close_interrupted",
    "latest_paper_state",
    "release_run",
    "save_paper_state",
]

Conn = psycopg.Connection[tuple[object, ...]]
RUN_LOCK_CLASS: Final = 0x6B777872  # "kwxr": the first key of pg_advisory_lock(int4, int4)


def claim_run(conn: Conn, run_id: int) -> None:
    """Hold the run's liveness lock on this session (a new run id: never contended)."""
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, run_id))
    conn.commit()


def release_run(conn: Conn, run_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (RUN_LOCK_CLASS, run_id))
    conn.commit()


def close_interrupted(conn: Conn, *, by_run: int | None = None) -> list[int]:
    """Close every ``running`` run whose process is gone as ``interrupted``; their ids.

    A run whose lock someone holds is alive (another process trading now) and left alone.
    The end time is now (when it was found dead); ``state_at`` keeps its last saved step.
    """
    # Never our own run: advisory locks are re-entrant within a session, so the try below
    # would succeed on it.
    rows = conn.execute(
        "SELECT run_id FROM exec.live_runs WHERE status = 'running' AND finished_at IS NULL "
        "AND run_id IS DISTINCT FROM %s ORDER BY run_id",
        (by_run,),
    ).fetchall()
    conn.commit()
    closed: list[int] = []
    for (raw,) in rows:
        run_id = int(str(raw))
        got = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, run_id)
        ).fetchone()
        if got is None or got[0] is not True:
            conn.commit()
            continue  # alive
        try:
            note = "interrupted: its process ended without closing the run (killed or crashed)" + (
                f"; closed at the start of run {by_run}" if by_run is not None else ""
            )
            updated = conn.execute(
                "UPDATE exec.live_runs SET status = 'interrupted', "
                "finished_at = now(), notes = notes || %s::jsonb "
                "WHERE run_id = %s AND status = 'running' RETURNING run_id",
                (json.dumps([note]), run_id),
            ).fetchone()
            conn.commit()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (RUN_LOCK_CLASS, run_id))
            conn.commit()
        if updated is not None:
            closed.append(run_id)
    return closed


def latest_paper_state(
    conn: Conn, exchange: str, before_run: int
) -> tuple[int, dict[str, Any], bool] | None:
    """The newest saved paper venue state on ``exchange`` from a run before ``before_run``:
    (run id, state, whether that run is still running). Call after :func:`close_interrupted`,
    so that "running" means a live process."""
    row = conn.execute(
        "SELECT run_id, venue_state, status = 'running' FROM exec.live_runs "
        "WHERE mode = 'paper' AND exchange = %s AND run_id < %s AND venue_state IS NOT NULL "
        "ORDER BY run_id DESC LIMIT 1",
        (exchange, before_run),
    ).fetchone()
    conn.commit()
    if row is None or not isinstance(row[1], dict):
        return None
    return int(str(row[0])), row[1], bool(row[2])


def save_paper_state(conn: Conn, run_id: int, state: dict[str, Any], at: dt.datetime) -> None:
    """Store the venue state on the run's row (inside the caller's transaction)."""
    conn.execute(
        "UPDATE exec.live_runs SET venue_state = %s, state_at = %s WHERE run_id = %s",
        (json.dumps(state), at, run_id),
    )
