"""`booking-api`: serve the booking HTTP API with uvicorn."""

import argparse

import uvicorn

from services.booking.config import Settings
from services.booking.entrypoints.api.app import create_app
from services.common.settings import load_settings_or_exit


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="booking-api",
        description="Serve the booking API on BOOKING_HOST:BOOKING_PORT (settings: API.md §4).",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    settings = load_settings_or_exit(Settings)
    uvicorn.run(
        create_app(settings), host=settings.booking_host, port=settings.booking_port,
        log_level=args.log_level, access_log=False, loop="auto", http="auto",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
