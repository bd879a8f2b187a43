"""model.edge_cells: where p_fused has beaten p_mkt out of sample, and so where kwx may enter.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

One row per (city, hour bucket, price bucket): the bucket bounds (local hours of the climate
day, p_mkt of the bracket), the mean per-bracket log-loss gain of p_fused_norm over p_mkt on
walk-forward days, its 95% event-bootstrap interval, the events and bracket-minutes it rests
on, what it was measured on (mc_version, scored range, fusion versions) and `open` — entries
allowed only when gain_lo > 0. The strategy reads the table once per run.
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS model.edge_cells (
            city          text NOT NULL,
            hour_bucket   integer NOT NULL,
            price_bucket  integer NOT NULL,
            hour_lo       integer NOT NULL,
            hour_hi       integer NOT NULL,
            price_lo      double precision NOT NULL,
            price_hi      double precision NOT NULL,
            gain          double precision NOT NULL,
            gain_lo       double precision NOT NULL,
            gain_hi       double precision NOT NULL,
            n_events      integer NOT NULL,
            n_rows        integer NOT NULL,
            open          boolean NOT NULL,
            mc_version    text NOT NULL,
            scored_from   date NOT NULL,
            scored_to     date NOT NULL,
            measured_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (city, hour_bucket, price_bucket)
        );
        COMMENT ON COLUMN model.edge_cells.gain IS
            'per-bracket log-loss of p_mkt minus that of p_fused_norm (positive: p_fused better)';
        COMMENT ON COLUMN model.edge_cells.open IS 'entries allowed: gain_lo > 0';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS model.edge_cells")
