"""Check the system's invariants across PostgreSQL and Redis (`booking-reconcile`)."""

import asyncio
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters import invariants, room_rows
from services.booking.adapters.database import driver_connection
from services.booking.adapters.invariants import Invariant, Scope, Violation
from services.booking.adapters.waiting_room import WaitingRooms

Status = Literal["ok", "violated", "not checked"]
ACTIVE_TOKENS = "active-tokens-within-limit"
# A check scheduled every minute must never pile up behind a slow one.
SET_TIMEOUT = "SET LOCAL statement_timeout = '50s'"


@dataclass(frozen=True)
class CheckResult:
    name: str
    rule: str
    status: Status
    violations: tuple[Violation, ...] = ()
    total: int = 0
    note: str = ""


async def check_database(
    engine: AsyncEngine, scope: Scope, grace_seconds: float, max_ids: int
) -> list[CheckResult]:
    results = []
    # One snapshot for every query: a payment committing mid-run is seen whole or not
    # at all, so a check never reports the half it happened to read.
    async with driver_connection(engine) as conn, conn.transaction(
        isolation="repeatable_read", readonly=True
    ):
        await conn.execute(SET_TIMEOUT)
        for invariant in invariants.INVARIANTS:
            if invariant.needs_table and not await invariants.table_exists(conn, invariant.needs_table):
                results.append(_not_checked(invariant))
                continue
            found = await invariants.find_violations(conn, invariant, scope, grace_seconds, max_ids)
            status: Status = "violated" if found.total else "ok"
            results.append(CheckResult(invariant.name, invariant.rule, status, found.violations,
                                       found.total))
    return results


def _not_checked(invariant: Invariant) -> CheckResult:
    note = f"not checked: table {invariant.needs_table} does not exist (migrations not applied?)"
    return CheckResult(invariant.name, invariant.rule, "not checked", note=note)


async def check_active_tokens(engine: AsyncEngine, rooms: WaitingRooms) -> CheckResult:
    """Every room's active tokens against its own max_active."""
    rule = "active queue tokens <= the room's max_active"
    async with driver_connection(engine) as conn:
        if not await invariants.table_exists(conn, "waiting_rooms"):
            note = "not checked: table waiting_rooms does not exist (migrations not applied?)"
            return CheckResult(ACTIVE_TOKENS, rule, "not checked", note=note)
        known = await room_rows.rooms(conn)
    counts = await asyncio.gather(*(rooms.counts(room.concert_id) for room in known))
    over = [Violation(str(room.concert_id), f"{count.active} active, max_active {room.policy.max_active}")
            for room, count in zip(known, counts, strict=True) if count.active > room.policy.max_active]
    note = f"{len(known)} waiting rooms, {sum(count.active for count in counts)} active tokens"
    return CheckResult(ACTIVE_TOKENS, rule, "violated" if over else "ok", tuple(over), len(over), note)
