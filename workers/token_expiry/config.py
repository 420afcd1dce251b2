"""Settings of the token-expiry consumer (`booking-worker token-expiry`)."""

from typing import Annotated

from pydantic import Field

from services.booking.config import RedisUrl
from services.common.consumer_settings import ConsumerSettings


class Settings(ConsumerSettings):
    redis_url: RedisUrl
    # Must match the API's QUEUE_NAMESPACE: it names the waiting room's keys.
    queue_namespace: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$")] = "main"
    token_expiry_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9114
