"""A waiting room per concert, and the audit of every change to one.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = """
-- The source of truth of each room's policy; Redis holds a copy (with its version) for
-- the hot path. A concert created before this table gets its row, with the defaults of
-- the running settings, the first time its room is used.
CREATE TABLE waiting_rooms (
    concert_id uuid PRIMARY KEY REFERENCES concerts (id),
    admit_per_second integer NOT NULL CHECK (admit_per_second BETWEEN 1 AND 10000),
    max_active integer NOT NULL CHECK (max_active BETWEEN 1 AND 100000),
    queue_opens_at timestamptz,
    sale_opens_at timestamptz,
    paused boolean NOT NULL DEFAULT false,
    -- The id of the change that made this version: ids only grow (even past a rolled-back
    -- change), so Redis can refuse a copy older than the one it has.
    version bigint NOT NULL
);

-- Who changed which room, when, and to what.
CREATE TABLE waiting_room_changes (
    id bigserial PRIMARY KEY,
    concert_id uuid NOT NULL REFERENCES concerts (id),
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changes jsonb NOT NULL
);
CREATE INDEX waiting_room_changes_by_concert ON waiting_room_changes (concert_id, id);
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE waiting_room_changes")
    op.execute("DROP TABLE waiting_rooms")
