"""Booking schema: catalogue, seats, holds, wallets, payments, tickets, idempotency, outbox.

Revision ID: 0001
Revises:
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE users (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name text,
    phone_number text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    user_id text PRIMARY KEY REFERENCES users (id),
    balance bigint NOT NULL DEFAULT 0 CHECK (balance BETWEEN 0 AND 100000000),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE point_history (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id),
    type text NOT NULL CHECK (type IN ('CHARGE', 'USE', 'REFUND')),
    amount bigint NOT NULL CHECK (amount > 0),
    balance_after bigint NOT NULL,
    payment_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX point_history_by_user ON point_history (user_id, id DESC);
-- A payment is refunded at most once, whatever the saga's redeliveries.
CREATE UNIQUE INDEX point_history_one_refund ON point_history (payment_id) WHERE type = 'REFUND';

CREATE TABLE concerts (
    id uuid PRIMARY KEY,
    title text NOT NULL,
    venue text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX concerts_by_creation ON concerts (created_at, id);

CREATE TABLE schedules (
    id uuid PRIMARY KEY,
    concert_id uuid NOT NULL REFERENCES concerts (id),
    starts_at timestamptz NOT NULL,
    seat_count integer NOT NULL CHECK (seat_count BETWEEN 1 AND 10000),
    price bigint NOT NULL CHECK (price > 0)
);
CREATE INDEX schedules_by_concert ON schedules (concert_id, starts_at);

-- The seat row is the arbiter of who holds or owns a seat: it changes only by a
-- conditional UPDATE, so no Redis failure can oversell it.
CREATE TABLE seats (
    schedule_id uuid NOT NULL REFERENCES schedules (id),
    seat_no integer NOT NULL,
    status text NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'HELD', 'SOLD')),
    reservation_id uuid,
    held_until timestamptz,
    PRIMARY KEY (schedule_id, seat_no),
    CHECK ((status = 'AVAILABLE') = (reservation_id IS NULL)),
    CHECK ((status = 'HELD') = (held_until IS NOT NULL))
);

CREATE TABLE reservations (
    id uuid PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id),
    schedule_id uuid NOT NULL,
    seat_no integer NOT NULL,
    price bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('HELD', 'PAID', 'EXPIRED', 'CANCELLED')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (schedule_id, seat_no) REFERENCES seats (schedule_id, seat_no)
);
CREATE INDEX reservations_live_by_user ON reservations (user_id, schedule_id) WHERE status = 'HELD';
CREATE INDEX reservations_live_by_expiry ON reservations (expires_at) WHERE status = 'HELD';

CREATE TABLE payments (
    id uuid PRIMARY KEY,
    reservation_id uuid NOT NULL UNIQUE REFERENCES reservations (id),
    user_id text NOT NULL REFERENCES users (id),
    amount bigint NOT NULL CHECK (amount > 0),
    status text NOT NULL CHECK (status IN ('PAID', 'REFUNDED')),
    created_at timestamptz NOT NULL DEFAULT now(),
    refunded_at timestamptz
);

CREATE TABLE tickets (
    id uuid PRIMARY KEY,
    payment_id uuid NOT NULL UNIQUE REFERENCES payments (id),
    user_id text NOT NULL REFERENCES users (id),
    schedule_id uuid NOT NULL,
    seat_no integer NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'VOID')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The last line of defence against a double sale: one live ticket per seat.
CREATE UNIQUE INDEX tickets_one_live_per_seat ON tickets (schedule_id, seat_no) WHERE status <> 'VOID';
CREATE INDEX tickets_by_user ON tickets (user_id, created_at);

CREATE TABLE idempotency_keys (
    user_id text NOT NULL,
    scope text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status_code integer NOT NULL,
    -- json, not jsonb: a replay must repeat the first answer byte for byte.
    response json,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE queue_token_expiries (
    token text PRIMARY KEY,
    user_id text NOT NULL,
    payment_id uuid,
    expired_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    event_version integer NOT NULL DEFAULT 1,
    topic text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    trace_id text,
    payload jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    lease_token uuid,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    dead_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_published_by_age ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Every transaction that writes outbox rows wakes the relay at commit (NOTIFY is
-- delivered on commit only, and identical notifications in one transaction fold).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE processed_events (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""

TABLES = [
    "processed_events", "outbox", "queue_token_expiries", "idempotency_keys", "tickets",
    "payments", "reservations", "seats", "schedules", "concerts", "point_history", "wallets",
    "users",
]


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE " + ", ".join(TABLES) + " CASCADE")
    op.execute("DROP FUNCTION outbox_notify()")
