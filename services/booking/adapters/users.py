"""Users appear on their first authenticated request, each with an empty wallet."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import driver_connection

# Records a batch of sightings in one statement: creates each unknown user with a wallet,
# stores changed contact claims, and writes nothing for a known user whose claims are
# unchanged (an upsert alone would lock, and so write, every row it conflicts with).
# Rows are written in id order, so two batches sharing users cannot deadlock; the upsert
# settles a user that another process created between our look and our insert. Run on
# asyncpg outside a transaction: one statement is its own, without BEGIN and COMMIT round
# trips, and a prepared statement without SQLAlchemy's layer (a tenth of hold + pay's API
# CPU went to this statement through SQLAlchemy, with each user new to the API).
RECORD_USERS = """
WITH seen AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
        AS seen (id, name, phone)
), news AS (
    SELECT seen.* FROM seen LEFT JOIN users ON users.id = seen.id
     WHERE users.id IS NULL
        OR (seen.name IS NOT NULL AND seen.name IS DISTINCT FROM users.name)
        OR (seen.phone IS NOT NULL AND seen.phone IS DISTINCT FROM users.phone_number)
), upserted AS (
    INSERT INTO users (id, name, phone_number)
    SELECT id, name, phone FROM news ORDER BY id
    ON CONFLICT (id) DO UPDATE
        SET name = COALESCE(EXCLUDED.name, users.name),
            phone_number = COALESCE(EXCLUDED.phone_number, users.phone_number),
            updated_at = now()
        WHERE (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM users.name)
           OR (EXCLUDED.phone_number IS NOT NULL
               AND EXCLUDED.phone_number IS DISTINCT FROM users.phone_number)
    RETURNING id
)
INSERT INTO wallets (user_id) SELECT id FROM upserted ORDER BY id ON CONFLICT (user_id) DO NOTHING
"""

Contact = tuple[str, str | None, str | None]


class _Batch:
    """Sightings to record together, and the future their requests wait on."""

    def __init__(self) -> None:
        self.contacts: dict[str, Contact] = {}
        self.recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Every waiter may have gone (clients hung up): the outcome is then nobody's to read.
        self.recorded.add_done_callback(lambda done: done.cancelled() or done.exception())


class UserRegistry:
    """Records users and their contact claims, skipping the database when nothing changed.

    Sightings are written in batches, one statement in flight per process: the requests
    that arrive while a batch is being written go into the next one. A ticket rush brings
    thousands of new users a second, and one statement for a hundred of them costs about
    what one costs alone. A request returns only once its user is recorded.
    """

    def __init__(self, engine: AsyncEngine, cache_size: int = 100_000) -> None:
        self._engine = engine
        self._seen: dict[str, Contact] = {}
        self._cache_size = cache_size
        self._next: _Batch | None = None
        self._writer: asyncio.Task[None] | None = None

    async def ensure(self, user_id: str, name: str | None, phone: str | None) -> None:
        contact = (user_id, name, phone)
        if self._seen.get(user_id) == contact:
            return
        if self._next is None:
            self._next = _Batch()
        batch = self._next
        # Two requests of one user in a batch: both claims count, as if one came after the other.
        _, earlier_name, earlier_phone = batch.contacts.get(user_id, contact)
        batch.contacts[user_id] = (user_id, name or earlier_name, phone or earlier_phone)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        # Shielded: a request cancelled while it waits must not cancel its neighbours' wait.
        await asyncio.shield(batch.recorded)
        if len(self._seen) >= self._cache_size:
            self._seen.clear()
        self._seen[user_id] = contact

    async def _write_batches(self) -> None:
        while (batch := self._next) is not None:
            self._next = None
            try:
                await self._record(list(batch.contacts.values()))
            except asyncio.CancelledError:  # shutting down
                batch.recorded.cancel()
                raise
            except Exception as error:  # each waiting request answers it (503 for an outage)
                batch.recorded.set_exception(error)
            else:
                batch.recorded.set_result(None)

    async def _record(self, contacts: list[Contact]) -> None:
        ids, names, phones = (list(column) for column in zip(*contacts, strict=True))
        async with driver_connection(self._engine) as conn:
            await conn.execute(RECORD_USERS, ids, names, phones)
