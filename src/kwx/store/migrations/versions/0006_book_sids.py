"""Order-book streams: 64-bit stored sids, and the sid on snapshots too.

The recorder stores sid = connection * 1,000,000 + the server's sid so that sids stay unique
across reconnects; 32 bits ran out after about 2,100 connections. A snapshot's sid ties it to
the deltas that follow it on the same subscription.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE md.orderbook_delta ALTER COLUMN sid TYPE bigint")
    op.execute("ALTER TABLE md.orderbook_snapshot ADD COLUMN sid bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE md.orderbook_snapshot DROP COLUMN IF EXISTS sid")
    op.execute("ALTER TABLE md.orderbook_delta ALTER COLUMN sid TYPE integer")
