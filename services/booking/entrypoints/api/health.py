"""Liveness, readiness and the metrics exposition (served on its own port: metrics_server.py)."""

import asyncio

import orjson
from aiokafka import AIOKafkaClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from services.booking.entrypoints.api.http import Call, Endpoint
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.metrics import exposition_registry
from services.booking.entrypoints.api.schemas import Liveness, Readiness
from services.booking.entrypoints.api.services import Services
from services.booking.entrypoints.api.system_metrics import FAMILIES
from services.common import batched_metrics

CHECK_TIMEOUT = 2.0
LIVE = Response(orjson.dumps({"status": "ok"}))


async def _postgres(services: Services) -> None:
    async with services.reads.connect() as conn:
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


async def live(_: Call) -> Response:
    return LIVE  # the same bytes every time; sending a response does not change it


async def ready(call: Call) -> Response:
    names = ("postgres", "redis", "kafka")
    results = await asyncio.gather(
        *(_check(probe, call.services) for probe in (_postgres, _redis, _kafka))
    )
    checks = dict(zip(names, results, strict=True))
    healthy = all(result == "ok" for result in results)
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return Response(orjson.dumps(body), 200 if healthy else 503)


async def exposition(services: Services) -> tuple[bytes, str]:
    """The Prometheus text of the whole API, with the system view read for this scrape."""
    system = await services.system_view.families()
    batched_metrics.flush()  # this process's last second; the other workers' tickers flush theirs
    registry = exposition_registry(services.settings.prometheus_multiproc_dir, system, FAMILIES)
    return generate_latest(registry), CONTENT_TYPE_LATEST


ENDPOINTS = [
    Endpoint("GET", "/health/live", live, operation_id="checkLiveness",
             response=Liveness, access="public", tag="operations",
             summary="200 while the process runs", rate_limited=False),
    Endpoint("GET", "/health/ready", ready, operation_id="checkReadiness",
             response=Readiness, access="public",
             also={503: "a dependency is down (same body)"}, tag="operations",
             summary="200 when PostgreSQL, Redis and Kafka answer", rate_limited=False),
]
