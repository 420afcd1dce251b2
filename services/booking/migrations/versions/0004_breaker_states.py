"""Circuit breaker states of the worker processes, for the API's /metrics.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = """
-- One row per breaker per worker process (services/common/breaker_states.py): written
-- on each transition and on a heartbeat, so a row whose seen_at stops moving belongs
-- to a process that is gone and no longer counts. A few rows per worker replica.
CREATE TABLE provider_breaker_states (
    provider text NOT NULL,
    instance text NOT NULL,
    state smallint NOT NULL CHECK (state IN (0, 1, 2)),  -- closed, half-open, open
    changed_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, instance)
);
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE provider_breaker_states")
