"""Liveness, readiness and the metrics exposition."""

import asyncio

from aiokafka import AIOKafkaClient
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from services.booking.entrypoints.api.deps import ServicesDep
from services.booking.entrypoints.api.metrics import exposition_registry
from services.booking.entrypoints.api.services import Services
from services.booking.entrypoints.api.system_metrics import FAMILIES

router = APIRouter(tags=["operations"])
CHECK_TIMEOUT = 2.0


async def _postgres(services: Services) -> None:
    async with services.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(services: Services) -> None:
    await services.redis.ping()


async def _kafka(services: Services) -> None:
    client = AIOKafkaClient(
        bootstrap_servers=services.settings.kafka_bootstrap_servers, request_timeout_ms=2000
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def _check(probe: object, services: Services) -> str:
    try:
        await asyncio.wait_for(probe(services), CHECK_TIMEOUT)  # type: ignore[operator]
    except Exception as error:  # any failure is a finding to report, not a crash
        return f"{type(error).__name__}: {error}"[:200] or type(error).__name__
    return "ok"


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    names = ("postgres", "redis", "kafka")
    results = await asyncio.gather(
        *(_check(probe, services) for probe in (_postgres, _redis, _kafka))
    )
    checks = dict(zip(names, results, strict=True))
    healthy = all(result == "ok" for result in results)
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    system = await services.system_view.families()
    registry = exposition_registry(services.settings.prometheus_multiproc_dir, system, FAMILIES)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
