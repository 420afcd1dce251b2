"""Queue tokens a payment spent: queue_token_expiries is the record and the sweeper's queue.

Revision ID: 0008
Revises: 0007

spent_queue_tokens stays, unread, so that API replicas of the release before keep paying
while a rolling deploy replaces them: they still write it, and the queue_token_expiries
row they write beside it (swept_at NULL) is what the new sweeper reads. The release after
this one drops it.
"""

from services.booking.migrations.sql import execute_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = """
-- A row with no swept_at waits for booking-worker token-expiry, which sets it once Redis
-- no longer holds the token; the partial index holds only those, oldest first.
ALTER TABLE queue_token_expiries ADD COLUMN swept_at timestamptz;

-- A token still in spent_queue_tokens has not left Redis yet: it stays unswept (with a
-- record of its own, should it have none). Every other token was removed long ago, by
-- the sweeper or, before 0007, by the Kafka consumer.
INSERT INTO queue_token_expiries (token, user_id, expired_at)
SELECT DISTINCT ON (token) token, user_id, recorded_at FROM spent_queue_tokens ORDER BY token, id
ON CONFLICT (token) DO NOTHING;
UPDATE queue_token_expiries e SET swept_at = e.expired_at
 WHERE NOT EXISTS (SELECT 1 FROM spent_queue_tokens s WHERE s.token = e.token);

CREATE INDEX queue_token_expiries_unswept ON queue_token_expiries (expired_at)
 WHERE swept_at IS NULL;
-- Unread from now on; emptied so that a downgrade finds only what was written since.
DELETE FROM spent_queue_tokens;
"""

# 0007's sweeper reads spent_queue_tokens again: the tokens not swept yet go back to it
# (old API replicas may have written some of them there meanwhile).
DOWNGRADE = """
INSERT INTO spent_queue_tokens (token, user_id, recorded_at)
SELECT e.token, e.user_id, e.expired_at FROM queue_token_expiries e
 WHERE e.swept_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM spent_queue_tokens s WHERE s.token = e.token)
 ORDER BY e.expired_at;

DROP INDEX queue_token_expiries_unswept;
ALTER TABLE queue_token_expiries DROP COLUMN swept_at;
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    execute_script(DOWNGRADE)
