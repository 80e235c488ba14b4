"""The one backoff and the retry-or-give-up rule."""

from __future__ import annotations

import pytest

from relay.config import DeliverySettings
from relay.delivery.outcomes import Dead, Retry
from relay.delivery.retry import backoff_delay, retry_or_give_up
from relay.store import Job

T0 = 1_000_000.0


def low() -> float:
    return 0.0


def high() -> float:
    return 1.0


def test_backoff_doubles_per_attempt_with_jitter_and_is_capped() -> None:
    assert backoff_delay(1, 1.0, 300.0, low) == 0.5
    assert backoff_delay(1, 1.0, 300.0, high) == 1.0
    assert (backoff_delay(4, 1.0, 300.0, low), backoff_delay(4, 1.0, 300.0, high)) == (4.0, 8.0)
    assert (backoff_delay(30, 1.0, 300.0, low), backoff_delay(30, 1.0, 300.0, high)) == (
        150.0,
        300.0,
    )


def test_without_jitter_the_backoff_is_the_whole_delay() -> None:
    assert [backoff_delay(n, 1.0, 5.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def job(attempts: int = 0, age: float = 0.0) -> Job:
    return Job(
        "1", "e1", "run-1", "a", "route", None, "post", "inflight", attempts, T0 - age, T0, None,
        b"{}", None,
    )  # fmt: skip


DELIVERY = DeliverySettings.model_validate(
    {"max_attempts": 3, "max_age": 3600, "backoff": {"initial": 2, "max": 60}}
)

GAVE_UP = Dead("gave up after 3 attempts: boom")
TOO_OLD = Dead("gave up after 3600s: boom")
CASES = {
    "a first failure backs off": (job(), None, True, Retry(T0 + 2.0, True, "boom")),
    "later failures back off longer": (job(attempts=1), None, True, Retry(T0 + 4.0, True, "boom")),
    "the destination's wish wins": (job(attempts=1), 30.0, True, Retry(T0 + 30, True, "boom")),
    "the last attempt gives up": (job(attempts=2), None, True, GAVE_UP),
    "uncounted tries use up nothing": (job(attempts=2), 5.0, False, Retry(T0 + 5, False, "boom")),
    "a retry past max_age gives up": (job(age=3590), 30.0, False, TOO_OLD),
    "a retry up to max_age goes ahead": (job(age=3570), 30.0, False, Retry(T0 + 30, False, "boom")),
}  # fmt: skip


@pytest.mark.parametrize(
    ("failed", "retry_after", "counted", "expected"), CASES.values(), ids=CASES
)
def test_retry_or_give_up(
    failed: Job, retry_after: float | None, counted: bool, expected: Retry | Dead
) -> None:
    outcome = retry_or_give_up(
        failed, "boom", DELIVERY, T0, retry_after=retry_after, counted=counted, rng=high
    )
    assert outcome == expected
