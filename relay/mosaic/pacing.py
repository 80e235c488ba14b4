"""When a periodic background job runs next, with a period read from the live config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """Lets a job run at once, then once per ``period()`` seconds (None: off, wait for a wake).

    ``wake()`` (after a reload) makes a waiting ``turn`` read the period again: a job turned on
    runs at once, a shorter period applies from the last run.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def turn(self, period: Callable[[], float | None]) -> None:
        """Return when the job is due (and count it as run now)."""
        while True:
            seconds = period()
            wait = None
            if seconds is not None:
                wait = 0.0 if self._last is None else self._last + seconds - self._clock()
                if wait <= 0:
                    self._last = self._clock()
                    return
            try:
                async with asyncio.timeout(wait):
                    await self._woken.wait()
            except TimeoutError:
                pass
            self._woken.clear()
