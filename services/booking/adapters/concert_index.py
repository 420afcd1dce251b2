"""Which concert a schedule or a reservation belongs to: what a queue token is checked against.

Neither ever moves to another concert, so every answer is kept (up to a bound) and the
guarded routes ask PostgreSQL once per schedule, not once per request.
"""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import driver_connection

CONCERT_OF_SCHEDULE = "SELECT concert_id FROM schedules WHERE id = $1"
# Only the caller's own reservation: another user's must stay indistinguishable from none.
CONCERT_OF_RESERVATION = """
SELECT sc.concert_id FROM reservations r JOIN schedules sc ON sc.id = r.schedule_id
 WHERE r.id = $1 AND r.user_id = $2
"""
KEPT = 100_000


class ConcertIndex:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._known: dict[tuple[UUID, str], UUID] = {}

    async def of_schedule(self, schedule_id: UUID) -> UUID | None:
        """The schedule's concert, or None when there is no such schedule."""
        return await self._lookup((schedule_id, ""), CONCERT_OF_SCHEDULE, schedule_id)

    async def of_reservation(self, reservation_id: UUID, user_id: str) -> UUID | None:
        """The concert of the user's reservation, or None when the user has no such reservation."""
        return await self._lookup((reservation_id, user_id), CONCERT_OF_RESERVATION,
                                  reservation_id, user_id)

    async def _lookup(self, key: tuple[UUID, str], sql: str, *args: object) -> UUID | None:
        known = self._known.get(key)
        if known is not None:
            return known
        async with driver_connection(self._engine) as conn:
            found: UUID | None = await conn.fetchval(sql, *args)
        if found is not None:
            if len(self._known) >= KEPT:
                self._known.clear()
            self._known[key] = found
        return found
