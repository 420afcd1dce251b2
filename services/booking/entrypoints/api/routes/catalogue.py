"""Admin concert creation and public browsing."""

from dataclasses import replace
from datetime import UTC, datetime

import orjson

from services.booking.adapters import catalogue
from services.booking.adapters.database import driver_connection
from services.booking.domain.errors import NotFound
from services.booking.entrypoints.api.http import Call, Endpoint, Link
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.schemas import (
    ConcertIn,
    ConcertList,
    ConcertOut,
    ScheduleList,
    SeatList,
)
from services.booking.service_layer import concerts


async def create_concert(call: Call) -> ConcertOut:
    body = await call.body(ConcertIn)
    services = call.services
    asked = body.waiting_room.model_dump(exclude_none=True) if body.waiting_room else {}
    created = await concerts.create_concert(
        services.unit_of_work, services.waiting_rooms, body.title, body.venue,
        [s.model_dump() for s in body.schedules], replace(services.room_defaults, **asked),
        call.user.user_id,
    )
    return ConcertOut.model_validate(created)


async def list_concerts(call: Call) -> ConcertList:
    async with call.services.reads.connect() as conn:
        return ConcertList.model_validate({"items": await catalogue.concerts(conn)})


async def list_schedules(call: Call) -> ScheduleList:
    concert_id = call.path_id("concert_id")
    async with call.services.reads.connect() as conn:
        items = await concerts.list_schedules(conn, concert_id, datetime.now(UTC))
    return ScheduleList.model_validate({"items": items})


async def list_seats(call: Call) -> Response:
    schedule_id = call.path_id("schedule_id")
    async with driver_connection(call.services.engine) as conn:
        seats = await concerts.list_seats(conn, schedule_id, datetime.now(UTC))
    # SeatList's shape written directly: the map is the rush's most frequent read, and a
    # model per seat cost more than the query. The database's constraints hold the types.
    items = [{"seat_no": seat_no, "price": price, "status": status} for seat_no, price, status in seats]
    return Response(orjson.dumps({"items": items}))


CREATED = "$response.body#/id"
ENDPOINTS = [
    Endpoint("POST", "/admin/concerts", create_concert, 201, ConcertOut, operation_id="createConcert",
             body=ConcertIn,
             access="admin", tag="catalogue", summary="Create a concert with its schedules",
             links=(Link("schedules", "listSchedules", {"concert_id": CREATED}),
                    Link("waiting_room", "getWaitingRoom", {"concert_id": CREATED}),
                    Link("seats", "listSeats",
                         {"schedule_id": "$response.body#/schedules/0/id"}),
                    Link("queue_token", "issueQueueToken", body={"concert_id": CREATED}))),
    Endpoint("GET", "/concerts", list_concerts, operation_id="listConcerts",
             response=ConcertList, access="public",
             tag="catalogue", summary="List concerts"),
    Endpoint("GET", "/concerts/{concert_id}/schedules", list_schedules, operation_id="listSchedules",
             response=ScheduleList,
             access="public", errors=(NotFound,), tag="catalogue",
             summary="List a concert's schedules with the seats still available"),
    Endpoint("GET", "/schedules/{schedule_id}/seats", list_seats, operation_id="listSeats", response=SeatList,
             access="public", errors=(NotFound,), tag="catalogue", summary="A schedule's seat map"),
]
