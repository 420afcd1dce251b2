"""Users appear on their first authenticated request, each with an empty wallet."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ENSURE_USER = text("""
WITH upserted AS (
    INSERT INTO users (id, name, phone_number) VALUES (:id, :name, :phone)
    ON CONFLICT (id) DO UPDATE
        SET name = COALESCE(EXCLUDED.name, users.name),
            phone_number = COALESCE(EXCLUDED.phone_number, users.phone_number),
            updated_at = now()
        WHERE (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM users.name)
           OR (EXCLUDED.phone_number IS NOT NULL
               AND EXCLUDED.phone_number IS DISTINCT FROM users.phone_number)
    RETURNING id
)
INSERT INTO wallets (user_id) SELECT id FROM upserted ON CONFLICT (user_id) DO NOTHING
""")

Contact = tuple[str, str | None, str | None]


class UserRegistry:
    """Records users and their contact claims, skipping the database when nothing changed."""

    def __init__(self, engine: AsyncEngine, cache_size: int = 100_000) -> None:
        self._engine = engine
        self._seen: dict[str, Contact] = {}
        self._cache_size = cache_size

    async def ensure(self, user_id: str, name: str | None, phone: str | None) -> None:
        contact = (user_id, name, phone)
        if self._seen.get(user_id) == contact:
            return
        async with self._engine.begin() as conn:
            await conn.execute(ENSURE_USER, {"id": user_id, "name": name, "phone": phone})
        if len(self._seen) >= self._cache_size:
            self._seen.clear()
        self._seen[user_id] = contact
