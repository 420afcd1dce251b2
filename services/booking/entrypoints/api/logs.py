"""Logging of the API's processes: the server's supervisor and each worker."""

from services.common.logging import LogSettings, configure_logging
from services.common.settings import load_settings_or_exit


def configure_api_logging() -> None:
    """LOG_LEVEL / LOG_FORMAT for this process; each server worker process calls it too."""
    logs = load_settings_or_exit(LogSettings)
    configure_logging("booking-api", logs.log_level, logs.log_json)
