"""The waiting rooms: take a place in a concert's line, ask where you stand."""

import random

from services.booking.domain.errors import NotFound, QueueNotOpen, QueueTokenInvalid
from services.booking.domain.waiting_queue import QueueTicket, retry_after_seconds
from services.booking.entrypoints.api.guards import present_queue_token
from services.booking.entrypoints.api.http import Call, Endpoint, Link, reply
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.schemas import QueueTokenIn, QueueTokenOut
from services.booking.service_layer import waiting_rooms


def _answer(ticket: QueueTicket, admit_per_second: int, status: int) -> Response:
    """The ticket; while it waits, with the Retry-After that paces its next poll."""
    response = reply(QueueTokenOut.model_validate(ticket, from_attributes=True), status)
    if ticket.status == "WAITING" and ticket.position is not None:
        jitter = random.uniform(0.8, 1.2)  # noqa: S311
        response.headers["Retry-After"] = str(retry_after_seconds(ticket.position, admit_per_second, jitter))
    return response


async def issue_token(call: Call) -> Response:
    body = await call.body(QueueTokenIn)
    services = call.services
    issued = await waiting_rooms.issue_token(
        services.unit_of_work, services.waiting_rooms, body.concert_id, call.user.user_id,
        services.room_defaults)
    return _answer(issued.ticket, issued.admit_per_second, 201 if issued.created else 200)


async def my_token(call: Call) -> Response:
    token = present_queue_token(call.header("x-queue-token"))
    state = await call.services.waiting_rooms.state(token)
    if state is None or state.user_id != call.user.user_id:
        raise QueueTokenInvalid()
    return _answer(state.ticket, state.admit_per_second, 200)


ENDPOINTS = [
    Endpoint("POST", "/queue/tokens", issue_token, 201, QueueTokenOut, operation_id="issueQueueToken",
             body=QueueTokenIn,
             errors=(NotFound, QueueNotOpen), also={200: "the caller's live token for this concert, again"},
             reply_headers=("Retry-After",), tag="queue",
             links=(Link("mine", "getMyQueueToken", {"header.X-Queue-Token": "$response.body#/token"}),),
             summary="Take a place in a concert's waiting room (409 QUEUE_NOT_OPEN before it opens)"),
    Endpoint("GET", "/queue/tokens/me", my_token, operation_id="getMyQueueToken", response=QueueTokenOut,
             headers=("X-Queue-Token",), errors=(QueueTokenInvalid,),
             reply_headers=("Retry-After",), tag="queue",
             summary="Where the caller's token stands (Retry-After while WAITING)"),
]
