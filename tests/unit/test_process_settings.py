"""Each process requires the settings it uses and no others; together they read all of API.md §4."""

import pytest
from pydantic_settings import BaseSettings

from services.booking.config import Settings as ApiSettings
from services.booking.config import StoreSettings
from services.common.settings_types import DatabaseSettings
from services.notifier.config import Settings as NotifierSettings
from tests.integration.test_infra import section_4
from workers.dlq.config import Settings as DlqSettings
from workers.outbox_relay.config import Settings as RelaySettings
from workers.queue.config import Settings as QueueSettings
from workers.saga.config import Settings as SagaSettings
from workers.token_expiry.config import Settings as TokenExpirySettings

pytestmark = pytest.mark.unit

REQUIRED: dict[str, tuple[type[BaseSettings], set[str]]] = {
    "booking-api": (ApiSettings, {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_JWT_SECRET"}),
    "booking-worker queue": (QueueSettings, {"DATABASE_URL", "REDIS_URL"}),
    "booking-reconcile": (StoreSettings, {"DATABASE_URL", "REDIS_URL"}),
    "booking-relay": (RelaySettings, {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}),
    "booking-dlq": (DlqSettings, {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}),
    "booking-worker saga": (SagaSettings, {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "VENUE_API_URL"}),
    "booking-worker notifier": (NotifierSettings, {
        "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAKAO_API_URL", "KAKAO_API_KEY", "KAKAO_SENDER_KEY",
        "SMS_API_URL", "SMS_API_KEY"}),
    "booking-worker token-expiry": (TokenExpirySettings, {"DATABASE_URL", "REDIS_URL"}),
    "migrations, booking-worker sagas, booking-relay republish": (DatabaseSettings, {"DATABASE_URL"}),
}


@pytest.mark.parametrize("process", REQUIRED)
def test_a_process_requires_what_it_uses_and_nothing_else(process: str) -> None:
    settings, required = REQUIRED[process]
    assert {name.upper() for name, field in settings.model_fields.items() if field.is_required()} == required


def test_every_setting_of_api_md_section_4_is_read_by_some_process() -> None:
    read = {name.upper() for settings, _ in REQUIRED.values() for name in settings.model_fields}
    assert not [name for name in section_4() if name not in read]
