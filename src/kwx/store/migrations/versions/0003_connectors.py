"""Tables for the connectors: raw weather products, richer observations, ingest progress.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DDL = r"""
-- NWS text products (CLI, CF6, …) exactly as issued: the settlement evidence, kept verbatim.
CREATE TABLE wx.product (
    product_id   text PRIMARY KEY,
    pil          text NOT NULL,
    station      text,
    city         text,
    issued_at    timestamptz NOT NULL,
    climate_date date,
    kind         text,
    text         text NOT NULL,
    fetched_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX product_city_date ON wx.product (city, climate_date);

-- Observations keep the reading's native precision (METAR T-group tenths of °C, whole-°C
-- 5-minute ASOS) and the 6-hour maximum group, which is faithful to whole °F.
ALTER TABLE wx.obs ADD COLUMN temp_c double precision;
ALTER TABLE wx.obs ADD COLUMN max_temp_6h_f double precision;
ALTER TABLE wx.obs ADD COLUMN raw text;

-- Which units of a backfill are complete, so a re-run fetches only what is missing.
CREATE TABLE meta.backfill_state (
    job          text NOT NULL,
    unit         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('done', 'failed', 'partial')),
    rows         bigint NOT NULL DEFAULT 0,
    detail       text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, unit)
);

-- The order-book stream's price convention must be recorded (Kalshi will flip the default).
ALTER TABLE md.orderbook_snapshot ADD COLUMN use_yes_price boolean NOT NULL DEFAULT true;
ALTER TABLE md.orderbook_delta ADD COLUMN use_yes_price boolean NOT NULL DEFAULT true;
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("""
        DROP TABLE IF EXISTS meta.backfill_state;
        DROP TABLE IF EXISTS wx.product;
        ALTER TABLE wx.obs DROP COLUMN IF EXISTS temp_c, DROP COLUMN IF EXISTS max_temp_6h_f,
            DROP COLUMN IF EXISTS raw;
        ALTER TABLE md.orderbook_snapshot DROP COLUMN IF EXISTS use_yes_price;
        ALTER TABLE md.orderbook_delta DROP COLUMN IF EXISTS use_yes_price;
    """)
