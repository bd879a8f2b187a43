"""wx.measurement_model: the pmf of (official maximum − a source's observed daily maximum).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE wx.measurement_model (
            city        text NOT NULL,
            source      text NOT NULL,
            offset_f    integer NOT NULL,
            prob        double precision NOT NULL CHECK (prob >= 0 AND prob <= 1),
            n_days      integer NOT NULL,
            date_from   date NOT NULL,
            date_to     date NOT NULL,
            fitted_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (city, source, offset_f)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS wx.measurement_model")
