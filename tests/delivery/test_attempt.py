"""``attempt``: what each kind of channel answer comes to, on a fake clock (nothing recorded)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

import relay.delivery.attempt as attempt_module
from relay.channels import PermanentError, RetryableError
from relay.confmodel import RateLimit
from relay.delivery.attempt import INLINE_BYTES, Attempts
from relay.delivery.outcomes import Dead, Later, Outcome, Retry, Sent, Wait
from relay.delivery.parsed import parse_stored
from relay.delivery.ratelimit import RateLimiter
from relay.receiver import INLINE_PARSE_BYTES, canonical_json
from relay.runtime import Runtime
from relay.store import Job, SQLiteStore
from tests.delivery.conftest import T0, Answering, make_job
from tests.fakes.clock import FakeClock

T = TypeVar("T")


class Prefix(str):
    """Equal to any text that starts with it (for reasons that quote a library's message)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(str(self))

    __hash__ = str.__hash__


def half() -> float:
    return 0.5


def rate_limited(retry_after: float | None) -> RetryableError:
    return RetryableError("rate limited (HTTP 429)", retry_after=retry_after, rate_limited=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def attempts(
    runtime: Runtime, worker: ThreadPoolExecutor, tmp_path: Path, clock: FakeClock
) -> Attempts:
    store = SQLiteStore(tmp_path / "unused.db")  # plain posts without shared limits never use it
    return Attempts(store, lambda: runtime, RateLimiter(), clock=clock, rng=half, worker=worker)


# Backoff 1s..60s with jitter 0.5: 0.75s after a first failure; max_attempts 3, max_age 1h.
CASES: dict[str, tuple[Exception | None, Job, Outcome]] = {
    "sent": (None, make_job(), Sent(note="sent", rendered="7")),
    "transient error": (
        RetryableError("HTTP 503"), make_job(), Retry(T0 + 0.75, True, "HTTP 503")
    ),
    "transient error asking for a delay": (
        RetryableError("HTTP 503", retry_after=30.0), make_job(), Retry(T0 + 30, True, "HTTP 503")
    ),
    "429 with Retry-After": (
        rate_limited(5.0), make_job(), Retry(T0 + 5, False, "rate limited (HTTP 429)")
    ),
    "429 without Retry-After": (
        rate_limited(None), make_job(), Retry(T0 + 1, False, "rate limited (HTTP 429)")
    ),
    "429 on the last attempt": (
        rate_limited(5.0), make_job(attempts=2), Retry(T0 + 5, False, "rate limited (HTTP 429)")
    ),
    "permanent refusal": (
        PermanentError("Slack error 'invalid_auth' (HTTP 200)"), make_job(),
        Dead("Slack error 'invalid_auth' (HTTP 200)"),
    ),
    "render error": (None, make_job(template="broken"), Dead(Prefix("template error: "))),
    "unknown template": (
        None, make_job(template="nope"), Dead(Prefix("template error: unknown template 'nope'"))
    ),
    "max_attempts reached": (
        RetryableError("HTTP 500"), make_job(attempts=2),
        Dead("gave up after 3 attempts: HTTP 500"),
    ),
    "max_age passed": (
        RetryableError("HTTP 500"), make_job(age=3600), Dead("gave up after 3600s: HTTP 500")
    ),
    "max_age passed while rate limited": (
        rate_limited(5.0), make_job(age=3599),
        Dead("gave up after 3600s: rate limited (HTTP 429)"),
    ),
    "channel removed": (
        None, make_job(channel="gone"), Dead("channel 'gone' is no longer configured")
    ),
    "stored body not JSON": (
        None, make_job(body=b"{not json"),
        Dead("stored event is not a valid Mosaic event: not JSON"),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("answer", "job", "expected"), CASES.values(), ids=CASES)
async def test_what_an_answer_comes_to(
    attempts: Attempts, runtime: Runtime, answer: Exception | None, job: Job, expected: Outcome
) -> None:
    cast(Answering, runtime.channels["a"]).answer = answer
    assert await attempts.attempt(job) == expected


async def test_429s_in_a_row_hold_the_destination_longer_until_a_send_goes_through(
    attempts: Attempts, runtime: Runtime, clock: FakeClock
) -> None:
    channel = cast(Answering, runtime.channels["a"])
    channel.answer = rate_limited(None)
    holds = []
    for _ in range(3):
        outcome = await attempts.attempt(make_job())
        assert isinstance(outcome, Retry) and not outcome.counted
        holds.append(outcome.at - clock.now())
        clock.advance_to(outcome.at)
    assert holds == [1.0, 2.0, 4.0]
    channel.answer = None
    assert await attempts.attempt(make_job()) == Sent(rendered="7")
    channel.answer = rate_limited(None)
    assert await attempts.attempt(make_job()) == Retry(
        clock.now() + 1.0, False, channel.answer.reason
    )


async def test_a_held_destination_puts_jobs_off_untried_until_the_hold_ends(
    attempts: Attempts, runtime: Runtime
) -> None:
    channel = cast(Answering, runtime.channels["a"])
    channel.answer = rate_limited(5.0)
    assert await attempts.attempt(make_job()) == Retry(T0 + 5, False, "rate limited (HTTP 429)")
    channel.answer = None
    assert await attempts.attempt(make_job()) == Later(T0 + 5, Wait.PACED)
    assert channel.sent == []


async def test_a_destination_resting_after_a_success_is_held_like_after_a_429(
    attempts: Attempts, runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = cast(Answering, runtime.channels["a"])
    monkeypatch.setattr(channel, "resting_for", lambda: 2.5, raising=False)
    assert await attempts.attempt(make_job()) == Sent(rendered="7")
    assert await attempts.attempt(make_job()) == Later(T0 + 2.5, Wait.PACED)
    assert len(channel.sent) == 1
    monkeypatch.setattr(channel, "resting_for", lambda: 0.0, raising=False)
    clock.advance(2.5)
    assert await attempts.attempt(make_job()) == Sent(rendered="7")


async def test_a_rate_limit_paces_sends(
    attempts: Attempts, runtime: Runtime, clock: FakeClock
) -> None:
    runtime.rate_limits["a"] = RateLimit(per_second=2, burst=1)
    assert await attempts.attempt(make_job()) == Sent(rendered="7")
    assert await attempts.attempt(make_job()) == Later(T0 + 0.5, Wait.PACED)
    clock.advance(0.5)
    assert await attempts.attempt(make_job()) == Sent(rendered="7")


async def test_an_unexpected_error_is_a_counted_failure(attempts: Attempts) -> None:
    assert attempts.failed(make_job(), "internal error: KeyError") == Retry(
        T0 + 0.75, True, "internal error: KeyError"
    )


async def test_an_ordinary_event_is_parsed_and_rendered_on_the_loop_a_large_one_off_it(
    attempts: Attempts, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread hop per job costs more than parsing and rendering an ordinary event; a large
    one must not hold the event loop."""
    threads: list[tuple[str, str]] = []

    def spy(name: str, work: Callable[..., T]) -> Callable[..., T]:
        def spied(*args: Any, **kwargs: Any) -> T:
            threads.append((name, threading.current_thread().name))
            return work(*args, **kwargs)

        return spied

    monkeypatch.setattr(attempt_module, "parse_stored", spy("parse", parse_stored))
    monkeypatch.setattr(runtime, "render", spy("render", runtime.render))
    event = {"flag": "RUN_PROGRESS", "agent_id": "a", "run_id": "run-1", "status": "running"}
    large = canonical_json({**event, "seq": 7, "pad": "x" * INLINE_BYTES})
    main = threading.main_thread().name

    assert await attempts.attempt(make_job()) == Sent(rendered="7")
    assert threads == [("parse", main), ("render", main)]
    threads.clear()
    assert await attempts.attempt(make_job(body=large)) == Sent(rendered="7")
    assert [name for name, _ in threads] == ["parse", "render"]
    assert main not in {thread for _, thread in threads}


def test_stored_bodies_go_off_the_loop_past_the_size_the_receiver_uses() -> None:
    assert INLINE_BYTES == INLINE_PARSE_BYTES
