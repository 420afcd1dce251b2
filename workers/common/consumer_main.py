"""What every consumer worker's entry point does the same way."""

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from services.common.consumer_settings import ConsumerSettings
from services.common.logging import configure_logging
from services.common.settings import exit_on_help, load_settings_or_exit
from workers.common.consumer import ConsumerPolicy, EventConsumer
from workers.common.kafka_worker import run_worker

S = TypeVar("S", bound=ConsumerSettings)


def consumer_policy(settings: ConsumerSettings) -> ConsumerPolicy:
    """The retry policy set by CONSUMER_MAX_ATTEMPTS and CONSUMER_RETRY_*."""
    return ConsumerPolicy(
        settings.consumer_max_attempts, settings.consumer_retry_base_seconds,
        settings.consumer_retry_max_seconds,
    )


def run_consumer_part(
    doc: str | None, settings_type: type[S], part: str, topics: Sequence[str],
    consumer: Callable[[S], AbstractAsyncContextManager[EventConsumer]], *, metrics_port: Callable[[S], int],
) -> None:
    """`booking-worker <part>`: answer --help with `doc`, or load the settings and consume until stopped."""
    exit_on_help(doc)
    settings = load_settings_or_exit(settings_type)
    configure_logging(part, settings.log_level, settings.log_json)
    run_worker(settings, part, topics, lambda: consumer(settings), metrics_port=metrics_port(settings))
