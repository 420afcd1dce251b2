"""The notifier's last step for the calls a provider accepted, in one round trip.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from services.booking.migrations.sql import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = """
-- Records each accepted call and its notification's end, commits, and only then lets
-- the notifications' advisory locks go (services/notifier/adapters/delivery_log.py): a
-- twin delivery waiting for a lock finds the log final. A procedure, so that the
-- commit comes between the two in one CALL; run outside a transaction block.
CREATE PROCEDURE notification_delivered(
    in_lock_class int, in_lock_keys int[], in_notification_ids uuid[], in_attempt_ids bigint[],
    in_http_attempts int[], in_provider_ids text[], in_channels text[], in_at timestamptz
) LANGUAGE plpgsql AS $$
BEGIN
    WITH input AS (
        SELECT * FROM unnest(in_notification_ids, in_attempt_ids, in_http_attempts, in_provider_ids,
                             in_channels)
               AS i(notification_id, attempt_id, http_attempts, provider_id, channel)
    ), settled AS (
        UPDATE notification_attempts a
           SET status = 'ACCEPTED', http_attempts = a.http_attempts + i.http_attempts,
               provider_message_id = i.provider_id, error = NULL, finished_at = in_at
          FROM input i
         WHERE a.id = i.attempt_id
    )
    UPDATE notifications n SET status = 'DELIVERED', channel = i.channel, reason = NULL, updated_at = in_at
      FROM input i
     WHERE n.id = i.notification_id;
    COMMIT;
    PERFORM pg_advisory_unlock(in_lock_class, k) FROM unnest(in_lock_keys) AS t(k);
END $$;
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP PROCEDURE notification_delivered")
