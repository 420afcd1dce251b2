"""`booking-api`: serve the booking HTTP API with uvicorn."""

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from services.booking.config import Settings
from services.booking.entrypoints.api.app import configure_api_logging, create_app
from services.common.settings import load_settings_or_exit

FACTORY = "services.booking.entrypoints.api.app:app_from_environment"


def metrics_directory(settings: Settings) -> tuple[Path, bool]:
    """An empty directory for the workers' metric files, and whether we made it.

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR when a worker imports it, so the
    variable is set here, before the workers start; files left by an earlier run
    would be summed with ours, so they go.
    """
    if settings.prometheus_multiproc_dir:
        path = Path(settings.prometheus_multiproc_dir)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="booking-api-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path, True


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="booking-api",
        description="Serve the booking API on BOOKING_HOST:BOOKING_PORT (settings: API.md §4).",
    )
    parser.add_argument(
        "--workers", type=int, default=None,
        help="uvicorn worker processes (default: WEB_CONCURRENCY, else 1)",
    )
    args = parser.parse_args()
    settings = load_settings_or_exit(Settings)
    configure_api_logging()
    workers = args.workers or settings.web_concurrency
    common: dict[str, Any] = {
        "host": settings.booking_host, "port": settings.booking_port,
        "log_config": None,  # uvicorn's loggers go through configure_logging's handlers
        "access_log": False, "loop": "auto", "http": "auto", "timeout_graceful_shutdown": 10,
    }
    if workers <= 1:
        uvicorn.run(create_app(settings), **common)
        return
    directory, made_here = metrics_directory(settings)
    try:
        # Each worker builds its own app from the environment, as uvicorn requires.
        uvicorn.run(FACTORY, factory=True, workers=workers, **common)
    finally:
        if made_here:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
