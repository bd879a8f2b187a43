"""Station guidance: day-ahead Tmax from MOS, NBM and model runs, by issue time.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

One row per (city, model, issue time, target climate date). ``issued_at`` is when the guidance
existed (a run's nominal time, or the bulletin's issue time): the calibrated Tmax distribution
at time t may use only rows with ``issued_at`` ≤ t. ``tmax_f`` is the model's maximum for the
target local (standard-time) climate day; ``spread_f`` an ensemble spread where the product has
one (GEFS); ``extra`` keeps the product's other fields (MOS cloud, dew point, precipitation
aggregates) for predictors, untouched.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS wx.guidance (
            city         text NOT NULL,
            station      text NOT NULL,
            model        text NOT NULL,
            issued_at    timestamptz NOT NULL,
            target_date  date NOT NULL,
            tmax_f       double precision,
            spread_f     double precision,
            source       text NOT NULL,
            extra        jsonb,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (city, model, issued_at, target_date),
            CHECK (tmax_f IS NULL OR tmax_f BETWEEN -80 AND 140),
            CHECK (spread_f IS NULL OR spread_f >= 0)
        );
        CREATE INDEX IF NOT EXISTS guidance_target ON wx.guidance (city, target_date, model);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS wx.guidance")
