"""One delivery try as stages, each ending in an outcome value; nothing is recorded here.

channel still configured? -> pace (rate limit, a 429's hold) -> decode the stored event ->
render and send (a card job posts, edits or skips its card) -> what the channel's answer means.
An ordinary event is parsed and rendered on the event loop (a thread hop costs about as much CPU
as parsing it); a large stored body in one worker thread, so it never holds the loop. The jobs of
one event (one per channel) share one parse (``relay.delivery.parsed``) and so one template context.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TypeVar

from pydantic import ValidationError

from relay import cards
from relay.actions.buttons import buttons_for
from relay.channels import Channel, Message, PermanentError, RetryableError
from relay.channels.base import RestingChannel
from relay.config import DeliverySettings
from relay.confmodel import RateLimit
from relay.delivery.clock import Clock
from relay.delivery.outcomes import Dead, Later, Outcome, Retry, Sent, Wait
from relay.delivery.parsed import parse_stored
from relay.delivery.ratelimit import RateLimiter
from relay.delivery.retry import retry_or_give_up
from relay.digest.entries import Digest
from relay.events import Event, describe_error
from relay.render import RenderError
from relay.runtime import Runtime
from relay.store.base import Job, SharedRateLimits, Store

__all__ = ["INLINE_BYTES", "SEND_TIMEOUT", "Attempts"]

T = TypeVar("T")

SEND_TIMEOUT = 30.0
"""Seconds a channel call may take at most (and at most half the lease)."""
INLINE_BYTES = 65_536
"""Stored bodies up to this are parsed and rendered on the event loop, larger ones in the worker
thread: the receiver's ``INLINE_PARSE_BYTES`` (the cost of both grows with the body)."""


def _unusable(exc: ValueError, mode: str) -> str:
    problem = describe_error(exc) if isinstance(exc, ValidationError) else "not JSON"
    if mode == "digest":
        return f"stored digest is not valid: {problem}"
    return f"stored event is not a valid Mosaic event: {problem}"


class Attempts:
    """Tries a job once and says what came of it: ``Sent``, ``Retry``, ``Dead`` or ``Later``.

    Success -> sent. ``RetryableError`` -> retry after a backoff with jitter, or exactly the
    destination's ``retry_after``; 429s do not use up ``max_attempts`` and hold every send to that
    destination (``RateLimiter``). ``PermanentError``, a render error, ``max_attempts`` or
    ``max_age`` -> dead with the reason. A rate limit or a card's interval -> later, untried.
    """

    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        limiter: RateLimiter,
        *,
        clock: Clock,
        rng: Callable[[], float],
        worker: Executor,
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._limiter = limiter
        self._clock = clock
        self._rng = rng
        self._worker = worker

    async def attempt(self, job: Job) -> Outcome:
        runtime = self._runtime()
        channel = runtime.channels.get(job.channel)
        if channel is None:
            return Dead(f"channel '{job.channel}' is no longer configured")
        now = self._clock.now()
        wait = await self._pace(channel.rate_key, runtime.rate_limits.get(job.channel), now)
        if wait > 0:
            return Later(now + wait, Wait.PACED)
        parse: Callable[[bytes], Event | Digest] = (
            Digest.model_validate_json if job.mode == "digest" else parse_stored
        )
        try:
            event = await self._compute(job, functools.partial(parse, job.body))
        except ValueError as exc:  # a ValidationError, or a body that is not JSON
            return Dead(_unusable(exc, job.mode))
        delivery = runtime.loaded.config.delivery
        timeout = min(SEND_TIMEOUT, delivery.lease / 2)
        try:
            outcome = await self._send(job, event, channel, runtime, now, timeout)
        except RenderError as exc:
            return Dead(f"template error: {exc}")
        except RetryableError as exc:
            return self._refused(job, channel.rate_key, exc, delivery)
        except PermanentError as exc:
            return Dead(exc.reason)
        except TimeoutError:
            return self.failed(job, f"no answer within {timeout:g}s")
        if isinstance(outcome, Sent):
            self._limiter.recovered(channel.rate_key)
            if isinstance(channel, RestingChannel) and (rest := channel.resting_for()) > 0:
                self._limiter.block(channel.rate_key, self._clock.now() + rest)
        return outcome

    def failed(
        self, job: Job, reason: str, *, retry_after: float | None = None, counted: bool = True
    ) -> Retry | Dead:
        """A try that failed for ``reason``: retry, or give up (attempts or age used up)."""
        return retry_or_give_up(
            job,
            reason,
            self._runtime().loaded.config.delivery,
            self._clock.now(),
            retry_after=retry_after,
            counted=counted,
            rng=self._rng,
        )

    async def _pace(self, key: str, limit: RateLimit | None, now: float) -> float:
        """0 when a send may go now, else the seconds to wait, during which the destination
        takes no send (nor its jobs a claim). Buckets are shared by replicas when the store can."""
        wait = self._limiter.blocked_for(key, now)
        if wait > 0 or limit is None:
            return wait
        if isinstance(self._store, SharedRateLimits):
            wait = await self._store.acquire_rate(key, limit.per_second, limit.burst, now)
        else:
            wait = self._limiter.try_acquire(key, limit, now)
        if wait > 0:
            self._limiter.block(key, now + wait)
        return wait

    async def _send(
        self,
        job: Job,
        event: Event | Digest,
        channel: Channel,
        runtime: Runtime,
        now: float,
        within: float,
    ) -> Sent | Later:
        """Render and send a post or a digest, or post, edit or skip a card (``route`` with
        ``mode: card``); each channel call gets ``within`` seconds."""
        if isinstance(event, Digest):
            digest = await self._compute(
                job,
                functools.partial(
                    runtime.render_digest, job.channel, job.template, event, event_id=job.event_id
                ),
            )
            async with asyncio.timeout(within):
                await channel.send(digest)
            return Sent(rendered=digest.text)

        async def render() -> Message:
            message = await self._compute(
                job,
                functools.partial(
                    runtime.render,
                    job.channel,
                    job.template,
                    event,
                    event_id=job.event_id,
                    route=job.route,
                    run_started_at=job.run_started_at,
                    now=now,
                ),
            )
            buttons = await buttons_for(self._store, runtime, job, event, now)
            return dataclasses.replace(message, buttons=buttons) if buttons else message

        async def bounded(call: Awaitable[T]) -> T:
            async with asyncio.timeout(within):
                return await call

        route = runtime.router.route_named(job.route) if job.mode == "card" else None
        if route is None:
            message = await render()
            await bounded(channel.send(message))
            return Sent(rendered=message.text)
        done = await cards.run_card_job(
            job, event, route, channel, self._store, render, now, bounded
        )
        if isinstance(done, cards.Later):
            return Later(done.at, Wait.CARD_INTERVAL)
        return Sent(note=done.note, rendered=done.rendered)

    def _refused(
        self, job: Job, rate_key: str, exc: RetryableError, delivery: DeliverySettings
    ) -> Retry | Dead:
        """A retryable refusal; a 429 holds the destination (its Retry-After, or a backoff that
        grows with each 429 in a row) and does not use up an attempt."""
        retry_after = exc.retry_after
        if exc.rate_limited:
            retry_after = self._limiter.throttled(
                rate_key,
                self._clock.now(),
                retry_after,
                base=delivery.backoff.initial,
                maximum=delivery.backoff.max,
            )
        return self.failed(job, exc.reason, retry_after=retry_after, counted=not exc.rate_limited)

    async def _compute(self, job: Job, work: Callable[[], T]) -> T:
        """Run CPU-bound ``work`` (parsing, rendering) for ``job``: on the loop for an ordinary
        body, in the worker thread for a large one, so the loop stays free.

        One thread: the loop then waits at most one switch interval for the GIL.
        """
        if len(job.body) <= INLINE_BYTES:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)
