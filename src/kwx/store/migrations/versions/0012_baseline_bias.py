"""The weather baseline's diurnal bias by local hour, and a seasonal measurement model.

Idempotent (IF NOT EXISTS), so a database that got these by hand upgrades cleanly.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS wx.baseline_bias (
            city        text NOT NULL,
            version     text NOT NULL,
            local_hour  smallint NOT NULL CHECK (local_hour BETWEEN 0 AND 23),
            mean_f      double precision NOT NULL,
            date_from   date NOT NULL,
            date_to     date NOT NULL,
            fitted_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (city, version, local_hour)
        )
        """
    )
    op.execute(
        """
        ALTER TABLE wx.measurement_model
            ADD COLUMN IF NOT EXISTS month smallint NOT NULL DEFAULT 0
                CHECK (month BETWEEN 0 AND 12),
            DROP CONSTRAINT IF EXISTS measurement_model_pkey,
            ADD PRIMARY KEY (city, source, month, offset_f)
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM wx.measurement_model WHERE month <> 0")
    op.execute(
        """
        ALTER TABLE wx.measurement_model
            DROP CONSTRAINT measurement_model_pkey,
            DROP COLUMN month,
            ADD PRIMARY KEY (city, source, offset_f)
        """
    )
    op.execute("DROP TABLE wx.baseline_bias")
