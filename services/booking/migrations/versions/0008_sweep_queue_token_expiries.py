"""Queue tokens a payment spent: queue_token_expiries is the record and the sweeper's queue,
spent_queue_tokens goes.

Revision ID: 0008
Revises: 0007

Stop the API before upgrading: until then its payments write spent_queue_tokens.
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
DROP TABLE spent_queue_tokens;
"""

# 0007's table again, holding the tokens not swept yet.
DOWNGRADE = """
CREATE TABLE spent_queue_tokens (
    id bigserial PRIMARY KEY,
    token text NOT NULL,
    user_id text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO spent_queue_tokens (token, user_id, recorded_at)
SELECT token, user_id, expired_at FROM queue_token_expiries WHERE swept_at IS NULL
 ORDER BY expired_at;

DROP INDEX queue_token_expiries_unswept;
ALTER TABLE queue_token_expiries DROP COLUMN swept_at;
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    execute_script(DOWNGRADE)
