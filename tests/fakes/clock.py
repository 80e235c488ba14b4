"""A clock that moves only when a test moves it (``relay.delivery.clock.Clock``).

Whoever waits on it (the dispatcher's claim loop) sleeps until its wake-up event is set or the
test advances the clock to its deadline; ``parked`` tells a test that someone sleeps and until
when, so it can advance exactly that far.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["FakeClock"]


@dataclass(eq=False)
class _Sleeper:
    deadline: float
    wake: asyncio.Event
    alarm: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def asleep(self) -> bool:
        return not (self.wake.is_set() or self.alarm.is_set())


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._sleepers: list[_Sleeper] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move on by ``seconds``, waking whoever's deadline that reaches."""
        self.advance_to(self._now + seconds)

    def advance_to(self, moment: float) -> None:
        """Move on to ``moment`` exactly (never back), waking whoever's deadline that reaches."""
        self._now = max(self._now, moment)
        for sleeper in self._sleepers:
            if sleeper.deadline <= self._now:
                sleeper.alarm.set()

    @property
    def parked(self) -> float | None:
        """The earliest deadline someone sleeps until (None: nobody sleeps)."""
        return min((s.deadline for s in self._sleepers if s.asleep), default=None)

    async def wait(self, wake: asyncio.Event, deadline: float) -> None:
        if wake.is_set() or deadline <= self._now:
            return
        sleeper = _Sleeper(deadline, wake)
        self._sleepers.append(sleeper)
        waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(sleeper.alarm.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            self._sleepers.remove(sleeper)
