"""Venue registration client (API.md §3): a thin shape over the shared resilient caller."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.common.http_resilience import Outcome, ResilientCaller


@dataclass(frozen=True)
class VenueRegistration:
    # Stable per ticket, so a retried or redelivered registration is deduplicated.
    registration_id: str
    ticket_id: str
    concert_title: str
    schedule_id: str
    starts_at: datetime
    seat_no: int
    holder: str


class VenueRegistrar(Protocol):
    async def register(self, registration: VenueRegistration, *, trace_id: str | None = None) -> Outcome:
        """Register one ticket; raises TransientFailure or BreakerOpen when it could not."""
        ...


class VenueClient:
    """`VenueRegistrar` over HTTP; `caller` brings the timeouts, retries and breaker."""

    def __init__(self, caller: ResilientCaller, *, base_url: str) -> None:
        self._caller = caller
        self._url = base_url.rstrip("/") + "/v1/registrations"

    async def register(self, registration: VenueRegistration, *, trace_id: str | None = None) -> Outcome:
        payload = {
            "registration_id": registration.registration_id,
            "ticket_id": registration.ticket_id,
            "concert_title": registration.concert_title,
            "schedule_id": registration.schedule_id,
            "starts_at": registration.starts_at.isoformat(),
            "seat_no": registration.seat_no,
            "holder": registration.holder,
        }
        return await self._caller.post_json(self._url, payload, trace_id=trace_id)
