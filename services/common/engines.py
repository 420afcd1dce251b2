"""Every SQLAlchemy engine of the project, made in one place.

`hide_parameters`: a failed statement's error (and so its log line and traceback) names
the SQL but not the values bound to it, which are phone numbers, names and queue tokens.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_private_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine whose errors never carry a statement's parameters."""
    return create_async_engine(url, hide_parameters=True, **options)
