"""Backfill progress in meta.backfill_state: which (job, unit) pairs are complete.

A unit is one city-day of one source. It is marked done only once its data can no longer
change (the climate day is over and the source has settled); until then it is 'partial' and a
re-run fetches it again. That is what makes every backfill resumable and cheap to repeat.
"""

from __future__ import annotations

import psycopg


def done_units(conn: psycopg.Connection[tuple[object, ...]], job: str) -> set[str]:
    rows = conn.execute(
        "SELECT unit FROM meta.backfill_state WHERE job = %s AND status = 'done'", (job,)
    ).fetchall()
    return {str(r[0]) for r in rows}


def mark(
    conn: psycopg.Connection[tuple[object, ...]],
    job: str,
    unit: str,
    status: str,
    rows: int,
    detail: str | None = None,
) -> None:
    """Record a unit's outcome (call inside the transaction that wrote its rows)."""
    conn.execute(
        "INSERT INTO meta.backfill_state (job, unit, status, rows, detail) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job, unit) DO UPDATE SET "
        "status = excluded.status, rows = excluded.rows, detail = excluded.detail, "
        "updated_at = now()",
        (job, unit, status, rows, detail),
    )
