"""Nothing one caller does grows without bound: a cap on live Idempotency-Keys per user,
and a TTL on every per-caller Redis key outside the waiting room (issue 16 point 6)."""

import uuid

import httpx
import pytest
from redis.asyncio import Redis

from services.booking.config import Settings
from tests.support import assert_problem, auth, free_port, new_user, serve_api

pytestmark = pytest.mark.integration
KEY_LIMIT = 3
JSON = {"Content-Type": "application/json"}


def _charge(user: str, key: str) -> tuple[str, dict[str, str], bytes]:
    return "/points/charge", {**auth(user), **JSON, "Idempotency-Key": key}, b'{"amount": 10}'


async def test_a_user_past_the_key_limit_is_refused_and_nothing_changes(settings: Settings) -> None:
    own = settings.model_copy(update={"idempotency_keys_per_user": KEY_LIMIT, "metrics_port": free_port()})
    user, other = new_user("keys"), new_user("keys")
    keys = [uuid.uuid4().hex for _ in range(KEY_LIMIT)]
    async with serve_api(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        for key in keys:
            path, headers, body = _charge(user, key)
            assert (await http.post(path, headers=headers, content=body)).status_code == 200

        path, headers, body = _charge(user, uuid.uuid4().hex)
        refused = await http.post(path, headers=headers, content=body)
        assert_problem(refused, 429, "IDEMPOTENCY_KEY_LIMIT_REACHED")
        # The oldest key stops counting 24 hours after it was made.
        assert 23 * 3600 < int(refused.headers["retry-after"]) <= 24 * 3600
        assert (await http.get("/points", headers=auth(user))).json()["balance"] == 10 * KEY_LIMIT
        # Again and again: each refusal leaves nothing behind, so none frees a place.
        for _ in range(2):
            assert (await http.post(path, headers=headers, content=body)).status_code == 429

        # A repeat of a held key makes no new one: it is still answered as the first time.
        path, headers, body = _charge(user, keys[0])
        repeat = await http.post(path, headers=headers, content=body)
        assert repeat.status_code == 200 and repeat.json()["balance"] == 10
        # A charge without a key is no idempotent request: the limit does not apply.
        plain = await http.post("/points/charge", headers={**auth(user), **JSON}, content=body)
        assert plain.status_code == 200 and plain.json()["balance"] == 10 * KEY_LIMIT + 10

        path, headers, body = _charge(other, uuid.uuid4().hex)
        assert (await http.post(path, headers=headers, content=body)).status_code == 200


async def test_rate_limit_buckets_expire_once_they_would_be_full_again(settings: Settings) -> None:
    namespace = "ttl" + uuid.uuid4().hex[:10]
    own = settings.model_copy(update={"queue_namespace": namespace, "metrics_port": free_port(),
                                      "rate_limit_user_per_second": 5, "rate_limit_anon_per_second": 5})
    async with serve_api(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.get("/points", headers=auth(new_user("ttl")))).status_code == 200
        assert (await http.get("/concerts")).status_code == 200
    redis = Redis.from_url(str(settings.redis_url))
    try:
        keys = [key async for key in redis.scan_iter(match=f"ratelimit:{{{namespace}:*")]
        assert len(keys) == 2, keys  # one user's bucket, one address's
        for key in keys:
            # A bucket of 10 (twice the rate) refills in 2 s; the key outlives that by 1 s at most.
            assert 0 < await redis.pttl(key) <= 3_000, key
    finally:
        await redis.aclose()
