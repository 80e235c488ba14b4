"""A ``MosaicClient`` on ``FakeMosaic`` with a fake clock and sleep (no real waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from relay.mosaic import MosaicClient, RetryPolicy
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic

T0 = datetime(2025, 1, 10, 14, 30, tzinfo=UTC)
AGENT = "123e4567-e89b-12d3-a456-789012345678"
POLICY = RetryPolicy(attempts=4, initial=1.0, maximum=8.0, budget=60.0)


class FakeTime:
    """A monotonic clock that only ``sleep`` moves, and the waits it was asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return T0.timestamp() + (self.now - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_client(
    mosaic: FakeMosaic,
    session: aiohttp.ClientSession | None,
    fake_time: FakeTime,
    *,
    key: str = DEFAULT_KEY,
    **options: Any,
) -> MosaicClient:
    settings: dict[str, Any] = {"timeout": 5.0, "retry": POLICY, "rng": lambda: 0.5, **options}
    return MosaicClient(
        key,
        base_url=mosaic.url,
        session=session,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        wall_clock=fake_time.wall_clock,
        **settings,
    )


@pytest.fixture
def client(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> MosaicClient:
    return make_client(fake_mosaic, session, fake_time)
