"""One place that maps every error to an RFC 9457 problem response."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.booking.domain import errors

log = logging.getLogger(__name__)

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
    422: "VALIDATION_FAILED", 503: "DEPENDENCY_UNAVAILABLE",
}


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


def problem_body(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {"type": f"https://booking.example/problems/{code.lower().replace('_', '-')}",
            "title": title, "status": status, "detail": detail, "code": code}


def problem(status: int, code: str, title: str, detail: str,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem_body(status, code, title, detail), status_code=status,
                        media_type="application/problem+json", headers=headers)


def booking_problem(error: errors.BookingError) -> tuple[int, dict[str, Any]]:
    status = STATUS_OF.get(type(error), 409)
    return status, problem_body(status, error.code, error.title, error.detail)


def _validation_detail(error: RequestValidationError) -> str:
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid request')}"


def _refused_data(error: Exception) -> bool:
    """SQLSTATE class 22 (data exception): the input is at fault, retrying cannot help."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.BookingError)
    async def on_booking_error(_: Request, error: errors.BookingError) -> JSONResponse:
        status, body = booking_problem(error)
        return JSONResponse(body, status_code=status, media_type="application/problem+json")

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, error: ApiError) -> JSONResponse:
        title = HTTP_CODES.get(error.status, "Error").replace("_", " ").capitalize()
        return problem(error.status, error.code, title, error.detail, error.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return problem(422, "VALIDATION_FAILED", "Validation failed", _validation_detail(error))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, "HTTP_ERROR")
        return problem(error.status_code, code, code.replace("_", " ").capitalize(),
                       str(error.detail), getattr(error, "headers", None))

    async def redis_down(_: Request, __: Exception) -> JSONResponse:
        return await on_api_error(_, dependency_unavailable("Redis"))

    async def database_down(_: Request, error: Exception) -> JSONResponse:
        if _refused_data(error):
            return problem(422, "VALIDATION_FAILED", "Validation failed",
                           "the request holds a value the database cannot store")
        log.warning("database unavailable: %s", error)
        return await on_api_error(_, dependency_unavailable("The database"))

    for redis_error in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(redis_error, redis_down)
    for database_error in (DBAPIError, PoolTimeout, OSError):
        app.add_exception_handler(database_error, database_down)

    @app.exception_handler(IntegrityError)
    async def on_conflict(_: Request, error: IntegrityError) -> JSONResponse:
        # Constraints are the last line of defence; a request that trips one lost a race.
        log.warning("constraint refused a write: %s", error.orig)
        return problem(409, "CONFLICT", "Conflict", "the request conflicts with the current state")

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "INTERNAL_ERROR", "Internal error", "an unexpected error occurred")
