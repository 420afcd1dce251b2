"""Queue tokens a payment spent, waiting for booking-worker token-expiry to remove them
from the waiting room in Redis.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = """
-- A work queue, not a record (queue_token_expiries is the record): the payment inserts a
-- row in its transaction, the sweeper deletes it once Redis no longer holds the token.
-- The token names its room, so it is all the removal needs; user_id is the column a
-- distributed table would be co-located by, with the wallet the payment also writes.
CREATE TABLE spent_queue_tokens (
    id bigserial PRIMARY KEY,
    token text NOT NULL,
    user_id text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE spent_queue_tokens")
