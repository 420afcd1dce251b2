"""Personal data stays out of logs: a failed statement's parameters are never printed, and
phone numbers and queue tokens are masked in every log line (API.md §1, issue 16 point 5)."""

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import create_engine
from services.booking.config import Settings
from services.common.engines import create_private_engine
from services.common.logging import RedactingFormatter, TextFormatter
from workers.common.database import create_worker_engine

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NAME = "Minsu Kim"  # no digits: what hides it here is hide_parameters, not the log's masking

ENGINES: dict[str, Callable[[Settings], AsyncEngine]] = {
    "api": create_engine,
    "worker": lambda settings: create_worker_engine(settings.database_dsn, pool_size=1,
                                                    application_name="privacy-test"),
    "command": lambda settings: create_private_engine(settings.database_dsn, pool_size=1),
}


def log_line(error: BaseException) -> str:
    """What a process of ours writes for `error` logged with its traceback."""
    record = logging.LogRecord("test", logging.ERROR, __file__, 1, "statement failed: %s", (error,),
                               (type(error), error, error.__traceback__))
    record.trace_id = None
    return RedactingFormatter(TextFormatter()).format(record)


@pytest.mark.parametrize("kind", ENGINES)
async def test_a_database_error_is_logged_without_its_parameters(settings: Settings, kind: str) -> None:
    engine = ENGINES[kind](settings)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as failed:
                # Division by zero: PostgreSQL's own message does not quote the value.
                await connection.execute(text("SELECT 1 / (length(CAST(:name AS text)) - 9)"),
                                         {"name": NAME})
    finally:
        await engine.dispose()
    line = log_line(failed.value)
    assert "division by zero" in line and "SELECT 1 / (length(" in line, line
    assert NAME not in line, line


def test_every_engine_is_made_by_the_one_factory() -> None:
    made_elsewhere = [
        str(path.relative_to(ROOT)) for folder in ("services", "workers", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\bcreate_async_engine\(", path.read_text())
        and path != ROOT / "services" / "common" / "engines.py"
    ]
    assert made_elsewhere == [], made_elsewhere
