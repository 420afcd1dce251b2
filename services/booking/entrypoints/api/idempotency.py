"""Idempotent requests: the first completed answer under a key is the answer forever."""

import hashlib
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters import idempotency_store as store
from services.booking.adapters.database import driver_connection
from services.booking.adapters.idempotency_store import IdempotencyKey, StoredResponse
from services.booking.adapters.unit_of_work import PostgresUnitOfWork
from services.booking.domain.errors import (
    BookingError,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
)
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.problems import ApiError, booking_problem

Operation = Callable[[PostgresUnitOfWork], Awaitable[BaseModel]]
StartUnitOfWork = Callable[[], AbstractAsyncContextManager[PostgresUnitOfWork]]


def request_hash(body: BaseModel) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def render(body: BaseModel | dict[str, Any]) -> str:
    if isinstance(body, BaseModel):
        return body.model_dump_json()
    return orjson.dumps(body).decode()


def respond(status: int, body: str) -> Response:
    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(body, status, media_type=media)


def replay(key: IdempotencyKey, stored: StoredResponse) -> Response:
    if stored.request_hash != key.request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    return respond(stored.status_code, stored.body)


async def stored_response(engine: AsyncEngine, key: IdempotencyKey) -> Response | None:
    async with driver_connection(engine) as conn:
        found = await store.load(conn, key)
    return None if found is None else replay(key, found)


def key_limit_reached(limit: int, wait: timedelta) -> ApiError:
    return ApiError(
        429, "IDEMPOTENCY_KEY_LIMIT_REACHED",
        f"more than {limit} Idempotency-Keys in {store.LIVE_HOURS} hours; retry later or reuse a key",
        {"Retry-After": str(max(1, math.ceil(wait.total_seconds())))},
    )


async def _claim_or_replay(conn: asyncpg.Connection, key: IdempotencyKey, limit: int) -> Response | None:
    try:
        if await store.claim(conn, key, limit):
            return None
    except asyncpg.LockNotAvailableError:  # lock_timeout: the first request still holds the key
        raise IdempotencyKeyInProgress() from None
    found = await store.load(conn, key)
    if found is not None:  # a repeat is answered even past the limit: it makes no new key
        return replay(key, found)
    if (wait := await store.until_below_limit(conn, key.user_id, limit)) is not None:
        raise key_limit_reached(limit, wait)
    raise IdempotencyKeyInProgress()


async def run_once(
    start: StartUnitOfWork, key: IdempotencyKey, operation: Operation, success_status: int, *,
    key_limit: int,
) -> Response:
    """Run `operation` in one unit of work with the key's claim, storing what it answered.

    A user holding `key_limit` live keys is refused (429) before anything is written.
    """
    try:
        async with start() as uow:
            replayed = await _claim_or_replay(uow.connection, key, key_limit)
            if replayed is not None:
                return replayed
            body = render(await operation(uow))
            await store.complete(uow.connection, key, success_status, body)
        return respond(success_status, body)
    except BookingError as error:
        if isinstance(error, IdempotencyKeyReused | IdempotencyKeyInProgress):
            raise
        # The operation's writes are rolled back; only its refusal is kept.
        status, refusal = booking_problem(error)
        problem = render(refusal)
        async with start() as uow:
            if not await store.store(uow.connection, key, status, problem):
                found = await store.load(uow.connection, key)
                return replay(key, found) if found else respond(status, problem)
        return respond(status, problem)
