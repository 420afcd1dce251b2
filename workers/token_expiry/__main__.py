"""`booking-worker token-expiry`: remove the queue tokens payments spent from Redis.

The API removes a paid token right after its commit; this sweeper is the guarantee
when that step failed (Redis away, process killed). Every payment that spends a token
records it in queue_token_expiries in its own transaction, not yet swept; every second
the sweeper takes up to 500 of the rows not swept, removes their tokens from the waiting
rooms and marks the rows swept, committing only once Redis let the tokens go. Replicas
are safe (rows are taken with SKIP LOCKED). Settings: DATABASE_URL, REDIS_URL,
QUEUE_NAMESPACE, TOKEN_EXPIRY_METRICS_PORT, WORKER_METRICS_HOST, LOG_*.
"""

import asyncio
import signal

from prometheus_client import start_http_server

from services.booking.adapters.queue_token_expiries import QueueTokenExpiries, create_pool
from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.domain.waiting_room import Lifetimes
from services.common.logging import configure_logging
from services.common.redis_client import connect_redis
from services.common.settings import exit_on_help, load_settings_or_exit
from workers.common.event_loop import run_worker_loop
from workers.token_expiry.config import Settings
from workers.token_expiry.sweeper import Sweeper

PART = "token-expiry"


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    pool = await create_pool(settings.database_dsn)
    redis = connect_redis(str(settings.redis_url), timeout=5)
    # Only `expire` is used, which does not depend on token lifetimes.
    rooms = WaitingRooms(redis, Lifetimes(1, 1), namespace=settings.queue_namespace)
    try:
        await Sweeper(QueueTokenExpiries(pool), rooms).run(stop)
    finally:
        await redis.aclose()
        await pool.close()


def main() -> None:
    exit_on_help(__doc__)
    settings = load_settings_or_exit(Settings)
    configure_logging(PART, settings.log_level, settings.log_json)
    if settings.token_expiry_metrics_port:
        start_http_server(settings.token_expiry_metrics_port, addr=settings.worker_metrics_host)
    run_worker_loop(serve(settings))


if __name__ == "__main__":
    main()
