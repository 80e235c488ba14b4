"""When to try again: one exponential backoff, and the retry-or-give-up rule."""

from __future__ import annotations

from collections.abc import Callable

from relay.config import DeliverySettings
from relay.delivery.outcomes import Dead, Retry
from relay.store.base import Job

__all__ = ["backoff_delay", "no_jitter", "retry_or_give_up"]


def no_jitter() -> float:
    """An ``rng`` for ``backoff_delay`` that always takes the whole delay."""
    return 1.0


def backoff_delay(
    attempt: int, initial: float, maximum: float, rng: Callable[[], float] = no_jitter
) -> float:
    """``initial * 2**(attempt-1)``, at most ``maximum``, with 'equal jitter': between half and
    all of it, as ``rng()`` (0..1) says; without ``rng``, all of it."""
    base: float = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return base / 2 + rng() * base / 2


def retry_or_give_up(
    job: Job,
    reason: str,
    delivery: DeliverySettings,
    now: float,
    *,
    retry_after: float | None,
    counted: bool,
    rng: Callable[[], float],
) -> Retry | Dead:
    """A failed try's outcome: again after ``retry_after`` (the destination's wish) or a backoff;
    dead once ``max_attempts`` counted tries failed or the retry would pass ``max_age``."""
    attempts = job.attempts + (1 if counted else 0)
    if counted and attempts >= delivery.max_attempts:
        return Dead(f"gave up after {attempts} attempts: {reason}")
    if retry_after is not None:
        delay = retry_after
    else:
        backoff = delivery.backoff
        delay = backoff_delay(max(1, attempts), backoff.initial, backoff.max, rng)
    if now + delay - job.age_from > delivery.max_age:
        return Dead(f"gave up after {delivery.max_age:g}s: {reason}")
    return Retry(at=now + delay, counted=counted, reason=reason)
