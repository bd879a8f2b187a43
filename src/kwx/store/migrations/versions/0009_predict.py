"""Cross-bracket classifiers and calibrators (issue 5).

Placeholder in the chain so that work on later issues can land in any order; the owning
issue fills in upgrade/downgrade.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
