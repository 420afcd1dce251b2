"""The booking API application factory."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.booking.config import Settings
from services.booking.entrypoints.api import problems
from services.booking.entrypoints.api.health import router as health_router
from services.booking.entrypoints.api.metrics import POOLS, forget_process
from services.booking.entrypoints.api.middleware import ApiMiddleware
from services.booking.entrypoints.api.routes import catalogue, payments, points, queue, reservations
from services.booking.entrypoints.api.services import open_services
from services.common.logging import LogSettings, configure_logging
from services.common.settings import load_settings_or_exit


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_services(settings) as services:
            POOLS.track(services.engine)
            try:
                yield {"services": services}
            finally:
                POOLS.forget(services.engine)
                forget_process(settings.prometheus_multiproc_dir, os.getpid())

    app = FastAPI(
        title="Concert booking API", version="1.0.0", lifespan=lifespan,
        description="Sells each seat once, takes each payment once. See API.md.",
        # FastAPI's own OpenTelemetry hooks asked for a tracer provider on every request
        # (6 % of a simple request's CPU) while nothing here configures OpenTelemetry:
        # our metrics are Prometheus (metrics.py) and trace ids ride on logs and events.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(ApiMiddleware)
    problems.install(app)
    for module in (catalogue, queue, points, reservations, payments):
        app.include_router(module.router)
    app.include_router(health_router)
    return app


def configure_api_logging() -> None:
    """LOG_LEVEL / LOG_FORMAT for this process; each uvicorn worker process calls it too."""
    logs = load_settings_or_exit(LogSettings)
    configure_logging("booking-api", logs.log_level, logs.log_json)


def app_from_environment() -> FastAPI:
    """The app with settings from the environment: the factory each uvicorn worker calls."""
    configure_api_logging()
    return create_app(load_settings_or_exit(Settings))
