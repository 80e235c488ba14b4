"""The pacer of the background jobs: at once, then per period; a wake re-reads the period."""

from __future__ import annotations

import asyncio

from relay.mosaic.pacing import Pacer


async def test_a_job_runs_at_once_then_waits_its_period_or_a_wake() -> None:
    now = [100.0]
    period: list[float | None] = [3600.0]
    pacer = Pacer(clock=lambda: now[0])
    await asyncio.wait_for(pacer.turn(lambda: period[0]), 5)  # the first turn is now

    waiting = asyncio.create_task(pacer.turn(lambda: period[0]))
    await asyncio.sleep(0)
    pacer.wake()  # a reload that changed nothing of it: it keeps waiting
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiting.done()

    period[0] = 60.0
    now[0] += 61
    pacer.wake()  # a reload that shortened the period, which has passed since the last turn
    await asyncio.wait_for(waiting, 5)


async def test_a_job_turned_off_waits_until_a_wake_turns_it_on() -> None:
    period: list[float | None] = [None]
    pacer = Pacer(clock=lambda: 0.0)
    waiting = asyncio.create_task(pacer.turn(lambda: period[0]))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiting.done()

    period[0] = 300.0
    pacer.wake()
    await asyncio.wait_for(waiting, 5)
