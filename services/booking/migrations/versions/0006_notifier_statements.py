"""The notifier's usual statements as one round trip each: lock and open, record and unlock.

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
-- Takes what it can of the notifications' advisory locks (a lock another session holds
-- is not waited for) and, for the notifications it locked, opens their delivery logs
-- (services/notifier/adapters/delivery_log.py): a log it opens is PENDING and, for a
-- recipient with a phone, records the first channel's call as SENDING (`begun`); a log
-- opened before is read as it is, with its latest unsettled call. One row per input row,
-- in order, `locked` false for a notification whose lock is taken. The locks are taken
-- in a statement of their own, so the reads that follow take their snapshot after them
-- and see every commit of a twin delivery that let go of one.
CREATE FUNCTION notification_open(
    in_lock_class int, in_lock_keys int[], in_ids uuid[], in_templates text[],
    in_user_ids text[], in_payment_ids uuid[], in_schedule_ids uuid[],
    in_first_channels text[], in_message_ids text[], in_at timestamptz
) RETURNS TABLE (
    locked boolean, status text, attempt_id bigint, channel text, begun bigint, name text,
    phone text, concert_title text, starts_at timestamptz
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    taken boolean[];
BEGIN
    SELECT array_agg(pg_try_advisory_lock(in_lock_class, k) ORDER BY n) INTO taken
      FROM unnest(in_lock_keys) WITH ORDINALITY AS t(k, n);
    RETURN QUERY
    WITH input AS (
        SELECT i.*, taken[i.n] AS mine
          FROM unnest(in_ids, in_templates, in_user_ids, in_payment_ids, in_schedule_ids,
                      in_first_channels, in_message_ids)
               WITH ORDINALITY AS i(id, template, user_id, payment_id, schedule_id,
                                    first_channel, message_id, n)
    ), locked_input AS (
        SELECT * FROM input WHERE mine
    ), opened AS (
        INSERT INTO notifications (id, template, user_id, payment_id, status, created_at, updated_at)
        SELECT id, template, user_id, payment_id, 'PENDING', in_at, in_at FROM locked_input ORDER BY id
        ON CONFLICT (id) DO NOTHING
        RETURNING id, status
    ), logged AS (
        SELECT n.id, n.status, a.id AS attempt_id, a.channel
          FROM locked_input i
          JOIN notifications n ON n.id = i.id
          LEFT JOIN LATERAL (
              SELECT id, channel FROM notification_attempts
               WHERE notification_id = n.id AND status = 'SENDING' ORDER BY id DESC LIMIT 1
          ) a ON true
    ), recipient AS (
        -- Phone numbers stay out of Kafka: read at send time, the newest claim wins.
        SELECT i.id, COALESCE(u.name, u.id) AS name, u.phone_number AS phone,
               c.title AS concert_title, s.starts_at
          FROM locked_input i
          JOIN users u ON u.id = i.user_id
          JOIN schedules s ON s.id = i.schedule_id
          JOIN concerts c ON c.id = s.concert_id
    ), begun AS (
        INSERT INTO notification_attempts (notification_id, channel, message_id, status, started_at)
        SELECT i.id, i.first_channel, i.message_id, 'SENDING', in_at
          FROM locked_input i JOIN opened USING (id) JOIN recipient r USING (id)
         WHERE r.phone IS NOT NULL
        RETURNING id, notification_id
    )
    SELECT i.mine, COALESCE(o.status, l.status), l.attempt_id, l.channel, b.id, r.name, r.phone,
           r.concert_title, r.starts_at
      FROM input i
      LEFT JOIN opened o ON o.id = i.id
      LEFT JOIN logged l ON l.id = i.id
      LEFT JOIN recipient r ON r.id = i.id
      LEFT JOIN begun b ON b.notification_id = i.id
     ORDER BY i.n;
END $$;

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
    op.execute("DROP FUNCTION notification_open")
