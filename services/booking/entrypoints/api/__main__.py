"""`booking-api`: serve the booking HTTP API with granian."""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server

from services.booking.config import Settings
from services.booking.entrypoints.api import metrics_server
from services.booking.entrypoints.api.logs import configure_api_logging
from services.common.settings import load_settings_or_exit

# Imported by each forked worker, never here: prometheus_client picks its storage (files
# under PROMETHEUS_MULTIPROC_DIR, or memory) when first imported, and workers inherit that.
FACTORY = "services.booking.entrypoints.api.app:app_from_environment"
# Connections the kernel may queue before the workers accept them (capped by somaxconn):
# a crowd arrives faster than any accept loop, and a dropped SYN costs its client 1-3 s.
BACKLOG = 4096
# Connections each worker serves at once. In a rush every waiting user keeps a connection
# open between polls; at granian's default (backlog / workers: 2,048) new arrivals waited
# in the kernel's queue behind idle ones (bench rush: token issue p50 5.4 s, 0.9 s here).
BACKPRESSURE = 8192
# API.md §1: request heads over 16 KiB are refused. hyper parses the head from a buffer of
# at most this size and answers 431 when the head does not fit (the request line counts).
MAX_HEAD_BYTES = 16 * 1024


def http1_settings(settings: Settings) -> HTTP1Settings:
    """granian's HTTP/1 limits: the head's size, and how long a client may take to send it."""
    return HTTP1Settings(
        max_buffer_size=MAX_HEAD_BYTES,
        header_read_timeout=settings.http_header_read_timeout_seconds * 1000,
    )


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
        help="server worker processes (default: WEB_CONCURRENCY, else one per core)",
    )
    args = parser.parse_args()
    settings = load_settings_or_exit(Settings)
    configure_api_logging()
    workers = args.workers or settings.web_concurrency
    try:
        if settings.metrics_port:
            metrics_server.listen(settings.metrics_host, settings.metrics_port)
    except OSError as error:
        sys.exit(f"error: cannot serve metrics on METRICS_HOST:METRICS_PORT "
                 f"({settings.metrics_host}:{settings.metrics_port}): {error.strerror or error}")
    directory, made_here = metrics_directory(settings) if workers > 1 else (None, False)
    try:
        # Each worker process builds its own app from the environment (the factory).
        Server(
            FACTORY, factory=True, address=settings.booking_host, port=settings.booking_port,
            interface=Interfaces.RSGI, workers=workers, loop=Loops.uvloop, http=HTTPModes.http1,
            websockets=False, backlog=BACKLOG, backpressure=BACKPRESSURE,
            http1_settings=http1_settings(settings),
            log_level=LogLevels.warning,
            workers_kill_timeout=10,
        ).serve()
    finally:
        if made_here and directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
