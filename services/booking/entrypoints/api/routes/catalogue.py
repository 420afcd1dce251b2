"""Admin concert creation and public browsing."""

import dataclasses
import logging
from datetime import UTC, datetime

import orjson
from redis.exceptions import RedisError

from services.booking.adapters import catalogue
from services.booking.adapters.database import driver_connection
from services.booking.domain.waiting_room import RoomPolicy
from services.booking.entrypoints.api.http import Call, Endpoint
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.schemas import (
    ConcertIn,
    ConcertList,
    ConcertOut,
    ScheduleList,
    SeatList,
)
from services.booking.service_layer import concerts

log = logging.getLogger(__name__)


async def create_concert(call: Call) -> ConcertOut:
    body = await call.body(ConcertIn)
    services = call.services
    asked = body.waiting_room.model_dump(exclude_none=True) if body.waiting_room else {}
    policy = RoomPolicy(**{**dataclasses.asdict(services.room_defaults), **asked})
    async with services.engine.begin() as conn:
        created, room = await concerts.create_concert(
            conn, body.title, body.venue, [s.model_dump() for s in body.schedules], policy,
            call.user.user_id,
        )
    try:
        await services.waiting_rooms.publish(room)
    except RedisError as error:  # the first token asked for installs it from PostgreSQL
        log.warning("waiting room of concert %s not yet in Redis: %s", room.concert_id, error)
    return ConcertOut.model_validate({**created, "waiting_room": dataclasses.asdict(policy)})


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


ENDPOINTS = [
    Endpoint("POST", "/admin/concerts", create_concert, 201, ConcertOut, body=ConcertIn,
             access="admin", tag="catalogue", summary="Create a concert with its schedules"),
    Endpoint("GET", "/concerts", list_concerts, response=ConcertList, access="public",
             tag="catalogue", summary="List concerts"),
    Endpoint("GET", "/concerts/{concert_id}/schedules", list_schedules, response=ScheduleList,
             access="public", errors=(404,), tag="catalogue",
             summary="List a concert's schedules with the seats still available"),
    Endpoint("GET", "/schedules/{schedule_id}/seats", list_seats, response=SeatList,
             access="public", errors=(404,), tag="catalogue", summary="A schedule's seat map"),
]
