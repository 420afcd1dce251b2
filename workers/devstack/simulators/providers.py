"""The three simulated providers, each exactly as API.md §3 describes its request."""

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

ProviderName = Literal["kakao", "sms", "venue"]


class _Request(BaseModel):
    # Providers ignore fields they do not know; the contract fixes only these.
    model_config = ConfigDict(extra="ignore")


class AlimTalkVariables(_Request):
    name: str
    concert_title: str
    starts_at: str
    seat_no: int
    amount: int


class AlimTalkRequest(_Request):
    message_id: str
    sender_key: str
    template_code: Literal["TICKET_CONFIRMED", "PAYMENT_REFUNDED"]
    recipient: str
    variables: AlimTalkVariables


class SmsRequest(_Request):
    message_id: str
    to: str
    text: str


class VenueRegistrationRequest(_Request):
    registration_id: str
    ticket_id: str
    concert_title: str
    schedule_id: str
    starts_at: str
    seat_no: int
    holder: str


@dataclass(frozen=True)
class ProviderSpec:
    name: ProviderName
    path: str
    request_model: type[_Request]
    id_field: str
    # The Authorization scheme the provider demands; None when it checks no key.
    auth_scheme: str | None
    accepted_status: int
    accepted_label: str = "ACCEPTED"
    recipient_field: str | None = None
    seat_field: str | None = None


PROVIDERS: dict[ProviderName, ProviderSpec] = {
    "kakao": ProviderSpec(
        name="kakao",
        path="/v2/alimtalk/send",
        request_model=AlimTalkRequest,
        id_field="message_id",
        auth_scheme="KakaoAK",
        accepted_status=200,
        recipient_field="recipient",
    ),
    "sms": ProviderSpec(
        name="sms",
        path="/v1/messages",
        request_model=SmsRequest,
        id_field="message_id",
        auth_scheme="Bearer",
        accepted_status=200,
        recipient_field="to",
    ),
    "venue": ProviderSpec(
        name="venue",
        path="/v1/registrations",
        request_model=VenueRegistrationRequest,
        id_field="registration_id",
        auth_scheme=None,
        accepted_status=201,
        accepted_label="REGISTERED",
        seat_field="seat_no",
    ),
}
