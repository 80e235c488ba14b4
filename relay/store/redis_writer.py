"""Script calls run in the order they were made, many per round trip.

Concurrent calls on a connection pool reach Redis in any order; through this writer they go out
as one pipeline on one connection, in call order (two webhooks of one run are stored in the order
they reached the store), and Redis fsyncs the whole batch at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

__all__ = ["OrderedWriter"]

MAX_BATCH = 256
MAX_BATCH_BYTES = 4 << 20


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    args: Sequence[Any]
    future: asyncio.Future[Any]
    size: int


class OrderedWriter:
    """Runs script calls in call order. A failed call's future gets ``wrap(error)``."""

    def __init__(self, client: Redis, wrap: Callable[[RedisError], Exception]) -> None:
        self._client = client
        self._wrap = wrap
        self._queue: deque[_Call] = deque()
        self._task: asyncio.Task[None] | None = None

    async def call(self, script: AsyncScript, args: Sequence[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        size = sum(len(arg) for arg in args if isinstance(arg, str | bytes))
        self._queue.append(_Call(script, args, future, size))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="relay-redis-writer")
        return await future

    async def wait_idle(self) -> None:
        """Until every call made so far has run."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft()]
            size = batch[0].size
            while (
                self._queue
                and len(batch) < MAX_BATCH
                and size + self._queue[0].size <= MAX_BATCH_BYTES
            ):
                batch.append(self._queue.popleft())
                size += batch[-1].size
            try:
                await self._execute(batch)
            except BaseException as exc:
                for call in batch:
                    if not call.future.done():
                        error = self._wrap(exc) if isinstance(exc, RedisError) else exc
                        call.future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise

    async def _execute(self, batch: list[_Call]) -> None:
        for _ in range(2):  # a second round after Redis lost its scripts (restart)
            async with self._client.pipeline(transaction=False) as pipe:
                for call in batch:
                    await call.script(args=call.args, client=pipe)
                results = await pipe.execute(raise_on_error=False)
            retry = []
            for call, result in zip(batch, results, strict=True):
                if isinstance(result, NoScriptError):
                    retry.append(call)
                elif call.future.done():
                    continue
                elif isinstance(result, RedisError):
                    call.future.set_exception(self._wrap(result))
                else:
                    call.future.set_result(result)
            if not retry:
                return
            batch = retry
        for call in batch:
            if not call.future.done():
                call.future.set_exception(self._wrap(NoScriptError("script not loaded")))
