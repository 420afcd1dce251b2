"""SMS client (API.md §3): a thin shape over the shared resilient caller."""

from dataclasses import dataclass
from typing import Protocol

from services.common.http_resilience import Outcome, ResilientCaller


@dataclass(frozen=True)
class SmsMessage:
    # Stable per logical notification, so a retry or a redelivery is deduplicated.
    message_id: str
    to: str
    text: str


class SmsSender(Protocol):
    async def send(self, message: SmsMessage, *, trace_id: str | None = None) -> Outcome:
        """Send one SMS; raises TransientFailure or BreakerOpen when it could not."""
        ...


class SmsClient:
    """`SmsSender` over HTTP; `caller` brings the timeouts, retries and breaker."""

    def __init__(self, caller: ResilientCaller, *, base_url: str, api_key: str) -> None:
        self._caller = caller
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def send(self, message: SmsMessage, *, trace_id: str | None = None) -> Outcome:
        payload = {"message_id": message.message_id, "to": message.to, "text": message.text}
        return await self._caller.post_json(self._url, payload, headers=self._headers, trace_id=trace_id)
