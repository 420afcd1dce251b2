"""The types of settings that more than one deployable reads, each defined once."""

from typing import Annotated

from pydantic import AnyUrl, Field, UrlConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

PostgresUrl = Annotated[
    AnyUrl, UrlConstraints(allowed_schemes=["postgresql+asyncpg"], host_required=False)
]
Positive = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
# Where a process serves /metrics; 0: not served (a second process on the same host).
MetricsPort = Annotated[int, Field(ge=0, le=65535)]
# The consumer workers' group ids are "<prefix>-<part>" (CONSUMER_GROUP_PREFIX); the API
# and the relay read the same prefix to report those groups' lag.
GroupPrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class DatabaseSettings(BaseSettings):
    """DATABASE_URL; the settings of every deployable that opens PostgreSQL include it."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: PostgresUrl

    @property
    def database_dsn(self) -> str:
        return str(self.database_url)


def asyncpg_dsn(database_url: str) -> str:
    """asyncpg takes a libpq URL: drop SQLAlchemy's driver suffix."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
