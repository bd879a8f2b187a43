"""Cross-bracket classifiers and calibrators (issue 5): where a run's model lives, which run a
calibrator belongs to, and one default calibrator per city and horizon.

* ``model.runs.artifact_path``: the fitted model (joblib) and its validation/test predictions
  are files under the data directory; the run row names them so they can be loaded later.
* ``model.calibration.run_id``: a calibrator is only meaningful on top of the model whose
  validation predictions it was fitted on.
* a partial unique index makes "the default" unique per (city, horizon).

Every statement is idempotent (IF NOT EXISTS) so the same SQL can be applied by hand to a
database whose revision lags.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DDL = r"""
ALTER TABLE model.runs ADD COLUMN IF NOT EXISTS artifact_path text;
CREATE INDEX IF NOT EXISTS runs_city_horizon ON model.runs (city, horizon, model_type, kind);
ALTER TABLE model.calibration
    ADD COLUMN IF NOT EXISTS run_id bigint REFERENCES model.runs (run_id) ON DELETE CASCADE;
CREATE UNIQUE INDEX IF NOT EXISTS calibration_one_default
    ON model.calibration (city, horizon) WHERE is_default;
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS model.calibration_one_default;
        ALTER TABLE model.calibration DROP COLUMN IF EXISTS run_id;
        DROP INDEX IF EXISTS model.runs_city_horizon;
        ALTER TABLE model.runs DROP COLUMN IF EXISTS artifact_path;
        """
    )
