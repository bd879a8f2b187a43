"""Alerts: every condition `kwx alerts check` has fired, once per dedup key.

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-04

``dedup_key`` names one occurrence of one condition (``kill_switch:paper:12``,
``feed_stale:weather obs:2026-12-04T17:00``): the check inserts it with ON CONFLICT DO NOTHING
and sends only what it inserted, so a condition that stays true is announced once, however
often the check runs, and a restart does not announce it again. ``details`` holds what the
message was built from (never a secret); ``sent_at`` / ``send_error`` what the webhook did.
"""

from alembic import op

revision = "0021"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS meta.alerts (
            dedup_key   text PRIMARY KEY,
            kind        text NOT NULL,
            severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            message     text NOT NULL,
            details     jsonb NOT NULL DEFAULT '{}',
            fired_at    timestamptz NOT NULL DEFAULT now(),
            sent_at     timestamptz,
            send_error  text
        );
        CREATE INDEX IF NOT EXISTS alerts_fired ON meta.alerts (fired_at DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS meta.alerts")
