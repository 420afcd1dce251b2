"""The token policy of API.md §1 over HTTP: audience, issuer, lifetime and contact claims."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.booking.config import Settings
from tests.support import Booking, assert_problem, auth, make_settings, new_user, serve_api, sql

pytestmark = pytest.mark.integration

AUDIENCE = "booking-api"
ISSUER = "https://gateway.example.test"
LIFETIME = 3600
GATEWAY = {"aud": AUDIENCE, "iss": ISSUER}


@pytest.fixture(scope="module")
def strict_settings(database_url: str, redis_url: str, kafka_bootstrap: str) -> Settings:
    return make_settings(
        database_url, redis_url, kafka_bootstrap, auth_jwt_audience=AUDIENCE,
        auth_jwt_issuer=ISSUER, auth_jwt_max_lifetime_seconds=LIFETIME,
    )


@pytest.fixture(scope="module")
async def strict(strict_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API that requires this audience and issuer and tokens living at most an hour."""
    async with serve_api(strict_settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


async def _users(settings: Settings, user: str) -> list[dict[str, Any]]:
    return await sql(settings, "SELECT name, phone_number FROM users WHERE id = :id", id=user)


@pytest.mark.parametrize("claims", [
    GATEWAY, {"aud": ["other-api", AUDIENCE], "iss": ISSUER},
    {**GATEWAY, "expires_in": LIFETIME - 5}, {**GATEWAY, "name": "Lee", "phone_number": "+821012345678"},
], ids=["gateway", "one-of-its-audiences", "longest-lifetime", "contact-claims"])
async def test_a_token_the_policy_allows_is_accepted(
    strict: httpx.AsyncClient, strict_settings: Settings, claims: dict[str, Any]
) -> None:
    user = new_user("pol")
    response = await strict.get("/points", headers=auth(user, **claims))
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": user, "balance": 0}
    assert len(await _users(strict_settings, user)) == 1


@pytest.mark.parametrize("claims", [
    {"iss": ISSUER}, {"aud": "another-api", "iss": ISSUER}, {"aud": ["another-api"], "iss": ISSUER},
    {"aud": AUDIENCE}, {"aud": AUDIENCE, "iss": "https://evil.example.test"},
    {**GATEWAY, "expires_in": LIFETIME + 60}, {**GATEWAY, "phone_number": "123"},
    {**GATEWAY, "phone_number": "010-1234-5678x"}, {**GATEWAY, "name": ""},
    {**GATEWAY, "name": "x" * 101}, {**GATEWAY, "name": "Lee\x00"}, {**GATEWAY, "name": "Lee\u2028"},
], ids=["no-aud", "wrong-aud", "wrong-aud-list", "no-iss", "wrong-iss", "too-long-lived",
        "short-phone", "phone-with-letter", "empty-name", "long-name", "nul-in-name",
        "line-separator-in-name"])
async def test_a_token_the_policy_refuses_is_401(
    strict: httpx.AsyncClient, strict_settings: Settings, claims: dict[str, Any]
) -> None:
    user = new_user("pol")
    for _ in range(2):  # the second time too: a refused token is never remembered
        for method, path in (("GET", "/points"), ("POST", "/queue/tokens"), ("GET", "/tickets")):
            response = await strict.request(method, path, headers=auth(user, **claims))
            assert_problem(response, 401, "UNAUTHENTICATED")
    assert await _users(strict_settings, user) == []


async def test_a_phone_number_written_with_dashes_is_stored_as_sent(
    strict: httpx.AsyncClient, strict_settings: Settings
) -> None:
    user = new_user("pol")
    headers = auth(user, **GATEWAY, name="Kim", phone_number="+82 10-1234-5678")
    assert (await strict.get("/points", headers=headers)).status_code == 200
    assert await _users(strict_settings, user) == [{"name": "Kim", "phone_number": "+82 10-1234-5678"}]


async def test_without_a_configured_audience_a_token_naming_one_is_accepted(booking: Booking) -> None:
    user = new_user("aud")
    for claims in (GATEWAY, {"aud": "anything"}, {"aud": ["a", "b"], "iss": "anyone"}):
        response = await booking.http.get("/points", headers=auth(user, **claims))
        assert response.status_code == 200, response.text


async def test_the_default_api_refuses_tokens_living_over_a_day(booking: Booking) -> None:
    accepted = await booking.http.get("/points", headers=auth(new_user(), expires_in=86_400 - 60))
    assert accepted.status_code == 200, accepted.text
    refused = await booking.http.get("/points", headers=auth(new_user(), expires_in=86_400 + 60))
    assert_problem(refused, 401, "UNAUTHENTICATED")
