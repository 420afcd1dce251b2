"""What a request must show before a route acts: a caller, an active queue token, a key."""

import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import jwt
from redis.exceptions import RedisError

from services.booking.adapters.rate_limits import RateLimiter
from services.booking.config import Network
from services.booking.domain.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    QueueTokenInvalid,
    QueueTokenNotActive,
)
from services.booking.entrypoints.api.auth import TokenRefused
from services.booking.entrypoints.api.problems import (
    DEPENDENCY_UNAVAILABLE,
    VALIDATION_FAILED,
    ApiError,
    Declared,
    unauthenticated,
)
from services.booking.entrypoints.api.services import Services

log = logging.getLogger(__name__)
SUBJECT = re.compile(r"[A-Za-z0-9_-]{1,64}")
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,128}")
QUEUE_TOKEN_MAX_LENGTH = 200
# The errors a route declares for the guards it runs (Endpoint.errors).
QUEUE_GUARD: tuple[Declared, ...] = (QueueTokenInvalid, QueueTokenNotActive, DEPENDENCY_UNAVAILABLE)
IDEMPOTENCY: tuple[Declared, ...] = (VALIDATION_FAILED, IdempotencyKeyReused, IdempotencyKeyInProgress)


@dataclass(frozen=True)
class Caller:
    user_id: str
    is_admin: bool


def _claims(authorization: str | None, services: Services) -> dict[str, object]:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("a Bearer token is required")
    try:
        claims: dict[str, object] = services.tokens.claims(token)
    except jwt.ExpiredSignatureError:
        raise unauthenticated("the token has expired") from None
    except TokenRefused as refused:  # the token policy's own reasons, naming no claim's value
        raise unauthenticated(str(refused)) from None
    except jwt.MissingRequiredClaimError as missing:
        raise unauthenticated(f"the token lacks the {missing.claim} claim") from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise unauthenticated("the token was not issued for this API") from None
    except jwt.PyJWTError:
        raise unauthenticated("the token is invalid") from None
    return claims


def _optional_text(value: object, limit: int) -> str | None:
    """A contact claim as PostgreSQL text can hold it: no NUL, no lone surrogates."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:limit]
    return cleaned or None


async def authenticate(services: Services, authorization: str | None) -> Caller:
    """The caller the bearer JWT names, recorded as a user on first sight."""
    claims = _claims(authorization, services)
    subject = claims["sub"]
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise unauthenticated("the token subject must be 1-64 characters of [A-Za-z0-9_-]")
    await services.users.ensure(
        subject, _optional_text(claims.get("name"), 200),
        _optional_text(claims.get("phone_number"), 32),
    )
    return Caller(user_id=subject, is_admin=claims.get("role") == "admin")


def present_queue_token(token: str | None) -> str:
    """The X-Queue-Token header's value, or QUEUE_TOKEN_INVALID when it cannot be one."""
    if not token or len(token) > QUEUE_TOKEN_MAX_LENGTH:
        raise QueueTokenInvalid("an X-Queue-Token header is required")
    return token


async def require_active_token(
    services: Services, caller: Caller, token: str | None, concert_id: UUID | None
) -> str:
    """The caller's ACTIVE queue token for the concert, or the error the queue guard answers.

    `concert_id` None: the target is unknown (or not the caller's), which the route answers
    with 404 after this guard; any of the caller's active tokens lets it get that far.
    """
    token = present_queue_token(token)
    state = await services.waiting_rooms.state(token, touch=False)
    if state is None or state.user_id != caller.user_id:
        raise QueueTokenInvalid()
    if concert_id is not None and state.concert_id != concert_id:
        raise QueueTokenInvalid("the queue token was issued for another concert")
    if state.ticket.status != "ACTIVE":
        raise QueueTokenNotActive(f"position {state.ticket.position} in line")
    return token


def checked_idempotency_key(key: str | None, *, required: bool) -> str | None:
    if key is None:
        if required:
            raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED", "an Idempotency-Key header is required")
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(422, "VALIDATION_FAILED", "Idempotency-Key must be 1-128 printable characters")
    return key


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not one of the trusted proxies."""
    address = peer or "unknown"
    if not forwarded_for or not _trusted(address, trusted):
        return address
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else address


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class LimitOutage:
    """Logs, at most every `interval` seconds, that limits are not enforced: Redis is away."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval, self._last = interval, 0.0

    def note(self, error: RedisError) -> None:
        if time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            log.warning("rate limits not enforced while Redis is unavailable: %s", error)


OUTAGE = LimitOutage()


async def within_limit(limiter: RateLimiter, who: str) -> None:
    """Refuse with 429 RATE_LIMITED when `who` has used up its bucket.

    Without Redis, requests go on unlimited: refusing them all would turn a Redis outage
    into an outage of every route, including those that need only the database.
    """
    if not limiter.enabled:
        return
    try:
        refusal = await limiter.take(who)
    except RedisError as error:
        OUTAGE.note(error)
        return
    if refusal is not None:
        raise ApiError(429, "RATE_LIMITED", "too many requests; slow down",
                       {"Retry-After": str(refusal.retry_after_seconds)})
