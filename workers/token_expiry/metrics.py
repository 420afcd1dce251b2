"""What the sweeper serves on TOKEN_EXPIRY_METRICS_PORT."""

from prometheus_client import Counter, Gauge

REMOVED = Counter("token_expiry_tokens_removed", "Spent queue tokens removed from Redis, rows marked swept")
FAILURES = Counter("token_expiry_sweep_failures", "Sweeps rolled back, by the store that failed",
                   ["reason"])
WAITING = Gauge("token_expiry_spent_tokens_waiting", "Spent-token rows not yet swept")
OLDEST_AGE = Gauge("token_expiry_oldest_spent_token_age_seconds",
                   "Age of the oldest spent-token row not yet swept (0: none)")
