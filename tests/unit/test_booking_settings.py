"""The booking settings of API.md §4 that guard the API: defaults, limits, refusals."""

import ipaddress
from typing import Any

import pytest
from pydantic import ValidationError

from services.booking.config import Settings
from services.common.settings import InvalidSettings, load_settings
from tests.support import JWT_SECRET

pytestmark = pytest.mark.unit

REQUIRED = {
    "database_url": "postgresql+asyncpg://booking@127.0.0.1/booking",
    "redis_url": "redis://127.0.0.1:6379/0", "kafka_bootstrap_servers": "127.0.0.1:9092",
    "auth_jwt_secret": "s" * 32,
}


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)


def settings(**values: Any) -> Settings:
    return Settings.model_validate({**REQUIRED, **values})


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as error:
        settings(**values)
    return str(error.value)


@pytest.mark.parametrize("secret", ["s" * 32, "\u00e9" * 16, "\ud55c" * 11, JWT_SECRET])
def test_a_secret_of_32_bytes_or_more_is_accepted(secret: str) -> None:
    assert settings(auth_jwt_secret=secret).auth_jwt_secret == secret


@pytest.mark.parametrize("secret", ["s" * 31, "\u00e9" * 15 + "x", "a-16-char-secret", "", "changeme"])
def test_a_secret_shorter_than_32_bytes_is_refused(secret: str) -> None:
    assert "auth_jwt_secret" in refusal(auth_jwt_secret=secret)


def test_a_short_secret_stops_the_process_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**REQUIRED, "auth_jwt_secret": "x" * 31}.items():
        monkeypatch.setenv(name.upper(), value)
    with pytest.raises(InvalidSettings) as error:
        load_settings(Settings)
    message = str(error.value)
    assert "\n" not in message and message.startswith("invalid setting AUTH_JWT_SECRET")
    assert "32 bytes" in message


def test_the_token_policy_defaults() -> None:
    defaults = settings()
    assert defaults.auth_jwt_audience is None and defaults.auth_jwt_issuer is None
    assert defaults.auth_jwt_max_lifetime_seconds == 86_400


def test_audience_and_issuer_are_taken_as_given_but_never_blank() -> None:
    given = settings(auth_jwt_audience=" booking-api ", auth_jwt_issuer="https://gateway.example")
    assert (given.auth_jwt_audience, given.auth_jwt_issuer) == ("booking-api", "https://gateway.example")
    for field in ("auth_jwt_audience", "auth_jwt_issuer"):
        for blank in ("", "  "):
            assert field in refusal(**{field: blank})


@pytest.mark.parametrize("lifetime", [0, -1, "day"])
def test_a_maximum_lifetime_below_one_second_is_refused(lifetime: Any) -> None:
    assert "auth_jwt_max_lifetime_seconds" in refusal(auth_jwt_max_lifetime_seconds=lifetime)


def test_the_metrics_and_rate_limit_defaults() -> None:
    defaults = settings()
    assert (defaults.metrics_host, defaults.metrics_port) == ("127.0.0.1", 9100)
    assert defaults.rate_limit_user_per_second == 20
    assert defaults.rate_limit_anon_per_second == 100
    assert defaults.forwarded_allow_ips == "" and defaults.forwarded_networks == ()


@pytest.mark.parametrize("port", [65_536, -1, "metrics"])
def test_a_metrics_port_out_of_range_is_refused(port: Any) -> None:
    assert "metrics_port" in refusal(metrics_port=port)


def test_metrics_port_zero_means_no_metrics_endpoint() -> None:
    # As the workers' *_METRICS_PORT=0: for processes nothing scrapes (bench, chaos).
    assert settings(metrics_port=0).metrics_port == 0


def test_metrics_are_never_on_the_public_port() -> None:
    assert "METRICS_PORT must differ from BOOKING_PORT" in refusal(metrics_port=8000)
    moved = settings(booking_port=9100, metrics_port=9200)
    assert (moved.booking_port, moved.metrics_port) == (9100, 9200)
    assert "METRICS_PORT" in refusal(booking_port=9100)


def test_an_empty_metrics_host_is_refused() -> None:
    assert "metrics_host" in refusal(metrics_host=" ")


def test_a_rate_limit_of_zero_turns_it_off_and_below_zero_is_refused() -> None:
    off = settings(rate_limit_user_per_second=0, rate_limit_anon_per_second=0)
    assert (off.rate_limit_user_per_second, off.rate_limit_anon_per_second) == (0, 0)
    for field in ("rate_limit_user_per_second", "rate_limit_anon_per_second"):
        assert field in refusal(**{field: -1})


def test_forwarded_allow_ips_are_parsed_into_networks() -> None:
    parsed = settings(forwarded_allow_ips=" 10.0.0.7, 172.16.5.4/12,::1 ,fd00::/8,").forwarded_networks
    assert parsed == (
        ipaddress.ip_network("10.0.0.7/32"), ipaddress.ip_network("172.16.0.0/12"),
        ipaddress.ip_network("::1/128"), ipaddress.ip_network("fd00::/8"),
    )
    assert ipaddress.ip_address("172.31.255.1") in parsed[1]


@pytest.mark.parametrize("value", ["*", "10.0.0.300", "10.0.0.0/33", "proxy.internal", "10.0.0.1;10.0.0.2"])
def test_a_forwarded_allow_ip_that_is_no_address_or_network_is_refused(value: str) -> None:
    message = refusal(forwarded_allow_ips=f"127.0.0.1,{value}")
    assert "forwarded_allow_ips" in message and "not an IP address or CIDR block" in message


def test_a_copy_with_other_trusted_proxies_trusts_those() -> None:
    # Read once, then copied as the tests and the chaos run copy settings: the copy must
    # not keep the original's parsed networks.
    original = settings()
    assert original.forwarded_networks == ()
    copied = original.model_copy(update={"forwarded_allow_ips": "10.0.0.0/8"})
    assert copied.forwarded_networks == (ipaddress.ip_network("10.0.0.0/8"),)


def test_the_header_read_timeout_defaults_to_ten_seconds_within_granians_range() -> None:
    assert settings().http_header_read_timeout_seconds == 10
    assert settings(http_header_read_timeout_seconds=60).http_header_read_timeout_seconds == 60
    for bad in (0, 61, "slow"):
        assert "http_header_read_timeout_seconds" in refusal(http_header_read_timeout_seconds=bad)


def test_a_user_may_hold_a_thousand_idempotency_keys_by_default() -> None:
    assert settings().idempotency_keys_per_user == 1000
    for bad in (0, -1, "many"):
        assert "idempotency_keys_per_user" in refusal(idempotency_keys_per_user=bad)
