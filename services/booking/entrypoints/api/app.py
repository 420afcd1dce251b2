"""The booking API application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.booking.config import Settings
from services.booking.entrypoints.api import problems
from services.booking.entrypoints.api.health import router as health_router
from services.booking.entrypoints.api.metrics import POOLS
from services.booking.entrypoints.api.middleware import ApiMiddleware
from services.booking.entrypoints.api.routes import catalogue, payments, points, queue, reservations
from services.booking.entrypoints.api.services import open_services


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_services(settings) as services:
            POOLS.track(services.engine)
            try:
                yield {"services": services}
            finally:
                POOLS.forget(services.engine)

    app = FastAPI(
        title="Concert booking API", version="1.0.0", lifespan=lifespan,
        description="Sells each seat once, takes each payment once. See API.md.",
    )
    app.add_middleware(ApiMiddleware)
    problems.install(app)
    for module in (catalogue, queue, points, reservations, payments):
        app.include_router(module.router)
    app.include_router(health_router)
    return app
