"""Migration 0008 on real PostgreSQL: queue_token_expiries becomes the sweeper's queue
without losing a token spent_queue_tokens still held, and a downgrade gives them back."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from alembic import command

from services.booking.adapters.migrate import alembic_config
from tests.relay_support import asyncpg_dsn, private_database

pytestmark = pytest.mark.integration

# A token the old consumer removed long ago, one still waiting for the sweeper, and one
# waiting with no record of its own (rows the unit of work wrote outside a payment).
AT_0007 = """
INSERT INTO queue_token_expiries (token, user_id, payment_id, expired_at) VALUES
    ('handled', 'ann', gen_random_uuid(), '2026-01-01T00:00:00Z'),
    ('waiting', 'bob', gen_random_uuid(), '2026-12-01T00:00:00Z');
INSERT INTO spent_queue_tokens (token, user_id, recorded_at) VALUES
    ('waiting', 'bob', '2026-12-01T00:00:00Z'), ('unrecorded', 'cat', '2026-12-02T00:00:00Z');
"""


@pytest.fixture
def database_at_0007(postgres_server_url: str) -> Iterator[str]:
    with private_database(postgres_server_url, revision="0007") as url:
        yield url


async def test_0008_leaves_only_the_waiting_tokens_unswept_and_0007_gets_them_back(
    database_at_0007: str,
) -> None:
    config = alembic_config(database_at_0007)
    connection = await asyncpg.connect(asyncpg_dsn(database_at_0007))
    try:
        await connection.execute(AT_0007)

        # Alembic runs its own event loop: not in this one's thread.
        await asyncio.to_thread(command.upgrade, config, "0008")

        rows = await connection.fetch(
            "SELECT token, user_id, swept_at = expired_at AS swept_when_expired,"
            "       swept_at IS NULL AS waiting, payment_id IS NULL AS without_payment"
            "  FROM queue_token_expiries ORDER BY token")
        assert [tuple(row) for row in rows] == [
            ("handled", "ann", True, False, False),
            ("unrecorded", "cat", None, True, True),
            ("waiting", "bob", None, True, False),
        ]
        # Kept, unread and empty, for the previous release's API replicas during a deploy.
        assert await connection.fetchval("SELECT count(*) FROM spent_queue_tokens") == 0

        await asyncio.to_thread(command.downgrade, config, "0007")

        spent = await connection.fetch(
            "SELECT token, user_id, recorded_at FROM spent_queue_tokens ORDER BY id")
        assert [tuple(row) for row in spent] == [
            ("waiting", "bob", datetime(2026, 12, 1, tzinfo=UTC)),
            ("unrecorded", "cat", datetime(2026, 12, 2, tzinfo=UTC)),
        ]
        assert await connection.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'queue_token_expiries' AND column_name = 'swept_at'") == 0
        assert await connection.fetchval("SELECT to_regclass('queue_token_expiries_unswept')") is None
    finally:
        await connection.close()
