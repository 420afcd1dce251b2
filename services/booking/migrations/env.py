"""Alembic environment: runs migrations over asyncpg with the URL the caller configured."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from services.common.engines import create_private_engine


def run_in_connection(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "upgrade_to_head() sets sqlalchemy.url"
    engine = create_private_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_in_connection)
        await connection.commit()
    await engine.dispose()


asyncio.run(run_online())
