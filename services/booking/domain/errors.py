"""Business errors: each carries the stable machine code of API.md."""


class BookingError(Exception):
    code = "BOOKING_ERROR"
    title = "Booking rule violated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class NotFound(BookingError):
    code = "NOT_FOUND"
    title = "Not found"


class SeatUnavailable(BookingError):
    code = "SEAT_UNAVAILABLE"
    title = "The seat is not available"


class HoldLimitReached(BookingError):
    code = "HOLD_LIMIT_REACHED"
    title = "Too many live holds on this schedule"


class ReservationNotHeld(BookingError):
    code = "RESERVATION_NOT_HELD"
    title = "The reservation is not held"


class ReservationExpired(BookingError):
    code = "RESERVATION_EXPIRED"
    title = "The hold has expired"


class AlreadyPaid(BookingError):
    code = "ALREADY_PAID"
    title = "The reservation is already paid"


class InsufficientPoints(BookingError):
    code = "INSUFFICIENT_POINTS"
    title = "Not enough points"


class BalanceLimitExceeded(BookingError):
    code = "BALANCE_LIMIT_EXCEEDED"
    title = "The balance would exceed its limit"


class IdempotencyKeyReused(BookingError):
    code = "IDEMPOTENCY_KEY_REUSED"
    title = "The idempotency key was used with another request"


class IdempotencyKeyInProgress(BookingError):
    code = "IDEMPOTENCY_KEY_IN_PROGRESS"
    title = "A request with this idempotency key is still in progress"


class QueueTokenInvalid(BookingError):
    code = "QUEUE_TOKEN_INVALID"
    title = "The queue token is missing, unknown, expired or not yours"


class QueueTokenNotActive(BookingError):
    code = "QUEUE_TOKEN_NOT_ACTIVE"
    title = "The queue token is still waiting"


class QueueNotOpen(BookingError):
    code = "QUEUE_NOT_OPEN"
    title = "The waiting room is not open yet"
