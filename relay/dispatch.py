"""Delivery: claim due jobs, try each once, record the outcome.

One claim loop leases jobs up to the number of free worker slots; each job runs as its own task:
``Attempts.attempt`` (``relay.delivery.attempt``) returns what came of the try, and
``Recorder.record`` (``relay.delivery.record``) writes it to the store, metrics and log.
Channels whose destination takes no send for now (a 429's hold, or pacing by a rate limit) are
left out of claims until the hold ends, so their jobs wait in the store untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from relay.delivery.attempt import Attempts
from relay.delivery.clock import SYSTEM_CLOCK, Clock
from relay.delivery.outcomes import Outcome
from relay.delivery.parsed import parse_stored
from relay.delivery.ratelimit import RateLimiter
from relay.delivery.record import Recorder
from relay.delivery.retry import backoff_delay
from relay.metrics import Metrics
from relay.runtime import Runtime
from relay.store.base import Job, Store

__all__ = ["POLL_INTERVAL", "Dispatcher", "backoff_delay", "parse_stored"]

log = logging.getLogger("relay.dispatch")

POLL_INTERVAL = 1.0
"""Seconds the claim loop sleeps at most when nothing wakes it (e.g. another replica's work)."""


class Dispatcher:
    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._clock = clock
        self._limiter = RateLimiter()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-render")
        self._attempts = Attempts(
            store, runtime, self._limiter, clock=clock, rng=rng, worker=self._worker
        )
        self._recorder = Recorder(store, clock=clock, metrics=metrics)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._per_channel: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        """New work may be due (an event was accepted, a delivery finished)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._claim_loop(), name="relay-claim-loop")

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight sends finish within ``grace``; give the rest back."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            # Let a claim under way finish (its jobs then run or are given back), not strand it.
            done, _ = await asyncio.wait({self._loop_task}, timeout=5.0)
            if not done:
                self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def deliver(self, job: Job) -> None:
        """Try ``job`` once and record what came of it."""
        await self._recorder.record(job, await self._attempt(job))

    async def _attempt(self, job: Job) -> Outcome:
        try:
            return await self._attempts.attempt(job)
        except Exception as exc:
            log.exception("delivery of job %s failed unexpectedly", job.id)
            return self._attempts.failed(job, f"internal error: {type(exc).__name__}")

    def _claim_plan(self, workers: int, share: int) -> tuple[int, list[str], int]:
        """How many jobs to claim, which channels to skip, and the per-channel cap.

        Up to ``workers`` sends run at once, at most ``share`` per channel. Beyond that, a small
        reserve of extra slots serves only channels with nothing in flight, so channels stuck on
        slow sends can never starve the others.
        """
        busy = len(self._tasks)
        if busy < workers:
            full = [name for name, count in self._per_channel.items() if count >= share]
            return workers - busy, full, share
        reserve = max(1, workers // 2)
        if busy < workers + reserve:
            active = [name for name, count in self._per_channel.items() if count > 0]
            return workers + reserve - busy, active, 1
        return 0, [], 0

    def _held_channels(self, runtime: Runtime, now: float) -> tuple[set[str], float | None]:
        """Channels whose destination takes no send now, and when the first of those holds ends."""
        held: set[str] = set()
        ends: list[float] = []
        for name, channel in runtime.channels.items():
            wait = self._limiter.blocked_for(channel.rate_key, now)
            if wait > 0:
                held.add(name)
                ends.append(now + wait)
        return held, min(ends, default=None)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            runtime = self._runtime()
            delivery = runtime.loaded.config.delivery
            share = delivery.per_channel or max(1, delivery.workers // 2)
            limit, full, cap = self._claim_plan(delivery.workers, share)
            now = self._clock.now()
            held, hold_ends = self._held_channels(runtime, now)
            skip = held.union(full)
            self._wake.clear()
            # Nothing to claim when every channel is skipped (a claim would scan the backlog).
            can_claim = limit > 0 and not skip >= set(runtime.channels)
            jobs: list[Job] = []
            if can_claim:
                try:
                    jobs = await self._store.claim(
                        now=now, lease=delivery.lease, limit=limit, exclude_channels=sorted(skip)
                    )
                except Exception:
                    log.exception("claiming jobs failed; retrying")
            if await self._start_all(jobs, cap):
                continue
            await self._idle_wait(now if can_claim else None, hold_ends)

    async def _start_all(self, jobs: list[Job], cap: int) -> int:
        """Start a task per claimed job; returns how many started."""
        started = 0
        for job in jobs:
            if job.id in self._running:
                continue  # its lease ran out while we still send it: not twice
            if self._per_channel.get(job.channel, 0) >= cap:
                await self._store.release(job.id)  # its channel just reached its cap
                continue
            self._running.add(job.id)
            self._per_channel[job.channel] = self._per_channel.get(job.channel, 0) + 1
            task = asyncio.create_task(self._run(job), name=f"relay-job-{job.id}")
            self._tasks.add(task)
            started += 1
        return started

    async def _idle_wait(self, claimed_at: float | None, hold_ends: float | None) -> None:
        """Sleep until woken (an event accepted, a try finished), the next job falls due, a
        destination's hold ends, or ``POLL_INTERVAL`` passes.

        ``claimed_at``: when the claim that found nothing ran (None: no claim). A job due by then
        waits for its channel (at its cap, or held), so it does not cut the sleep short.
        """
        deadline = self._clock.now() + POLL_INTERVAL
        if hold_ends is not None:
            deadline = min(deadline, hold_ends)
        if claimed_at is not None:
            with contextlib.suppress(Exception):
                due = await self._store.next_due_at()
                if due is not None and due > claimed_at:
                    deadline = min(deadline, due)
        await self._clock.wait(self._wake, deadline)

    async def _run(self, job: Job) -> None:
        try:
            await self.deliver(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release(job.id))
            raise
        except Exception:
            log.exception("recording the outcome of job %s failed; its lease will run out", job.id)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._running.discard(job.id)
            self._per_channel[job.channel] -= 1
            self._wake.set()
