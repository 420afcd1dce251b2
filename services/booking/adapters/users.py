"""Users appear on their first authenticated request, each with an empty wallet."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Creates the user (and wallet) or records changed contact claims, and writes nothing
# for a known user whose claims are unchanged: unlike an upsert, which locks the row it
# conflicts with, so every first request of a returning user cost a WAL flush. Run in
# autocommit: one statement is its own transaction, without BEGIN and COMMIT round trips.
ENSURE_USER = text("""
WITH found AS (
    SELECT name, phone_number FROM users WHERE id = :id
), created AS (
    INSERT INTO users (id, name, phone_number)
    SELECT :id, :name, :phone WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), changed AS (
    UPDATE users SET name = COALESCE(:name, users.name),
                     phone_number = COALESCE(:phone, users.phone_number), updated_at = now()
     WHERE users.id = :id
       AND EXISTS (SELECT 1 FROM found f
                    WHERE (CAST(:name AS text) IS NOT NULL AND :name IS DISTINCT FROM f.name)
                       OR (CAST(:phone AS text) IS NOT NULL
                           AND :phone IS DISTINCT FROM f.phone_number))
), wallet AS (
    INSERT INTO wallets (user_id) SELECT id FROM created ON CONFLICT (user_id) DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM found) OR EXISTS (SELECT 1 FROM created) AS settled
""")
# When a concurrent first request created the user between our look and our insert,
# the upsert records our claims after theirs.
UPSERT_USER = text("""
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
        params = {"id": user_id, "name": name, "phone": phone}
        async with self._engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if not (await autocommit.execute(ENSURE_USER, params)).scalar_one():
                await autocommit.execute(UPSERT_USER, params)
        if len(self._seen) >= self._cache_size:
            self._seen.clear()
        self._seen[user_id] = contact
