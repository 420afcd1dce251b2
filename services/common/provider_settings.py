"""Resilience settings of one outbound provider, read as `<PROVIDER>_*` variables."""

from services.common.http_resilience import ResiliencePolicy, RetryPolicy


def provider_policy(
    *, timeout: float, max_attempts: int, retry_base: float, retry_max: float,
    rate_per_second: float, breaker_fail_max: int, breaker_reset: float,
) -> ResiliencePolicy:
    return ResiliencePolicy(
        timeout=timeout,
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=retry_base, max_delay=retry_max),
        rate_per_second=rate_per_second,
        burst=max(1, int(rate_per_second // 5)),
        breaker_fail_max=breaker_fail_max,
        breaker_reset_timeout=breaker_reset,
    )
