"""A concert's waiting room: shown to anyone, steered by an admin during the sale."""

from services.booking.domain.errors import NotFound
from services.booking.entrypoints.api.http import Call, Endpoint
from services.booking.entrypoints.api.schemas import WaitingRoomOut, WaitingRoomPatch
from services.booking.service_layer import waiting_rooms


async def show(call: Call) -> WaitingRoomOut:
    services = call.services
    room = await waiting_rooms.describe(
        services.unit_of_work, services.waiting_rooms, call.path_id("concert_id"), services.room_defaults)
    return WaitingRoomOut.model_validate(room)


async def change(call: Call) -> WaitingRoomOut:
    concert_id = call.path_id("concert_id")
    body = await call.body(WaitingRoomPatch)
    services = call.services
    await waiting_rooms.change_room(
        services.unit_of_work, services.waiting_rooms, concert_id, body.model_dump(exclude_none=True),
        call.user.user_id, services.room_defaults)
    return await show(call)


ENDPOINTS = [
    Endpoint("GET", "/concerts/{concert_id}/waiting-room", show, operation_id="getWaitingRoom",
             response=WaitingRoomOut,
             access="public", errors=(NotFound,), tag="queue",
             summary="A concert's waiting room: status, line, pace and hours"),
    Endpoint("PATCH", "/admin/concerts/{concert_id}/waiting-room", change, operation_id="changeWaitingRoom",
             response=WaitingRoomOut,
             body=WaitingRoomPatch, access="admin", errors=(NotFound,), tag="queue",
             summary="Pause, resume or re-pace a waiting room (audited; applies within one tick)"),
]
