"""What a consumer waits out (the database is away) and what it parks (the message is bad),
as raw asyncpg reports them against a real PostgreSQL."""

import asyncpg
import pytest

from tests.relay_support import asyncpg_dsn
from workers.common.database import is_database_outage

pytestmark = pytest.mark.integration


async def test_a_bad_argument_is_not_an_outage(connection: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.DataError) as refused:
        await connection.fetchval("SELECT $1::int", "not a number")
    assert not is_database_outage(refused.value)


async def test_a_closed_connection_is_an_outage(outbox_db: str) -> None:
    closed = await asyncpg.connect(asyncpg_dsn(outbox_db))
    await closed.close()
    with pytest.raises(asyncpg.InterfaceError) as gone:
        await closed.fetchval("SELECT 1")
    assert is_database_outage(gone.value)

