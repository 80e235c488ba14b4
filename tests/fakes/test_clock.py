from __future__ import annotations

import asyncio

from tests.conftest import wait_until
from tests.fakes.clock import FakeClock


async def test_a_sleeper_wakes_when_the_clock_reaches_its_deadline() -> None:
    clock = FakeClock(100.0)
    sleep = asyncio.create_task(clock.wait(asyncio.Event(), 102.0))
    await wait_until(lambda: clock.parked == 102.0)
    clock.advance(1.0)
    await asyncio.sleep(0)
    assert not sleep.done() and clock.parked == 102.0
    clock.advance(1.0)
    await asyncio.wait_for(sleep, 5)
    assert clock.now() == 102.0 and clock.parked is None


async def test_a_sleeper_wakes_when_its_event_is_set() -> None:
    clock, wake = FakeClock(100.0), asyncio.Event()
    sleep = asyncio.create_task(clock.wait(wake, 200.0))
    await wait_until(lambda: clock.parked == 200.0)
    wake.set()
    assert clock.parked is None
    await asyncio.wait_for(sleep, 5)
    assert clock.now() == 100.0


async def test_a_deadline_already_reached_does_not_sleep() -> None:
    clock = FakeClock(100.0)
    await asyncio.wait_for(clock.wait(asyncio.Event(), 100.0), 5)
