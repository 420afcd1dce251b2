"""One place that maps every error to an RFC 9457 problem response."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.booking.domain import errors
from services.booking.entrypoints.api.messages import ClientGone, Response

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
STATUS_OF: dict[type[errors.BookingError], int] = {
    errors.NotFound: 404,
    errors.SeatUnavailable: 409,
    errors.HoldLimitReached: 409,
    errors.ReservationNotHeld: 409,
    errors.AlreadyPaid: 409,
    errors.BalanceLimitExceeded: 409,
    errors.IdempotencyKeyInProgress: 409,
    errors.ReservationExpired: 410,
    errors.InsufficientPoints: 402,
    errors.IdempotencyKeyReused: 422,
    errors.QueueTokenInvalid: 401,
    errors.QueueTokenNotActive: 403,
}
HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED", 429: "RATE_LIMITED", 500: "INTERNAL_ERROR", 503: "DEPENDENCY_UNAVAILABLE",
}


@dataclass(frozen=True)
class Refusal:
    """An answer an endpoint declares it may give (for the document): its status and code."""

    status: int
    code: str


UNAUTHENTICATED = Refusal(401, "UNAUTHENTICATED")
FORBIDDEN = Refusal(403, "FORBIDDEN")
PAYLOAD_TOO_LARGE = Refusal(413, "PAYLOAD_TOO_LARGE")
UNSUPPORTED_MEDIA_TYPE = Refusal(415, "UNSUPPORTED_MEDIA_TYPE")
VALIDATION_FAILED = Refusal(422, "VALIDATION_FAILED")
RATE_LIMITED = Refusal(429, "RATE_LIMITED")
DEPENDENCY_UNAVAILABLE = Refusal(503, "DEPENDENCY_UNAVAILABLE")
CONFLICT = Refusal(409, "CONFLICT")  # a write that lost a race to a database constraint
IDEMPOTENCY_KEY_REQUIRED = Refusal(400, "IDEMPOTENCY_KEY_REQUIRED")
Declared = type[errors.BookingError] | Refusal  # what Endpoint.errors lists


def refusal(declared: Declared) -> Refusal:
    """The status and code a declared error is answered with."""
    if isinstance(declared, Refusal):
        return declared
    return Refusal(STATUS_OF.get(declared, 409), declared.code)


class ApiError(Exception):
    """A protocol-level refusal (authentication, headers, dependencies), not a business rule."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def unauthenticated(detail: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", detail, {"WWW-Authenticate": "Bearer"})


def dependency_unavailable(name: str) -> ApiError:
    return ApiError(503, "DEPENDENCY_UNAVAILABLE", f"{name} is unavailable; try again shortly",
                    {"Retry-After": "2"})


def validation_failed(error: ValidationError) -> ApiError:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return ApiError(422, "VALIDATION_FAILED", f"{where}: {first.get('msg', 'invalid request')}")


def title_of(status: int) -> str:
    return HTTP_CODES.get(status, "HTTP_ERROR").replace("_", " ").capitalize()


def problem_body(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {"type": f"https://booking.example/problems/{code.lower().replace('_', '-')}",
            "title": title, "status": status, "detail": detail, "code": code}


def problem(status: int, code: str, title: str, detail: str,
            headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps(problem_body(status, code, title, detail))
    return Response(body, status, headers, PROBLEM_JSON)


def booking_problem(error: errors.BookingError) -> tuple[int, dict[str, Any]]:
    status = STATUS_OF.get(type(error), 409)
    return status, problem_body(status, error.code, error.title, error.detail)


def _refused_data(error: Exception) -> bool:
    """SQLSTATE class 22 (data exception): the input is at fault, retrying cannot help."""
    sqlstate = getattr(getattr(error, "orig", error), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def _api_error(error: ApiError) -> Response:
    return problem(error.status, error.code, title_of(error.status), error.detail, error.headers)


def error_response(error: Exception, request: str) -> Response:
    """The answer to any error `request` ("METHOD /path") raised: a problem, never a stack trace."""
    if isinstance(error, ApiError):
        return _api_error(error)
    if isinstance(error, errors.BookingError):
        status, body = booking_problem(error)
        return Response(orjson.dumps(body), status, media_type=PROBLEM_JSON)
    if isinstance(error, ClientGone):  # nobody reads this answer
        return problem(400, "BAD_REQUEST", "Bad request", "the client went away mid-request")
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return _api_error(dependency_unavailable("Redis"))
    if isinstance(error, IntegrityError | asyncpg.IntegrityConstraintViolationError):
        # Constraints are the last line of defence; a request that trips one lost a race.
        log.warning("constraint refused a write: %s", getattr(error, "orig", error))
        return problem(409, "CONFLICT", "Conflict", "the request conflicts with the current state")
    if isinstance(error, DBAPIError | PoolTimeout | OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
        if _refused_data(error):
            return problem(422, "VALIDATION_FAILED", "Validation failed",
                           "the request holds a value the database cannot store")
        log.warning("database unavailable: %s", error)
        return _api_error(dependency_unavailable("The database"))
    log.error("unhandled error on %s", request, exc_info=error)
    return problem(500, "INTERNAL_ERROR", "Internal error", "an unexpected error occurred")
