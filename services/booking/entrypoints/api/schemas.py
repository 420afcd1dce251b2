"""Request and response bodies of API.md §2."""

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


def storable_text(value: str) -> str:
    """Refuse what PostgreSQL text cannot hold: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def representable_in_utc(value: datetime) -> datetime:
    """Refuse a time whose UTC equivalent falls outside years 1..9999 (the driver's range)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the supported range of dates") from None
    return value


Text200 = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable_text)]


class ScheduleIn(Body):
    starts_at: Annotated[AwareDatetime, AfterValidator(representable_in_utc)]
    seat_count: Annotated[int, Field(ge=1, le=10_000, strict=True)]
    price: Annotated[int, Field(ge=1, le=10_000_000, strict=True)]


AdmitPerSecond = Annotated[int, Field(ge=1, le=10_000, strict=True)]
MaxActive = Annotated[int, Field(ge=1, le=100_000, strict=True)]
Moment = Annotated[AwareDatetime, AfterValidator(representable_in_utc)]


class WaitingRoomIn(Body):
    """A new concert's waiting room; what is left out takes QUEUE_* defaults, open now."""

    admit_per_second: AdmitPerSecond | None = None
    max_active: MaxActive | None = None
    queue_opens_at: Moment | None = None
    sale_opens_at: Moment | None = None

    @model_validator(mode="after")
    def queue_opens_first(self) -> "WaitingRoomIn":
        if self.queue_opens_at and self.sale_opens_at and self.sale_opens_at < self.queue_opens_at:
            raise ValueError("sale_opens_at must not come before queue_opens_at")
        return self


class WaitingRoomPatch(Body):
    """An admin's change to a room during the sale: any of these, at least one."""

    admit_per_second: AdmitPerSecond | None = None
    max_active: MaxActive | None = None
    paused: Annotated[bool, Field(strict=True)] | None = None

    @model_validator(mode="after")
    def changes_something(self) -> "WaitingRoomPatch":
        if self.admit_per_second is None and self.max_active is None and self.paused is None:
            raise ValueError("give at least one of admit_per_second, max_active, paused")
        return self


class ConcertIn(Body):
    title: Text200
    venue: Text200
    schedules: Annotated[list[ScheduleIn], Field(min_length=1, max_length=100)]
    waiting_room: WaitingRoomIn | None = None


class ScheduleOut(BaseModel):
    id: UUID
    starts_at: datetime
    seat_count: int
    price: int


class WaitingRoomPolicyOut(BaseModel):
    admit_per_second: int
    max_active: int
    queue_opens_at: datetime | None
    sale_opens_at: datetime | None


class WaitingRoomOut(WaitingRoomPolicyOut):
    concert_id: UUID
    status: Literal["CLOSED", "PRE_QUEUE", "OPEN", "PAUSED"]
    waiting: int
    active: int


class ConcertOut(BaseModel):
    id: UUID
    title: str
    venue: str
    schedules: list[ScheduleOut]
    waiting_room: WaitingRoomPolicyOut


class ConcertSummary(BaseModel):
    id: UUID
    title: str
    venue: str


class ConcertList(BaseModel):
    items: list[ConcertSummary]


class ScheduleAvailability(ScheduleOut):
    available_seats: int


class ScheduleList(BaseModel):
    items: list[ScheduleAvailability]


class SeatOut(BaseModel):
    seat_no: int
    price: int
    status: Literal["AVAILABLE", "HELD", "SOLD"]


class SeatList(BaseModel):
    items: list[SeatOut]


class QueueTokenIn(Body):
    concert_id: UUID


class QueueTokenOut(BaseModel):
    token: str
    concert_id: UUID
    status: Literal["PRE_QUEUE", "WAITING", "ACTIVE"]
    position: int | None
    eta_seconds: int | None
    expires_at: datetime | None


class Balance(BaseModel):
    user_id: str
    balance: int


class ChargeIn(Body):
    amount: Annotated[int, Field(ge=1, le=10_000_000, strict=True)]


class HistoryItem(BaseModel):
    type: Literal["CHARGE", "USE", "REFUND"]
    amount: int
    balance_after: int
    created_at: datetime


class HistoryQuery(Body):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str | None, Field(max_length=20)] = None


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


class HoldIn(Body):
    schedule_id: UUID
    seat_no: Annotated[int, Field(ge=1, le=10_000, strict=True)]


class ReservationOut(BaseModel):
    id: UUID
    schedule_id: UUID
    seat_no: int
    price: int
    status: Literal["HELD", "PAID", "EXPIRED", "CANCELLED"]
    expires_at: datetime


class PayIn(Body):
    reservation_id: UUID


class TicketOut(BaseModel):
    id: UUID
    payment_id: UUID
    schedule_id: UUID
    seat_no: int
    status: Literal["PENDING", "CONFIRMED", "VOID"]


class PaymentTicket(BaseModel):
    id: UUID
    status: Literal["PENDING", "CONFIRMED", "VOID"]
    schedule_id: UUID
    seat_no: int


class PaymentCreated(BaseModel):
    id: UUID
    reservation_id: UUID
    amount: int
    status: Literal["PAID"]
    ticket: PaymentTicket


class PaymentOut(BaseModel):
    id: UUID
    reservation_id: UUID
    amount: int
    status: Literal["PAID", "REFUNDED"]
    created_at: datetime
    refunded_at: datetime | None


class TicketList(BaseModel):
    items: list[TicketOut]


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


class Problem(BaseModel):
    """An RFC 9457 problem, as every error is answered (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
