"""The notifier's delivery log against real PostgreSQL and the provider simulators:
concurrent deliveries of one notification send one message and leave no lock behind."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import create_engine
from services.booking.config import Settings
from services.booking.domain.events import NotificationRequested
from services.booking.domain.ticket_saga import notification
from services.common.http_resilience import ResiliencePolicy, ResilientCaller, RetryPolicy, provider_http
from services.common.settings_types import asyncpg_dsn
from services.notifier.adapters import delivery_log
from services.notifier.adapters.delivery_log import LOCK_CLASS, NotificationBusy, lock_key
from services.notifier.adapters.kakao import KakaoAlimTalkClient
from services.notifier.adapters.lock_connection import LockLost
from services.notifier.adapters.sms import SmsClient
from services.notifier.service import NotificationUnknown, Notifier
from tests.support import KAKAO_KEY, SMS_KEY, Booking, eventually, sql
from workers.common.database import is_database_outage
from workers.devstack.simulators import SimulatorServer

pytestmark = pytest.mark.integration
PRICE = 5_000
POLICY = ResiliencePolicy(timeout=2.0, retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05),
                          rate_per_second=1000, burst=100)


@pytest.fixture
async def notifier(settings: Settings, kakao_server: SimulatorServer,
                   sms_server: SimulatorServer) -> AsyncIterator[tuple[Notifier, AsyncEngine]]:
    engine = create_engine(settings)
    async with provider_http() as http:
        service = Notifier(
            engine,
            KakaoAlimTalkClient(ResilientCaller("kakao", http, POLICY), base_url=kakao_server.base_url,
                                api_key=KAKAO_KEY, sender_key="sender"),
            SmsClient(ResilientCaller("sms", http, POLICY), base_url=sms_server.base_url, api_key=SMS_KEY),
        )
        yield service, engine
        await service.close()
    await engine.dispose()


async def confirmation(booking: Booking, settings: Settings) -> NotificationRequested:
    event = await booking.paid(PRICE, "notify")
    await sql(settings, "UPDATE users SET phone_number = '010-1234-5678' WHERE id = :id", id=event.user_id)
    return notification(event, "TICKET_CONFIRMED")


ADVISORY_LOCKS = f"SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = {LOCK_CLASS}"


async def assert_no_lock_held(settings: Settings) -> None:
    """Every delivery let go of its notification's lock: a later one is not kept waiting."""
    assert (await sql(settings, ADVISORY_LOCKS))[0]["n"] == 0


async def test_concurrent_deliveries_of_one_notification_send_one_message(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
    kakao_server: SimulatorServer, sms_server: SimulatorServer,
) -> None:
    service, _ = notifier
    request = await confirmation(booking, settings)

    outcomes = await asyncio.gather(*(service.deliver(request) for _ in range(4)))

    assert Counter(outcomes) == Counter({"delivered:kakao": 1, "duplicate": 3})
    mine = str(request.notification_id)
    assert [call.outcome for call in kakao_server.calls() if call.key == mine] == ["accepted"]
    assert [call for call in sms_server.calls() if call.key == mine] == []
    (log,) = await sql(settings, "SELECT status, channel FROM notifications WHERE id = :id",
                       id=request.notification_id)
    assert log == {"status": "DELIVERED", "channel": "kakao"}
    attempts = await sql(settings, "SELECT status FROM notification_attempts WHERE notification_id = :id",
                         id=request.notification_id)
    assert [row["status"] for row in attempts] == ["ACCEPTED"]
    await assert_no_lock_held(settings)
    assert await service.deliver(request) == "duplicate"


async def test_two_workers_delivering_one_notification_at_once_send_one_message(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
    kakao_server: SimulatorServer, sms_server: SimulatorServer,
) -> None:
    """Each worker holds its locks on a connection of its own: the twin in the other
    worker finds the lock taken, waits for it, then finds the notification delivered."""
    first, engine = notifier
    second = Notifier(engine, first.kakao, first.sms)
    request = await confirmation(booking, settings)
    kakao_server.behave(mode="ok", delay_seconds=0.3)  # the holder is still sending

    try:
        outcomes = await asyncio.gather(*(service.deliver(request) for service in (first, second) * 3))
    finally:
        await second.close()

    assert Counter(outcomes) == Counter({"delivered:kakao": 1, "duplicate": 5})
    mine = str(request.notification_id)
    assert [call.outcome for call in kakao_server.calls() if call.key == mine] == ["accepted"]
    assert [call for call in sms_server.calls() if call.key == mine] == []
    await assert_no_lock_held(settings)


async def test_notifications_delivered_at_once_are_each_delivered_once(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
    kakao_server: SimulatorServer,
) -> None:
    service, _ = notifier
    requests = [await confirmation(booking, settings) for _ in range(12)]

    outcomes = await asyncio.gather(*(service.deliver(request) for request in requests))

    assert outcomes == ["delivered:kakao"] * 12
    mine = {str(request.notification_id) for request in requests}
    accepted = Counter(call.key for call in kakao_server.calls() if call.key in mine)
    assert accepted == Counter(dict.fromkeys(mine, 1))
    logs = await sql(settings, "SELECT status, channel FROM notifications WHERE id = ANY(:ids)",
                     ids=[request.notification_id for request in requests])
    assert logs == [{"status": "DELIVERED", "channel": "kakao"}] * 12
    attempts = await sql(
        settings, "SELECT status FROM notification_attempts WHERE notification_id = ANY(:ids)",
        ids=[request.notification_id for request in requests],
    )
    assert [row["status"] for row in attempts] == ["ACCEPTED"] * 12
    await assert_no_lock_held(settings)


async def test_a_delivery_whose_lock_is_lost_mid_call_stops_and_its_retry_sends_no_second_message(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
    kakao_server: SimulatorServer, sms_server: SimulatorServer,
) -> None:
    """The connection holding the locks dies while a call is out; the next statement finds
    it dead and a new one replaces it, without the locks: the delivery that was out writes
    nothing more, and its retry resumes the call with its message id."""
    service, _ = notifier
    slow, other = await confirmation(booking, settings), await confirmation(booking, settings)
    mine = str(slow.notification_id)
    kakao_server.behave(mode="ok", delay_seconds=1.0, times=1)
    delivery = asyncio.create_task(service.deliver(slow))

    async def call_is_out() -> bool:
        return any(call.key == mine for call in kakao_server.calls())

    await eventually(call_is_out, within=30, what="the Kakao call in flight")
    holder = f"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = {LOCK_CLASS}"
    (row,) = await sql(settings, holder)
    await sql(settings, "SELECT pg_terminate_backend(:pid)", pid=row["pid"])
    with pytest.raises(Exception) as dead:  # the next statement on it: another delivery's lock
        await service.deliver(other)
    assert is_database_outage(dead.value), repr(dead.value)

    with pytest.raises(LockLost) as lost:
        await delivery
    assert is_database_outage(lost.value), repr(lost.value)  # waited out, then retried
    (log,) = await sql(settings, "SELECT status FROM notifications WHERE id = :id",
                       id=slow.notification_id)
    assert log == {"status": "PENDING"}  # nothing written without the lock
    assert await service.deliver(slow) == "delivered:kakao"
    assert await service.deliver(other) == "delivered:kakao"
    # The retry resumed the unsettled call with its own message id: the provider knew it.
    assert [call.outcome for call in kakao_server.calls() if call.key == mine] == ["accepted", "duplicate"]
    assert [call for call in sms_server.calls() if call.key == mine] == []
    await assert_no_lock_held(settings)


async def test_a_lock_held_elsewhere_past_the_wait_gives_up_without_a_call(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
    kakao_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another session keeps the notification's lock: the delivery tries again, then gives
    up (retried by the consumer) without calling a provider or stalling the others."""
    service, _ = notifier
    held, other = await confirmation(booking, settings), await confirmation(booking, settings)
    monkeypatch.setattr(delivery_log, "LOCK_WAIT_SECONDS", 0.3)
    holder = await asyncpg.connect(asyncpg_dsn(settings.database_dsn))
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, lock_key(held.notification_id))
        outcomes = await asyncio.gather(service.deliver(held), service.deliver(other),
                                        return_exceptions=True)
    finally:
        await holder.close()

    assert isinstance(outcomes[0], NotificationBusy), outcomes[0]
    assert outcomes[1] == "delivered:kakao"  # the shared connection was not stalled
    assert [c for c in kakao_server.calls() if c.key == str(held.notification_id)] == []
    await assert_no_lock_held(settings)
    assert await service.deliver(held) == "delivered:kakao"


async def test_a_notification_whose_user_is_gone_is_refused_and_its_lock_released(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
) -> None:
    service, _ = notifier
    request = await confirmation(booking, settings)
    unknown = NotificationRequested(
        notification_id=uuid.uuid4(), template="TICKET_CONFIRMED", user_id="nobody-" + uuid.uuid4().hex[:8],
        payment_id=request.payment_id, schedule_id=request.schedule_id, seat_no=1, amount=PRICE,
    )

    with pytest.raises(NotificationUnknown):
        await service.deliver(unknown)

    await assert_no_lock_held(settings)
    assert await service.deliver(request) == "delivered:kakao"


async def test_after_postgresql_ends_its_connections_the_next_delivery_gets_a_live_one(
    booking: Booking, settings: Settings, notifier: tuple[Notifier, AsyncEngine],
) -> None:
    service, engine = notifier
    request = await confirmation(booking, settings)
    async with engine.connect() as pooled:  # the connection the next delivery will be handed
        pid = (await pooled.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
    await sql(settings, "SELECT pg_terminate_backend(:pid)", pid=pid)

    with pytest.raises(Exception) as first:
        await service.deliver(request)

    assert is_database_outage(first.value), repr(first.value)  # waited out, then retried
    assert await service.deliver(request) == "delivered:kakao"
    await assert_no_lock_held(settings)
