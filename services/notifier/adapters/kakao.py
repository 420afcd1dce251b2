"""Kakao AlimTalk client (API.md §3): a thin shape over the shared resilient caller."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from services.common.http_resilience import Outcome, ResilientCaller

TemplateCode = Literal["TICKET_CONFIRMED", "PAYMENT_REFUNDED"]


@dataclass(frozen=True)
class AlimTalkVariables:
    name: str
    concert_title: str
    starts_at: datetime
    seat_no: int
    amount: int


@dataclass(frozen=True)
class AlimTalkMessage:
    # Stable per logical notification, so a retry or a redelivery is deduplicated by Kakao.
    message_id: str
    template_code: TemplateCode
    recipient: str
    variables: AlimTalkVariables


class AlimTalkSender(Protocol):
    async def send(self, message: AlimTalkMessage, *, trace_id: str | None = None) -> Outcome:
        """Send one AlimTalk; raises TransientFailure or BreakerOpen when it could not."""
        ...


class KakaoAlimTalkClient:
    """`AlimTalkSender` over HTTP; `caller` brings the timeouts, retries and breaker."""

    def __init__(self, caller: ResilientCaller, *, base_url: str, api_key: str, sender_key: str) -> None:
        self._caller = caller
        self._url = base_url.rstrip("/") + "/v2/alimtalk/send"
        self._headers = {"Authorization": f"KakaoAK {api_key}"}
        self._sender_key = sender_key

    async def send(self, message: AlimTalkMessage, *, trace_id: str | None = None) -> Outcome:
        variables = message.variables
        payload = {
            "message_id": message.message_id,
            "sender_key": self._sender_key,
            "template_code": message.template_code,
            "recipient": message.recipient,
            "variables": {
                "name": variables.name,
                "concert_title": variables.concert_title,
                "starts_at": variables.starts_at.isoformat(),
                "seat_no": variables.seat_no,
                "amount": variables.amount,
            },
        }
        return await self._caller.post_json(self._url, payload, headers=self._headers, trace_id=trace_id)
