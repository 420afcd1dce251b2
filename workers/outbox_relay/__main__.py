"""`booking-relay` / `python -m workers.outbox_relay`: publish outbox rows to Kafka.

`booking-relay republish --since DURATION` publishes again what a broker lost
(workers/outbox_relay/republish.py).

Configured by environment: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS,
KAFKA_ENABLE_IDEMPOTENCE (false for the embedded Tansu broker), RELAY_* (see
workers/outbox_relay/config.py). SIGINT/SIGTERM finish the batch in flight and exit.
A broker that refuses idempotent producers while KAFKA_ENABLE_IDEMPOTENCE is on stops
the relay at start with exit status 2 and one line saying what to set.

Its metrics (RELAY_METRICS_PORT) include consumer lag per group and DLQ sizes, read
from the broker (workers/outbox_relay/broker_offsets.py); CONSUMER_GROUP_PREFIX names
the workers' groups, as it does for the workers.
"""

import asyncio
import contextlib
import logging
import signal
import sys

from prometheus_client import start_http_server

from services.common.kafka import IdempotenceRefused
from services.common.logging import configure_logging
from services.common.settings import exit_on_help, load_settings_or_exit
from workers.common.event_loop import run_worker_loop
from workers.outbox_relay import republish
from workers.outbox_relay.config import Settings
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.service import serve


def quiet_kafka_client() -> None:
    # aiokafka logs every failed reconnect at ERROR: a storm while the broker is
    # down. The relay logs the outage itself, once when it starts and once when it ends.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def run(settings: Settings) -> None:
    stop, started = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(serve(settings, stop, RelayMetrics(), started))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not started.is_set():
        # Still waiting for PostgreSQL or the broker: there is no batch to finish.
        serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def main() -> None:
    if sys.argv[1:2] == ["republish"]:  # the operator command, not the relay
        republish.main(sys.argv[2:])
        return
    exit_on_help(__doc__)
    settings = load_settings_or_exit(Settings)
    configure_logging("outbox-relay", settings.log_level, settings.log_json)
    quiet_kafka_client()
    if settings.relay_metrics_port:
        try:
            start_http_server(settings.relay_metrics_port, addr=settings.relay_metrics_host)
        except OSError as error:
            print(f"error: cannot serve metrics on RELAY_METRICS_PORT={settings.relay_metrics_port}:"
                  f" {error.strerror}", file=sys.stderr)
            raise SystemExit(2) from None
    try:
        run_worker_loop(run(settings))
    except IdempotenceRefused as error:
        # A setting to change, not an outage to wait out: say so once and stop.
        logging.getLogger("workers.outbox_relay").critical("%s", error)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
