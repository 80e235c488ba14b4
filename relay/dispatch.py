"""Delivery: claim due jobs, render, send, and record the outcome.

One claim loop leases jobs up to the number of free worker slots; each job runs as its own task.
Parsing a stored event and rendering run in one worker thread, never on the event loop; the jobs
of one event (one per channel) share one parse and one template context.

Success -> sent. ``RetryableError`` -> back to pending after exponential backoff with jitter, or
exactly the destination's ``retry_after``; 429s do not use up ``max_attempts``. ``PermanentError``,
a render error, ``max_attempts`` or ``max_age`` -> dead letter with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pydantic import ValidationError

from relay.cards import Later, run_card_job
from relay.channels import Message, PermanentError, RetryableError
from relay.confmodel import RateLimit
from relay.events import Event, describe_error
from relay.metrics import Metrics
from relay.ratelimit import RateLimiter
from relay.render import RenderError
from relay.runtime import Runtime
from relay.store.base import Job, SharedRateLimits, Store

__all__ = ["Dispatcher", "backoff_delay", "parse_stored"]

log = logging.getLogger("relay.dispatch")
T = TypeVar("T")

SEND_TIMEOUT = 30.0
PARSED_EVENTS = 4
"""Stored events kept parsed: enough for the jobs of the events being fanned out."""


@functools.lru_cache(maxsize=PARSED_EVENTS)
def parse_stored(body: bytes) -> Event:
    """A stored event's model; the jobs of one event get the same object (one parse, and one
    template context in the renderer's cache).

    ``json.loads`` first: validating the JSON text in one pydantic call would hold the GIL, and
    so the event loop, for the whole parse (twice as long for a large body).
    """
    return Event.model_validate(json.loads(body))


def _unusable(exc: ValueError) -> str:
    problem = describe_error(exc) if isinstance(exc, ValidationError) else "not JSON"
    return f"stored event is not a valid Mosaic event: {problem}"


def backoff_delay(attempt: int, initial: float, maximum: float, rng: Callable[[], float]) -> float:
    """Exponential backoff with 'equal jitter': between half and all of ``initial * 2**(n-1)``."""
    base: float = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return base / 2 + rng() * base / 2


def _log_fields(job: Job, outcome: str) -> dict[str, object]:
    """What every delivery log line carries."""
    return {
        "event_id": job.event_id,
        "run_id": job.run_id,
        "channel": job.channel,
        "attempt": job.attempts + 1,
        "outcome": outcome,
    }


class Dispatcher:
    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._runtime = runtime
        self._clock = clock
        self._rng = rng
        self._limiter = RateLimiter()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._per_channel: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-render")

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

    async def _off_loop(self, work: Callable[[], T]) -> T:
        """Run CPU-bound ``work`` (parsing, rendering) in the worker thread; the loop stays free.

        One thread: the loop then waits at most one switch interval for the GIL.
        """
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)

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

    async def _claim_loop(self) -> None:
        while not self._stopping:
            delivery = self._runtime().loaded.config.delivery
            share = delivery.per_channel or max(1, delivery.workers // 2)
            limit, skip, cap = self._claim_plan(delivery.workers, share)
            self._wake.clear()
            # Nothing to claim when every channel is at its cap (a claim would scan the backlog).
            can_claim = limit > 0 and not set(skip) >= set(self._runtime().channels)
            jobs: list[Job] = []
            if can_claim:
                try:
                    jobs = await self._store.claim(
                        now=self._clock(), lease=delivery.lease, limit=limit, exclude_channels=skip
                    )
                except Exception:
                    log.exception("claiming jobs failed; retrying")
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
            if started:
                continue
            await self._idle_wait(can_claim)

    async def _idle_wait(self, could_claim: bool) -> None:
        timeout = 1.0
        if could_claim:
            with contextlib.suppress(Exception):
                due = await self._store.next_due_at()
                if due is not None:
                    timeout = min(timeout, max(0.0, due - self._clock()))
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _run(self, job: Job) -> None:
        try:
            await self.deliver(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release(job.id))
            raise
        except Exception as exc:
            log.exception("delivery of job %s failed unexpectedly", job.id)
            with contextlib.suppress(Exception):
                await self._retry(job, f"internal error: {type(exc).__name__}", None, count=True)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._running.discard(job.id)
            self._per_channel[job.channel] -= 1
            self._wake.set()

    async def _acquire_rate(self, key: str, limit: RateLimit | None, now: float) -> float:
        """0 when a send may go now, else seconds to wait; shared by replicas when the store can."""
        blocked = self._limiter.blocked_for(key, now)
        if blocked > 0:
            return blocked
        if limit is None:
            return 0.0
        if isinstance(self._store, SharedRateLimits):
            return await self._store.acquire_rate(key, limit.per_second, limit.burst, now)
        return self._limiter.try_acquire(key, limit, now)

    async def deliver(self, job: Job) -> None:
        runtime = self._runtime()
        channel = runtime.channels.get(job.channel)
        now = self._clock()
        if channel is None:
            await self._dead(job, f"channel '{job.channel}' is no longer configured")
            return
        wait = await self._acquire_rate(channel.rate_key, runtime.rate_limits.get(job.channel), now)
        if wait > 0:
            await self._store.mark_retry(
                job.id,
                next_attempt_at=now + wait,
                error="paced by rate limit",
                now=now,
                count_attempt=False,
            )
            self._count(job, "paced")
            return
        try:
            event = await self._off_loop(functools.partial(parse_stored, job.body))
        except ValueError as exc:  # a ValidationError, or a body that is not JSON
            await self._dead(job, _unusable(exc))
            return

        async def render() -> Message:
            return await self._off_loop(
                functools.partial(
                    runtime.render,
                    job.channel,
                    job.template,
                    event,
                    event_id=job.event_id,
                    route=job.route,
                    run_started_at=job.run_started_at,
                    now=now,
                )
            )

        route = runtime.router.route_named(job.route) if job.mode == "card" else None
        timeout = min(SEND_TIMEOUT, runtime.loaded.config.delivery.lease / 2)

        async def bounded(call: Awaitable[T]) -> T:
            async with asyncio.timeout(timeout):
                return await call

        note = "sent"
        rendered: str | None = None
        try:
            if route is not None:
                outcome = await run_card_job(
                    job, event, route, channel, self._store, render, now, bounded
                )
                if isinstance(outcome, Later):
                    await self._store.mark_retry(
                        job.id,
                        next_attempt_at=outcome.at,
                        error="waiting for the card's interval",
                        now=self._clock(),
                        count_attempt=False,
                    )
                    return
                note = outcome.note
            else:
                message = await render()
                await bounded(channel.send(message))
                rendered = message.text
        except RenderError as exc:
            await self._dead(job, f"template error: {exc}")
            return
        except RetryableError as exc:
            retry_after = exc.retry_after
            if exc.rate_limited:
                backoff = runtime.loaded.config.delivery.backoff
                retry_after = self._limiter.throttled(
                    channel.rate_key,
                    self._clock(),
                    retry_after,
                    base=backoff.initial,
                    maximum=backoff.max,
                )
            await self._retry(job, exc.reason, retry_after, count=not exc.rate_limited)
            return
        except PermanentError as exc:
            await self._dead(job, exc.reason)
            return
        except TimeoutError:
            await self._retry(job, f"no answer within {timeout:g}s", None, count=True)
            return
        self._limiter.recovered(channel.rate_key)
        sent_at = self._clock()
        await self._store.mark_sent(job.id, now=sent_at, rendered=rendered)
        self._count(job, "sent")
        if self._metrics is not None:
            latency = max(0.0, sent_at - job.created_at)
            self._metrics.delivery_latency.labels(job.channel).observe(latency)
        log.info(
            "delivered (%s)",
            note,
            extra=_log_fields(job, "sent"),
        )

    async def _retry(
        self, job: Job, reason: str, retry_after: float | None, *, count: bool
    ) -> None:
        delivery = self._runtime().loaded.config.delivery
        now = self._clock()
        attempts = job.attempts + (1 if count else 0)
        if count and attempts >= delivery.max_attempts:
            await self._dead(job, f"gave up after {attempts} attempts: {reason}")
            return
        if retry_after is not None:
            delay = retry_after
        else:
            delay = backoff_delay(
                max(1, attempts), delivery.backoff.initial, delivery.backoff.max, self._rng
            )
        if now + delay - job.age_from > delivery.max_age:
            await self._dead(job, f"gave up after {delivery.max_age:g}s: {reason}")
            return
        await self._store.mark_retry(
            job.id, next_attempt_at=now + delay, error=reason, now=now, count_attempt=count
        )
        self._count(job, "retried")
        log.warning(
            "delivery failed, will retry in %.1fs: %s",
            delay,
            reason,
            extra=_log_fields(job, "retried"),
        )

    def _count(self, job: Job, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(job.channel, outcome).inc()

    async def _dead(self, job: Job, reason: str) -> None:
        await self._store.mark_dead(job.id, error=reason, now=self._clock())
        self._count(job, "dead")
        log.error(
            "delivery dead-lettered: %s",
            reason,
            extra=_log_fields(job, "dead"),
        )
