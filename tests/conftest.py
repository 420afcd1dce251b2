from collections.abc import AsyncIterator

import httpx
import pytest

from services.booking.adapters.migrate import upgrade_to_head
from services.booking.config import Settings
from tests.support import Booking, make_settings, metrics_url, queue_worker, serve_api

pytest_plugins = ["tests.servers"]


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> str:
    """The session's fresh database, migrated to the newest schema."""
    upgrade_to_head(postgres_url)
    return postgres_url


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, kafka_bootstrap: str) -> Settings:
    return make_settings(database_url, redis_url, kafka_bootstrap)


@pytest.fixture(scope="session")
async def api_url(settings: Settings) -> AsyncIterator[str]:
    async with serve_api(settings, scraped=True) as url, queue_worker(settings):
        yield url


@pytest.fixture(scope="session")
async def booking(api_url: str) -> AsyncIterator[Booking]:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as http:
        yield Booking(http)


@pytest.fixture(scope="session")
async def metrics_http(api_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session API's metrics port."""
    async with httpx.AsyncClient(base_url=metrics_url(settings), timeout=60) as http:
        yield http
