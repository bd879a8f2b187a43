"""The rebuilt-quote model, fitted on real quotes (issue 13).

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04

One row per fitted :class:`kwx.backtest.quote_model.QuoteModel`: its JSON (the offset quantiles
per bin, the crossed-pair spread, the depth per level) and the days it was fitted on, so a
backtest can say which model rebuilt its quotes and a check can refuse to score a day the model
has seen. The backtest uses the newest row.
"""

from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS backtest.quote_model (
            version    text PRIMARY KEY,
            city       text NOT NULL,
            fit_from   date NOT NULL,
            fit_to     date NOT NULL,
            model      jsonb NOT NULL,
            fitted_at  timestamptz NOT NULL DEFAULT now(),
            CHECK (fit_to >= fit_from)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS backtest.quote_model")
