"""Request and response bodies of API.md §2."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)


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


FIRST_YEAR, LAST_YEAR = 2, 9998
# The same years as a pattern, so the document says what the validator refuses.
YEARS = "^(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"


def within_supported_years(value: datetime) -> datetime:
    """Refuse years 1 and 9999, whose times may fall outside the driver's range in UTC."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"is outside the supported range of dates (years {FIRST_YEAR}-{LAST_YEAR})")
    return value


def integral(value: object) -> object:
    """A number JSON Schema calls an integer (1.0 is one) as an int; anything else as it came."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def decimals_up_to(limit: int) -> str:
    """A pattern of the decimal numbers 1..limit, leading zeros allowed: the document's form of
    a range check made on a string."""
    digits = str(limit)
    choices = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"]
    for place, digit in enumerate(digits):
        lowest, highest = (1 if place == 0 else 0), int(digit) - (place < len(digits) - 1)
        if highest >= lowest:
            rest = len(digits) - place - 1
            choices.append(f"{digits[:place]}[{lowest}-{highest}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return "^0*(?:" + "|".join(choices) + ")$"


NO_NUL = "^[^\\u0000]*$"  # the document's part of storable_text
Text200 = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": NO_NUL}),
                    AfterValidator(storable_text)]
# Strict, as the document says: no strings for numbers, no numbers for times.
Moment = Annotated[AwareDatetime, Field(strict=True, json_schema_extra={"pattern": YEARS}),
                   AfterValidator(within_supported_years)]
Integral = BeforeValidator(integral)
SeatNo = Annotated[int, Field(ge=1, le=10_000, strict=True), Integral]
Price = Annotated[int, Field(ge=1, le=10_000_000, strict=True), Integral]


class ScheduleIn(Body):
    starts_at: Moment
    seat_count: SeatNo
    price: Price


AdmitPerSecond = Annotated[int, Field(ge=1, le=10_000, strict=True), Integral]
MaxActive = Annotated[int, Field(ge=1, le=100_000, strict=True), Integral]


class WaitingRoomIn(Body):
    """A new concert's waiting room; what is left out takes QUEUE_* defaults, open now.

    sale_opens_at may not come before queue_opens_at (422 VALIDATION_FAILED).
    """

    admit_per_second: AdmitPerSecond | None = None
    max_active: MaxActive | None = None
    queue_opens_at: Moment | None = None
    sale_opens_at: Moment | None = None

    @model_validator(mode="after")
    def queue_opens_first(self) -> "WaitingRoomIn":
        if self.queue_opens_at and self.sale_opens_at and self.sale_opens_at < self.queue_opens_at:
            raise ValueError("sale_opens_at must not come before queue_opens_at")
        return self


def _one_of_set(*names: str) -> dict[str, Any]:
    """The document's form of "at least one of these, not null"."""
    return {"anyOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                      for name in names]}


class WaitingRoomPatch(Body):
    """An admin's change to a room during the sale: any of these, at least one."""

    model_config = ConfigDict(json_schema_extra=_one_of_set("admit_per_second", "max_active", "paused"))

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
    amount: Price


class HistoryItem(BaseModel):
    type: Literal["CHARGE", "USE", "REFUND"]
    amount: int
    balance_after: int
    created_at: datetime


class HistoryQuery(Body):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str | None, Field(pattern=decimals_up_to(2**63 - 1))] = None


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


class HoldIn(Body):
    schedule_id: UUID
    seat_no: SeatNo


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
