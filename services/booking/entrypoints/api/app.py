"""The booking API application factory."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson

from services.booking.config import Settings
from services.booking.entrypoints.api import docs_page, health, openapi
from services.booking.entrypoints.api.handling import ApiHandler
from services.booking.entrypoints.api.http import Call, Endpoint, Router
from services.booking.entrypoints.api.logs import configure_api_logging
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.metrics import POOLS, forget_process
from services.booking.entrypoints.api.metrics_server import start_metrics_server
from services.booking.entrypoints.api.routes import (
    catalogue,
    payments,
    points,
    queue,
    reservations,
    waiting_rooms,
)
from services.booking.entrypoints.api.servers import BookingApp
from services.booking.entrypoints.api.services import Services, open_services
from services.common import batched_metrics
from services.common.settings import load_settings_or_exit

TITLE = "Concert booking API"
VERSION = "1.0.0"
DESCRIPTION = "Sells each seat once, takes each payment once. See API.md."
ENDPOINTS: list[Endpoint] = [
    *catalogue.ENDPOINTS, *waiting_rooms.ENDPOINTS, *queue.ENDPOINTS, *points.ENDPOINTS,
    *reservations.ENDPOINTS, *payments.ENDPOINTS, *health.ENDPOINTS,
]


def documentation(endpoints: list[Endpoint]) -> list[Endpoint]:
    """/openapi.json and /docs, made once from the endpoints they describe."""
    document = Response(orjson.dumps(openapi.document(endpoints, TITLE, VERSION, DESCRIPTION)))

    async def openapi_json(_: Call) -> Response:
        return document

    return [Endpoint("GET", "/openapi.json", openapi_json, access="public", documented=False),
            *docs_page.endpoints(TITLE)]


class Lifetime:
    """The services of the running app: opened by the lifespan, read by every request."""

    def __init__(self) -> None:
        self.services: Services | None = None

    def current(self) -> Services:
        assert self.services is not None, "the app serves requests only inside its lifespan"
        return self.services


def create_app(settings: Settings) -> BookingApp:
    lifetime = Lifetime()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with open_services(settings) as services:
            POOLS.track(services.engine)
            lifetime.services = services
            ticker = asyncio.create_task(batched_metrics.flush_every_second())
            scrapes = None
            try:
                if settings.metrics_port:
                    scrapes = await start_metrics_server(
                        settings.metrics_host, settings.metrics_port, lambda: health.exposition(services))
                yield
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker  # its last flush
                if scrapes is not None:
                    scrapes.close()
                lifetime.services = None
                POOLS.forget(services.engine)
                forget_process(settings.prometheus_multiproc_dir, os.getpid())

    endpoints = [*ENDPOINTS, *documentation(ENDPOINTS)]
    return BookingApp(ApiHandler(Router(endpoints, lifetime.current)), lifespan)


def app_from_environment() -> BookingApp:
    """The app with settings from the environment: the factory each server worker calls."""
    configure_api_logging()
    return create_app(load_settings_or_exit(Settings))
