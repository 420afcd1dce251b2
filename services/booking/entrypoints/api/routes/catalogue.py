"""Admin concert creation and public browsing."""

from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter

from services.booking.adapters import catalogue
from services.booking.entrypoints.api.deps import AdminDep, ServicesDep
from services.booking.entrypoints.api.schemas import (
    ConcertIn,
    ConcertList,
    ConcertOut,
    ScheduleList,
    SeatList,
)
from services.booking.service_layer import concerts

router = APIRouter(tags=["catalogue"])


@router.post("/admin/concerts", status_code=201, response_model=ConcertOut)
async def create_concert(body: ConcertIn, _: AdminDep, services: ServicesDep) -> ConcertOut:
    async with services.engine.begin() as conn:
        created = await concerts.create_concert(
            conn, body.title, body.venue, [s.model_dump() for s in body.schedules]
        )
    return ConcertOut.model_validate(created)


@router.get("/concerts", response_model=ConcertList)
async def list_concerts(services: ServicesDep) -> ConcertList:
    async with services.engine.connect() as conn:
        return ConcertList.model_validate({"items": await catalogue.concerts(conn)})


@router.get("/concerts/{concert_id}/schedules", response_model=ScheduleList)
async def list_schedules(concert_id: UUID, services: ServicesDep) -> ScheduleList:
    async with services.engine.connect() as conn:
        items = await concerts.list_schedules(conn, concert_id, datetime.now(UTC))
    return ScheduleList.model_validate({"items": items})


@router.get("/schedules/{schedule_id}/seats", response_model=SeatList)
async def list_seats(schedule_id: UUID, services: ServicesDep) -> SeatList:
    async with services.engine.connect() as conn:
        items = await concerts.list_seats(conn, schedule_id, datetime.now(UTC))
    return SeatList.model_validate({"items": items})
