"""The live tables, made sure of at start.

Migration 0011 creates them; some development databases were stamped past 0011 while it was
still an empty placeholder, so Alembic will never run it there. The statements are
idempotent, so `kwx run` simply runs them again (the same text as the migration's).
"""

from __future__ import annotations

from typing import Final

import psycopg

__all__ = ["LIVE_DDL", "ensure_live_schema"]

LIVE_DDL: Final = r"""
CREATE TABLE IF NOT EXISTS exec.live_runs (
    run_id       bigserial PRIMARY KEY,
    mode         text NOT NULL CHECK (mode IN ('paper', 'live')),
    cities       text[] NOT NULL,
    exchange     text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running',
    stats        jsonb NOT NULL DEFAULT '{}',
    notes        jsonb NOT NULL DEFAULT '[]'
);
ALTER TABLE exec.orders ADD COLUMN IF NOT EXISTS exchange text;
CREATE INDEX IF NOT EXISTS orders_pending ON exec.orders (mode, exchange)
    WHERE status = 'pending';
"""


def ensure_live_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    exists = conn.execute(
        "SELECT to_regclass('exec.live_runs') IS NOT NULL AND EXISTS (SELECT 1 FROM "
        "information_schema.columns WHERE table_schema = 'exec' AND table_name = 'orders' "
        "AND column_name = 'exchange')"
    ).fetchone()
    if not (exists and exists[0]):
        conn.execute(LIVE_DDL)
    conn.commit()
