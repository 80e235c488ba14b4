from __future__ import annotations

from relay.confmodel import RateLimit
from relay.ratelimit import RateLimiter


def test_token_bucket_allows_a_burst_then_paces() -> None:
    limiter = RateLimiter()
    limit = RateLimit(per_second=2, burst=3)
    assert [limiter.try_acquire("k", limit, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire("k", limit, 0.0) == 0.5
    assert limiter.try_acquire("k", limit, 0.5) == 0.0
    assert limiter.try_acquire("other", limit, 0.5) == 0.0  # buckets are per destination


def test_retry_after_holds_the_destination_exactly() -> None:
    limiter = RateLimiter()
    assert limiter.throttled("k", 10.0, 2.0, base=1.0, maximum=60.0) == 2.0
    assert limiter.blocked_for("k", 11.0) == 1.0
    assert limiter.blocked_for("k", 12.0) == 0.0
    assert limiter.blocked_for("elsewhere", 11.0) == 0.0


def test_429s_without_retry_after_back_off_more_each_time_until_a_send_succeeds() -> None:
    limiter = RateLimiter()
    holds = [limiter.throttled("k", 0.0, None, base=1.0, maximum=5.0) for _ in range(5)]
    assert holds == [1.0, 2.0, 4.0, 5.0, 5.0]
    limiter.recovered("k")
    assert limiter.throttled("k", 0.0, None, base=1.0, maximum=5.0) == 1.0
