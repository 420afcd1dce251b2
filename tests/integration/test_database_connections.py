"""The hot paths' asyncpg connections when PostgreSQL drops them: a 503, then recovery."""

from collections.abc import Iterator

import httpx
import pytest

from services.booking.config import Settings
from tests.relay_support import private_database, server_url_of
from tests.support import auth, free_port, new_user, serve_api, sql

pytestmark = pytest.mark.integration
POOL = 2


@pytest.fixture
def own_database(database_url: str) -> Iterator[str]:
    """A database of this test's own: its connections are the only ones terminated."""
    with private_database(server_url_of(database_url)) as url:
        yield url


async def test_connections_terminated_by_the_server_answer_503_once_and_are_replaced(
    settings: Settings, own_database: str,
) -> None:
    own = settings.model_copy(update={
        "database_url": own_database, "metrics_port": free_port(),
        "db_pool_size": POOL, "db_pool_overflow": 0,
    })
    user = new_user("drop")
    async with serve_api(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        charge = {"json": {"amount": 1}, "headers": auth(user)}
        assert (await http.post("/points/charge", **charge)).status_code == 200
        dropped = await sql(own, """
            SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'booking-api'""")
        assert dropped[0]["n"] >= 1
        statuses = [(await http.post("/points/charge", **charge)).status_code for _ in range(12)]
    # Each dead pooled connection fails one request at most, as a 503 (never a 500); the
    # pool then opens new ones instead of handing the dead ones out again.
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) <= POOL and statuses[-6:] == [200] * 6, statuses
    balance = await sql(own, "SELECT balance FROM wallets WHERE user_id = :u", u=user)
    assert balance == [{"balance": 1 + statuses.count(200)}]
