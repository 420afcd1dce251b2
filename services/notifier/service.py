"""Deliver a notification once: Kakao AlimTalk first, SMS when AlimTalk cannot deliver.

At most one provider accepts a notification:
- every call carries the notification's stable message id, so a retried or
  repeated call to the same provider is answered without a second message;
- the log records each call before it is made; a call left unanswered by a crash is
  settled with its own provider (same id) before any other channel is tried, and
  while that provider gives no definite answer the notification waits (retry, then
  the DLQ) instead of switching channel;
- a definite Kakao answer (4xx), its open breaker, or its retries exhausted switch
  to SMS, as API.md §2 says; the log is final once a provider has accepted.
"""

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.domain.events import NotificationRequested
from services.common.http_resilience import Accepted, BreakerOpen, Outcome, TransientFailure
from services.notifier.adapters.delivery_log import DeliveryLog, DeliveryLogs, NotificationState
from services.notifier.adapters.kakao import AlimTalkMessage, AlimTalkSender, AlimTalkVariables
from services.notifier.adapters.sms import SmsMessage, SmsSender
from services.notifier.domain.messages import (
    FINAL,
    Channel,
    Content,
    channel_order,
    message_id,
    sms_text,
)

log = logging.getLogger("notifier")


class NotificationUnknown(Exception):
    """The user or schedule the request names does not exist; retrying cannot help."""


class DeliveryFailed(Exception):
    """Neither channel delivered; the providers were already retried: park it."""


class ChannelsUnavailable(Exception):
    """Every channel's breaker refused: nothing was sent, and a breaker lets calls through
    again soon (it refuses a half-open provider's second caller too): retry, then park."""


class DeliveryUnsettled(Exception):
    """An earlier call may have been delivered and its provider cannot say yet: try later."""


@dataclass(frozen=True)
class Miss:
    """Why one channel did not deliver."""

    channel: Channel
    reason: str
    breaker_open: bool = False


class Notifier:
    """Delivers notifications, several at once: their logs share one connection (DeliveryLogs)."""

    def __init__(self, engine: AsyncEngine, kakao: AlimTalkSender, sms: SmsSender) -> None:
        self.logs = DeliveryLogs(engine)
        self.kakao = kakao
        self.sms = sms

    async def close(self) -> None:
        await self.logs.close()

    async def deliver(self, request: NotificationRequested, trace_id: str | None = None) -> str:
        """Deliver or skip the notification; return the result (delivered:<channel>, ...)."""
        async with self.logs.exclusive(request.notification_id) as entry:
            first = channel_order(None)[0]
            state, content = await entry.open(request, first, message_id(request.notification_id))
            if state.status in FINAL:
                return "duplicate"
            if content is None:
                raise NotificationUnknown(f"no user {request.user_id} or schedule {request.schedule_id}")
            if content.phone is None:
                await entry.close("SKIPPED", "the user has no phone_number")
                return "skipped"
            return await self._send_first_accepted(entry, state, content, trace_id)

    async def _send_first_accepted(
        self, entry: DeliveryLog, state: NotificationState, content: Content, trace_id: str | None
    ) -> str:
        failures: list[Miss] = []
        for index, channel in enumerate(channel_order(state.unsettled_channel)):
            resuming = state.unsettled_attempt if channel == state.unsettled_channel else None
            begun = state.begun_attempt if index == 0 else None
            miss = await self._try(entry, channel, content, resuming, begun, trace_id)
            if miss is None:
                return f"delivered:{channel}"
            failures.append(miss)
        reason = "; ".join(f"{miss.channel}: {miss.reason}" for miss in failures)
        await entry.close("FAILED", reason)
        if all(miss.breaker_open for miss in failures):
            raise ChannelsUnavailable(reason)
        raise DeliveryFailed(reason)

    async def _try(
        self, entry: DeliveryLog, channel: Channel, content: Content, resuming: int | None,
        begun: int | None, trace_id: str | None,
    ) -> Miss | None:
        """One channel: None when it accepted, else why it did not. `resuming`: an earlier
        call left unsettled; `begun`: this call, already recorded as SENDING."""
        mid = message_id(entry.notification_id)
        attempt = resuming if resuming is not None else begun
        if attempt is None:
            attempt = await entry.begin(channel, mid)
        try:
            outcome = await self._send(channel, mid, content, trace_id)
        except (BreakerOpen, TransientFailure) as error:
            tries = error.attempts if isinstance(error, TransientFailure) else 0
            if resuming is not None:
                # Still no answer for the earlier call: switching now could send twice.
                await entry.settle(attempt, "SENDING", tries, error=str(error))
                raise DeliveryUnsettled(f"{channel} call of an earlier try is unsettled: {error}") from error
            status = "FAILED" if isinstance(error, TransientFailure) else "BREAKER_OPEN"
            await entry.settle(attempt, status, tries, error=str(error))
            return Miss(channel, str(error), breaker_open=isinstance(error, BreakerOpen))
        if isinstance(outcome, Accepted):
            await entry.delivered(attempt, channel, outcome.attempts, _provider_id(outcome))
            return None
        code = f" {outcome.code}" if outcome.code else ""
        reason = f"rejected with HTTP {outcome.status}{code}"
        await entry.settle(attempt, "REJECTED", outcome.attempts, error=reason)
        return Miss(channel, reason)

    async def _send(
        self, channel: Channel, mid: str, content: Content, trace_id: str | None
    ) -> Outcome:
        assert content.phone is not None
        if channel == "kakao":
            variables = AlimTalkVariables(
                name=content.name, concert_title=content.concert_title,
                starts_at=content.starts_at, seat_no=content.seat_no, amount=content.amount,
            )
            message = AlimTalkMessage(mid, content.template, content.phone, variables)
            return await self.kakao.send(message, trace_id=trace_id)
        return await self.sms.send(SmsMessage(mid, content.phone, sms_text(content)), trace_id=trace_id)


def _provider_id(outcome: Accepted) -> str | None:
    body = outcome.body
    found = body.get("id") or body.get("message_id") if isinstance(body, dict) else None
    return str(found) if found is not None else None
