"""Paper mode's venue state, so that a paper run restarts like a live one (issue 15).

``exec.live_runs.venue_state``: the simulated venue of a paper run (positions as FIFO lots,
resting orders with their place in the queue, the fill counter), saved after every step in
the same transaction as that step's orders and fills. The next paper run on the same exchange
starts from it, as a live run starts from the exchange's positions and resting orders.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-04
"""

from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE exec.live_runs ADD COLUMN IF NOT EXISTS venue_state jsonb;
        ALTER TABLE exec.live_runs ADD COLUMN IF NOT EXISTS state_at timestamptz;
        CREATE INDEX IF NOT EXISTS live_runs_paper_state ON exec.live_runs (exchange, run_id)
            WHERE mode = 'paper' AND venue_state IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS exec.live_runs_paper_state;
        ALTER TABLE exec.live_runs DROP COLUMN IF EXISTS state_at;
        ALTER TABLE exec.live_runs DROP COLUMN IF EXISTS venue_state;
        """
    )
