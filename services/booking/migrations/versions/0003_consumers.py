"""Consumer state: ticket saga per payment, notifications and their delivery log.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
-- One row per payment: where its ticket saga stands. The row is the guard of the
-- saga's last step: confirm or compensate only while it is REGISTERING.
CREATE TABLE ticket_sagas (
    payment_id uuid PRIMARY KEY REFERENCES payments (id),
    ticket_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('REGISTERING', 'CONFIRMED', 'COMPENSATED')),
    -- Passes at the venue (each pass makes up to VENUE_MAX_ATTEMPTS HTTP attempts).
    passes integer NOT NULL DEFAULT 0,
    venue_attempts integer NOT NULL DEFAULT 0,
    reason text,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX ticket_sagas_open ON ticket_sagas (updated_at) WHERE status = 'REGISTERING';

-- A notification is identified by what it is about (payment + template), not by the
-- event that asked for it, so any number of requests for it deliver it once.
CREATE TABLE notifications (
    id uuid PRIMARY KEY,
    template text NOT NULL,
    user_id text NOT NULL,
    payment_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'SKIPPED', 'FAILED')),
    channel text CHECK (channel IN ('kakao', 'sms')),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_by_payment ON notifications (payment_id);

-- The delivery log: one row per provider call we started. A row still SENDING after
-- its worker is gone marks a call whose answer we never recorded; the next attempt
-- must settle that channel (same message id) before any other channel is tried.
CREATE TABLE notification_attempts (
    id bigserial PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id),
    channel text NOT NULL CHECK (channel IN ('kakao', 'sms')),
    message_id text NOT NULL,
    status text NOT NULL
        CHECK (status IN ('SENDING', 'ACCEPTED', 'REJECTED', 'FAILED', 'BREAKER_OPEN')),
    http_attempts integer NOT NULL DEFAULT 0,
    provider_message_id text,
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX notification_attempts_by_notification ON notification_attempts (notification_id, id);
-- At most one provider ever accepted a notification, however it was redelivered.
CREATE UNIQUE INDEX notification_attempts_one_accepted ON notification_attempts (notification_id)
    WHERE status = 'ACCEPTED';
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE notification_attempts, notifications, ticket_sagas")
