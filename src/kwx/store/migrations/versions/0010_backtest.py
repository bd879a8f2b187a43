"""Strategy ledger and backtest runs (issue 6).

exec.orders gains the order's event, kind (limit/taker) and filled count; exec.fills the event,
city and the probabilities at the fill (so the ledger's FillRecord can be rebuilt from the
table alone, in any mode); backtest.runs its status, notes and timing. Indexes serve the
per-run reads. Every statement is idempotent.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DDL = r"""
ALTER TABLE exec.orders
    ADD COLUMN IF NOT EXISTS event_ticker text,
    ADD COLUMN IF NOT EXISTS kind text CHECK (kind IN ('limit', 'taker')),
    ADD COLUMN IF NOT EXISTS filled_fp numeric(14,2) NOT NULL DEFAULT 0;
ALTER TABLE exec.fills
    ADD COLUMN IF NOT EXISTS event_ticker text,
    ADD COLUMN IF NOT EXISTS city text,
    ADD COLUMN IF NOT EXISTS hazard_next_60m double precision,
    ADD COLUMN IF NOT EXISTS p_fused_norm double precision;
ALTER TABLE backtest.runs
    ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'running',
    ADD COLUMN IF NOT EXISTS mc_version text,
    ADD COLUMN IF NOT EXISTS notes jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS elapsed_s double precision;
CREATE INDEX IF NOT EXISTS orders_run ON exec.orders (mode, run_id);
CREATE INDEX IF NOT EXISTS fills_run ON exec.fills (mode, run_id, ts);
CREATE INDEX IF NOT EXISTS decisions_run ON exec.decisions (mode, run_id, ts);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS exec.orders_run;
        DROP INDEX IF EXISTS exec.fills_run;
        DROP INDEX IF EXISTS exec.decisions_run;
        ALTER TABLE exec.orders DROP COLUMN IF EXISTS event_ticker, DROP COLUMN IF EXISTS kind,
            DROP COLUMN IF EXISTS filled_fp;
        ALTER TABLE exec.fills DROP COLUMN IF EXISTS event_ticker, DROP COLUMN IF EXISTS city,
            DROP COLUMN IF EXISTS hazard_next_60m, DROP COLUMN IF EXISTS p_fused_norm;
        ALTER TABLE backtest.runs DROP COLUMN IF EXISTS status, DROP COLUMN IF EXISTS mc_version,
            DROP COLUMN IF EXISTS notes, DROP COLUMN IF EXISTS elapsed_s;
        """
    )
