"""Token buckets per destination (``Channel.rate_key``), in this process."""

from __future__ import annotations

from dataclasses import dataclass

from relay.confmodel import RateLimit

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def try_acquire(self, key: str, limit: RateLimit | None, now: float) -> float:
        """Take a token now and return 0, or return the seconds until one is available."""
        if limit is None:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(limit.burst), updated=now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.per_second
