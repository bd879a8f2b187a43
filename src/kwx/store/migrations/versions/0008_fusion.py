"""Fusion: the market-side inputs of the pool in pmf.minute, and what a fusion config was fit on.

pmf.minute gains the per-event market features the fusion weight uses (stored by the p_mkt
pass, so a fit reads a sample of minutes in seconds instead of recomputing the panels) and the
weight w_mkt that produced p_fused (for inspection). model.fusion_config records the
observation model version and the training range it was fit on. An index on (city,
mc_version, ts) serves the fit's and the report's per-city scans.

Every statement is idempotent (IF NOT EXISTS) so the same SQL can be applied by hand to a
database whose revision lags.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DDL = r"""
ALTER TABLE pmf.minute
    ADD COLUMN IF NOT EXISTS mkt_volume_20m double precision,
    ADD COLUMN IF NOT EXISTS mkt_volatility double precision,
    ADD COLUMN IF NOT EXISTS minutes_to_close double precision,
    ADD COLUMN IF NOT EXISTS w_mkt double precision;
COMMENT ON COLUMN pmf.minute.mkt_volume_20m IS
    'contracts traded on the whole event in the 20 one-minute candles closed by ts';
COMMENT ON COLUMN pmf.minute.mkt_volatility IS
    'RMS over the last 30 minutes of the per-minute change of the event''s p_mkt vector';
COMMENT ON COLUMN pmf.minute.minutes_to_close IS
    'minutes from ts to the end of the climate day (local standard midnight)';
COMMENT ON COLUMN pmf.minute.w_mkt IS 'weight of log p_mkt in the pool that made p_fused';
CREATE INDEX IF NOT EXISTS pmf_minute_city ON pmf.minute (city, mc_version, ts);

ALTER TABLE model.fusion_config
    ADD COLUMN IF NOT EXISTS mc_version text,
    ADD COLUMN IF NOT EXISTS train_from date,
    ADD COLUMN IF NOT EXISTS train_to date;
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS pmf.pmf_minute_city;
        ALTER TABLE pmf.minute DROP COLUMN IF EXISTS mkt_volume_20m,
            DROP COLUMN IF EXISTS mkt_volatility, DROP COLUMN IF EXISTS minutes_to_close,
            DROP COLUMN IF EXISTS w_mkt;
        ALTER TABLE model.fusion_config DROP COLUMN IF EXISTS mc_version,
            DROP COLUMN IF EXISTS train_from, DROP COLUMN IF EXISTS train_to;
        """
    )
