"""The dispatcher's time: what time it is, and waiting for a moment or a wake-up.

Injected so tests can run delivery on a fake clock that moves only when they say.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def wait(self, wake: asyncio.Event, deadline: float) -> None:
        """Return once ``wake`` is set or the clock reaches ``deadline``, whichever comes first."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    async def wait(self, wake: asyncio.Event, deadline: float) -> None:
        timeout = deadline - time.time()
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


SYSTEM_CLOCK = SystemClock()
