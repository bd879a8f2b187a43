"""The weather model's calibration by hour of day: a shift of the official-value pmf.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS wx.tmax_shift (
            city        text NOT NULL,
            version     text NOT NULL,
            local_hour  smallint NOT NULL CHECK (local_hour BETWEEN 0 AND 23),
            shift_f     double precision NOT NULL,
            log_loss_before double precision,
            log_loss_after  double precision,
            n_days      integer NOT NULL,
            date_from   date NOT NULL,
            date_to     date NOT NULL,
            fitted_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (city, version, local_hour)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE wx.tmax_shift")
