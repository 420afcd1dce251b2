"""The waiting room: take a place in line, ask where you stand."""

from fastapi import APIRouter, Response

from services.booking.domain.errors import QueueTokenInvalid
from services.booking.entrypoints.api.deps import CallerDep, QueueTokenHeader, ServicesDep
from services.booking.entrypoints.api.schemas import QueueTokenOut

router = APIRouter(prefix="/queue", tags=["queue"])


@router.post("/tokens", status_code=201, response_model=QueueTokenOut,
             responses={200: {"model": QueueTokenOut, "description": "the caller's live token"}})
async def issue_token(caller: CallerDep, services: ServicesDep, response: Response) -> QueueTokenOut:
    ticket, created = await services.waiting_room.issue(caller.user_id)
    if not created:
        response.status_code = 200
    return QueueTokenOut.model_validate(ticket, from_attributes=True)


@router.get("/tokens/me", response_model=QueueTokenOut)
async def my_token(
    caller: CallerDep, services: ServicesDep, x_queue_token: QueueTokenHeader = None
) -> QueueTokenOut:
    if not x_queue_token or len(x_queue_token) > 200:
        raise QueueTokenInvalid("an X-Queue-Token header is required")
    state = await services.waiting_room.state(x_queue_token)
    if state is None or state.user_id != caller.user_id:
        raise QueueTokenInvalid()
    return QueueTokenOut.model_validate(state.ticket, from_attributes=True)
