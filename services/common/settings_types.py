"""The types of settings that more than one deployable reads, each defined once."""

from typing import Annotated

from pydantic import AnyUrl, UrlConstraints

PostgresUrl = Annotated[
    AnyUrl, UrlConstraints(allowed_schemes=["postgresql+asyncpg"], host_required=False)
]


def asyncpg_dsn(database_url: str) -> str:
    """asyncpg takes a libpq URL: drop SQLAlchemy's driver suffix."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
