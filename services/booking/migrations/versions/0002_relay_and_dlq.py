"""Outbox relay claim index, dead-row index and the DLQ replay audit.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
-- A claim only sets lease columns, which no index covers: with free room on the
-- page PostgreSQL updates the row in place (HOT) instead of touching five indexes,
-- which halves the cost of a claim.
ALTER TABLE outbox SET (fillfactor = 60);

-- The relay claims a row only when no older row of its aggregate is unpublished
-- (dead rows included), which is how per-aggregate order survives several relays;
-- this index answers that question with one probe per candidate.
CREATE INDEX outbox_unpublished_by_aggregate ON outbox (aggregate_id, id)
    WHERE published_at IS NULL;
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL;

-- Who did what to a dead letter, and when. A message id is '<dlq topic>:<partition>:
-- <offset>' for a parked Kafka message or 'outbox:<id>' for a dead outbox row; the
-- event id is kept too, because offsets restart when a memory-only broker restarts.
CREATE TABLE dlq_audit (
    id bigserial PRIMARY KEY,
    message_id text NOT NULL,
    event_id uuid,
    action text NOT NULL CHECK (action IN ('replay', 'quarantine', 'purge')),
    original_topic text,
    replay_count integer NOT NULL DEFAULT 0,
    actor text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dlq_audit_by_message ON dlq_audit (message_id, id);
CREATE INDEX dlq_audit_replays_by_event ON dlq_audit (event_id) WHERE action = 'replay';
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE dlq_audit")
    op.execute("ALTER TABLE outbox RESET (fillfactor)")
    op.execute("DROP INDEX outbox_dead")
    op.execute("DROP INDEX outbox_unpublished_by_aggregate")
