"""Settings of the `booking-dlq` CLI, read from the environment."""

from typing import Annotated

from pydantic import Field

from services.common.kafka import KafkaSettings
from services.common.settings_types import DatabaseSettings


class Settings(KafkaSettings, DatabaseSettings):
    # A message replayed this many times and parked again is quarantined rather
    # than replayed once more: it keeps failing, and a loop would hide that.
    dlq_max_replays: Annotated[int, Field(ge=1)] = 3
    # The consumer group whose committed offsets mark how far `replay --all` got.
    dlq_replay_group: Annotated[str, Field(min_length=1)] = "booking-dlq-replay"
