"""The waiting room: take a place in line, ask where you stand."""

import random

from services.booking.domain.errors import QueueTokenInvalid
from services.booking.domain.waiting_queue import QueueTicket, retry_after_seconds
from services.booking.entrypoints.api.guards import present_queue_token
from services.booking.entrypoints.api.http import Call, Endpoint, reply
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.schemas import QueueTokenOut


def _answer(call: Call, ticket: QueueTicket, status: int) -> Response:
    """The ticket; while it waits, with the Retry-After that paces its next poll."""
    response = reply(QueueTokenOut.model_validate(ticket, from_attributes=True), status)
    if ticket.status == "WAITING":
        rate = call.services.settings.queue_admit_per_second
        seconds = retry_after_seconds(ticket.position, rate, random.uniform(0.8, 1.2))  # noqa: S311
        response.headers["Retry-After"] = str(seconds)
    return response


async def issue_token(call: Call) -> Response:
    ticket, created = await call.services.waiting_room.issue(call.user.user_id)
    return _answer(call, ticket, 201 if created else 200)


async def my_token(call: Call) -> Response:
    token = present_queue_token(call.header("x-queue-token"))
    state = await call.services.waiting_room.state(token)
    if state is None or state.user_id != call.user.user_id:
        raise QueueTokenInvalid()
    return _answer(call, state.ticket, 200)


ENDPOINTS = [
    Endpoint("POST", "/queue/tokens", issue_token, 201, QueueTokenOut,
             also={200: "the caller's live token, again"}, reply_headers=("Retry-After",), tag="queue",
             summary="Take a place in the waiting room's line"),
    Endpoint("GET", "/queue/tokens/me", my_token, response=QueueTokenOut,
             headers=("X-Queue-Token",), reply_headers=("Retry-After",), tag="queue",
             summary="Where the caller's token stands (Retry-After while WAITING)"),
]
