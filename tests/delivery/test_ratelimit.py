"""Token buckets and 429 holds. The bucket has two implementations, this process's
``RateLimiter`` and the Redis store's shared one (a Lua script): one table of cases runs against
both, so they cannot drift apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from relay.confmodel import RateLimit
from relay.delivery.ratelimit import RateLimiter
from relay.store import RedisStore
from relay.store.base import SharedRateLimits
from tests.redis_server import RedisServer, redis_namespace, redis_server  # noqa: F401

T0 = 1000.0

Acquire = Callable[[str, float, int, float], Awaitable[float]]
"""Take a token from bucket ``key`` (``per_second``, ``burst``) at ``now``: 0 or the wait."""


async def _local(request: pytest.FixtureRequest) -> AsyncIterator[Acquire]:
    limiter = RateLimiter()

    async def acquire(key: str, per_second: float, burst: int, now: float) -> float:
        return limiter.try_acquire(key, RateLimit(per_second=per_second, burst=burst), now)

    yield acquire


async def _redis(request: pytest.FixtureRequest) -> AsyncIterator[Acquire]:
    server: RedisServer = request.getfixturevalue("redis_server")
    namespace: str = request.getfixturevalue("redis_namespace")
    store = RedisStore(server.url, namespace=namespace, sync=server.sync)
    await store.open()
    try:
        yield store.acquire_rate
    finally:
        await store.close()


BUCKETS: dict[str, Callable[[pytest.FixtureRequest], AsyncIterator[Acquire]]] = {
    "local": _local,
    "redis": _redis,
}
"""Implementation name -> a factory that yields its ``acquire``."""


@pytest.fixture(params=sorted(BUCKETS))
async def acquire(request: pytest.FixtureRequest) -> AsyncIterator[Acquire]:
    async for made in BUCKETS[request.param](request):
        yield made


@dataclass(frozen=True)
class BucketCase:
    per_second: float
    burst: int
    tries: tuple[tuple[float, float], ...]
    """``(now, expected wait)`` in order, ``now`` relative to ``start``."""
    start: float = T0


BUCKET_CASES = {
    "a full bucket allows its burst, then paces": BucketCase(
        2.0, 3, ((0, 0), (0, 0), (0, 0), (0, 0.5), (0.5, 0), (0.5, 0.5))
    ),
    "it refills at the rate, never beyond the burst": BucketCase(
        1.0, 2, ((0, 0), (0, 0), (100, 0), (100, 0), (100, 1.0))
    ),
    "a partial refill shortens the wait": BucketCase(4.0, 1, ((0, 0), (0.125, 0.125), (0.25, 0))),
    "a refused try takes nothing": BucketCase(1.0, 1, ((0, 0), (0, 1.0), (0, 1.0), (1, 0))),
    "a rate below one per second": BucketCase(0.5, 1, ((0, 0), (0, 2.0), (1, 1.0), (2, 0))),
    "an earlier clock cannot refill the bucket": BucketCase(
        1.0, 1, ((10, 0), (0, 1.0), (10.5, 0.5), (11, 0))
    ),
    # 1000000.2 - 1000000.1 is a hair under 0.1: the token lacks 2e-11 s, below what the clock
    # can tell apart from now (a wait that ends "now" would come back for ever).
    "a token short by less than the clock's resolution is ready": BucketCase(
        10.0, 1, ((0.1, 0), (0.2, 0), (0.2, 0.1)), start=1_000_000.0
    ),
}


async def assert_one_bucket_shared(a: SharedRateLimits, b: SharedRateLimits, t0: float) -> None:
    """Two processes (or replicas) asking in turns draw from one bucket per destination."""
    waits = await asyncio.gather(
        *(store.acquire_rate("slack:T1", 2.0, 3, t0) for store in [a, b] * 5)
    )
    assert sorted(waits)[:3] == [0.0, 0.0, 0.0]
    assert all(wait == pytest.approx(0.5) for wait in sorted(waits)[3:])
    assert await b.acquire_rate("slack:T1", 2.0, 3, t0 + 0.5) == 0.0
    assert await a.acquire_rate("slack:T1", 2.0, 3, t0 + 0.5) == pytest.approx(0.5)
    assert await a.acquire_rate("telegram:42", 2.0, 3, t0) == 0.0


@pytest.mark.parametrize("case", BUCKET_CASES.values(), ids=BUCKET_CASES.keys())
async def test_token_bucket(acquire: Acquire, case: BucketCase) -> None:
    waits = [
        await acquire("k", case.per_second, case.burst, case.start + at) for at, _ in case.tries
    ]
    assert waits == pytest.approx([wait for _, wait in case.tries])


async def test_buckets_are_per_destination(acquire: Acquire) -> None:
    assert await acquire("k", 1.0, 1, T0) == 0
    assert await acquire("k", 1.0, 1, T0) == pytest.approx(1.0)
    assert await acquire("other", 1.0, 1, T0) == 0


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
