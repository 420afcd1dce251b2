"""`booking-worker queue`: waiting-room admission, token and hold expiry.

Every tick (0.1 s), for each concert's room with people waiting: gives the pre-queue its
random order once the sale opens, then moves the head of the line to ACTIVE at the room's
admit_per_second, never above its max_active (POST /admin/concerts, PATCH
/admin/concerts/{id}/waiting-room; defaults QUEUE_ADMIT_PER_SECOND / QUEUE_MAX_ACTIVE);
forgets expired and abandoned tokens (QUEUE_WAIT_GRACE_SECONDS); releases seat holds past
HOLD_TTL_SECONDS (the API stamps each hold with its end). Reads the API's DATABASE_URL,
REDIS_URL (one server or `redis+cluster://host:port`), DB_POOL_*, QUEUE_NAMESPACE,
QUEUE_ACTIVE_TTL_SECONDS and QUEUE_WAIT_GRACE_SECONDS, plus QUEUE_METRICS_PORT /
QUEUE_METRICS_HOST for its /metrics. One process is enough; a second one is safe (every
step is atomic).
"""

import contextlib

from prometheus_client import start_http_server

from services.booking.adapters.database import create_engine
from services.common.logging import configure_logging
from services.common.redis_client import connect_redis
from services.common.settings import exit_on_help, load_settings_or_exit
from workers.common.event_loop import run_worker_loop
from workers.queue.admission import run
from workers.queue.config import Settings


async def serve(settings: Settings) -> None:
    engine = create_engine(settings)
    redis = connect_redis(str(settings.redis_url), timeout=2)
    try:
        await run(settings, engine, redis)
    finally:
        await redis.aclose()
        await engine.dispose()


def main() -> None:
    exit_on_help(__doc__)
    settings = load_settings_or_exit(Settings)
    configure_logging("queue", settings.log_level, settings.log_json)
    if settings.queue_metrics_port:
        start_http_server(settings.queue_metrics_port, addr=settings.queue_metrics_host)
    with contextlib.suppress(KeyboardInterrupt):
        run_worker_loop(serve(settings))


if __name__ == "__main__":
    main()
