"""Strategy ledger and backtest runs (issue 6).

Placeholder in the chain so that work on later issues can land in any order; the owning
issue fills in upgrade/downgrade.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
