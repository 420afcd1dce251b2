"""Apply the Alembic migrations of the booking schema."""

import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema (safe to call repeatedly)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(database_url), "head")
        return
    raise RuntimeError("upgrade_to_head() runs its own event loop; call it from sync code")


def main() -> None:
    from services.common.settings import load_settings_or_exit
    from services.common.settings_types import DatabaseSettings

    settings = load_settings_or_exit(DatabaseSettings)
    upgrade_to_head(settings.database_dsn)
    print("database schema is at head", file=sys.stderr)


if __name__ == "__main__":
    main()
