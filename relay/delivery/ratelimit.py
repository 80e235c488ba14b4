"""Token buckets per destination (``Channel.rate_key``), in this process.

The Redis store's ``acquire_rate`` (a Lua script) is the same bucket shared by replicas; one table
of cases in the tests runs against both, so they keep the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.confmodel import RateLimit
from relay.delivery.retry import backoff_delay

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._blocked_until: dict[str, float] = {}
        self._streaks: dict[str, int] = {}

    def throttled(
        self, key: str, now: float, retry_after: float | None, *, base: float, maximum: float
    ) -> float:
        """A 429 from the destination: hold every send to it for its ``Retry-After``, or,
        without one, for a backoff that doubles with each 429 in a row. Returns the hold."""
        streak = self._streaks[key] = self._streaks.get(key, 0) + 1
        hold = retry_after if retry_after is not None else backoff_delay(streak, base, maximum)
        self.block(key, now + hold)
        return hold

    def recovered(self, key: str) -> None:
        """A send went through: the next 429 starts a new streak."""
        self._streaks.pop(key, None)

    def block(self, key: str, until: float) -> None:
        """No send to ``key`` before ``until`` (a 429's hold, or the bucket's next token)."""
        self._blocked_until[key] = max(until, self._blocked_until.get(key, 0.0))

    def blocked_for(self, key: str, now: float) -> float:
        until = self._blocked_until.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._blocked_until[key]
            return 0.0
        return until - now

    def try_acquire(self, key: str, limit: RateLimit | None, now: float) -> float:
        """Take a token now and return 0, or return the seconds until one is available."""
        if limit is None:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(limit.burst), updated=now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
        bucket.updated = max(bucket.updated, now)  # an earlier clock must not refill it twice
        wait = (1.0 - bucket.tokens) / limit.per_second
        if bucket.tokens >= 1.0 or now + wait <= now:  # ready within the clock's resolution
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return wait
