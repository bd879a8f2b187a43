"""Paper and live trading state (issue 7).

* ``exec.live_runs``: one row per `kwx run` (mode, cities, parameters, what it did), the
  ``run_id`` its orders, fills, decisions and positions are filed under;
* ``exec.orders.exchange``: which exchange (REST base URL) a live order was sent to, so a
  restart resolves only its own ``pending`` rows (written before each request is sent, see
  ``kwx.live.order_ledger``), found fast by a partial index.

Idempotent (``IF NOT EXISTS`` throughout): some development databases were stamped past this
revision while it was an empty placeholder.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DDL = r"""
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


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS exec.orders_pending;
        ALTER TABLE exec.orders DROP COLUMN IF EXISTS exchange;
        DROP TABLE IF EXISTS exec.live_runs;
        """
    )
