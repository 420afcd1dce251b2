"""Settings of the queue worker: the booking settings plus where it serves metrics."""

from typing import Annotated

from pydantic import Field

from services.booking.config import Settings as BookingSettings
from services.common.logging import LogSettings


class Settings(BookingSettings, LogSettings):
    # 0 turns the metrics endpoint off (e.g. a second worker on the same host).
    queue_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9111
    queue_metrics_host: str = "127.0.0.1"
