"""The dispatcher in-process, against the real SQLite store, with scripted channels.

A scripted channel records every call (which event, when) and answers as the test says: fail
with given errors, or hold the send until an ``asyncio.Event`` is set. Each event carries its
``seq`` (acceptance order); the ``seq`` template renders just that number.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp
import pytest

from relay.channels import Limits, Message, MessageRef, PermanentError, RetryableError
from relay.config import load_config
from relay.confmodel import RateLimit
from relay.delivery.attempt import INLINE_BYTES
from relay.delivery.clock import SYSTEM_CLOCK, Clock
from relay.dispatch import POLL_INTERVAL, Dispatcher
from relay.events import Event
from relay.receiver import canonical_json
from relay.runtime import Runtime
from relay.store import Job, JobSpec, NewEvent, SQLiteStore
from tests.conftest import SECRET, wait_until
from tests.fakes.clock import FakeClock

CONFIG = """
auth:
  secrets: ["{secret}"]
store:
  url: sqlite:///relay.db
  sync: normal
delivery:
  workers: {workers}
  lease: {lease}
  max_attempts: {max_attempts}
  max_age: {max_age}
  backoff: {{initial: 10ms, max: 50ms}}
channels:
  a: {{type: file, path: a.jsonl}}
  b: {{type: file, path: b.jsonl}}
  c: {{type: file, path: c.jsonl}}
routes:
  - to: [a]
templates:
  seq:
    text: "{{{{ event.seq }}}}"
  broken:
    text: "{{{{ event.missing.deeper }}}}"
"""


def paced_excess(
    times: Iterable[float], per_second: float, burst: int, *, jitter: float = 0.0
) -> float:
    """How far the busiest stretch of ``times`` goes beyond a token bucket's allowance.

    Between the i-th and j-th send the bucket allows ``burst + per_second * (t_j - t_i)``
    sends, plus ``per_second * jitter`` for sends the scheduler delayed and then let out
    together. The result is the largest ``count - allowance``: <= 0 when every stretch fits.
    """
    ordered = sorted(times)
    worst = float("-inf")
    for i, start in enumerate(ordered):
        for j in range(i, len(ordered)):
            allowance = burst + per_second * (ordered[j] - start + jitter)
            worst = max(worst, (j - i + 1) - allowance)
    return worst


@dataclass(frozen=True)
class Call:
    seq: int
    at: float


class Scripted:
    """A channel whose answers the test scripts per event ``seq``."""

    render_kind: ClassVar[str] = "plain"
    limits: ClassVar[Limits] = Limits()
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(self, name: str, now: Callable[[], float] = time.time) -> None:
        self.name = name
        self.now = now
        self.calls: list[Call] = []
        self.sent: list[int] = []
        self.cancelled: list[int] = []
        self.failures: dict[int, Iterator[Exception]] = {}
        self.holds: dict[int, asyncio.Event] = {}
        self.hold_all: asyncio.Event | None = None

    @property
    def rate_key(self) -> str:
        return f"scripted:{self.name}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def close(self) -> None:
        return None

    def calls_for(self, seq: int) -> list[Call]:
        return [call for call in self.calls if call.seq == seq]

    async def send(self, message: Message) -> MessageRef | None:
        seq = int(message.text)
        self.calls.append(Call(seq, self.now()))
        failure = next(self.failures.get(seq, iter(())), None)
        if failure is not None:
            raise failure
        gate = self.holds.get(seq, self.hold_all)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(seq)
                raise
        self.sent.append(seq)
        return None

    async def verify(self) -> str:
        return "ok"


def failing(n: int, make: Callable[[], Exception]) -> Iterator[Exception]:
    return (make() for _ in range(n))


def always(make: Callable[[], Exception]) -> Iterator[Exception]:
    return (make() for _ in itertools.count())


class Harness:
    """A dispatcher on a real store, its runtime's channels replaced by scripted ones; its time
    is ``clock`` (the wall clock unless a test gives a ``FakeClock``)."""

    def __init__(self, tmp_path: Path, clock: Clock = SYSTEM_CLOCK, **delivery: Any) -> None:
        self.clock = clock
        settings = {"workers": 4, "lease": "5s", "max_attempts": 3, "max_age": "1h"}
        settings.update(delivery)
        config = tmp_path / "relay.yaml"
        config.write_text(CONFIG.format(secret=SECRET, **settings))
        self.runtime = Runtime.build(load_config(config, env={}))
        self.channels = {name: Scripted(name, clock.now) for name in ("a", "b", "c")}
        self.runtime.channels.update(self.channels)
        self.store = SQLiteStore(tmp_path / "relay.db", sync="normal")
        self.dispatcher = self.new_dispatcher()
        self._seq = itertools.count(1)

    def new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self.store, lambda: self.runtime, clock=self.clock)

    async def accept(
        self, run_id: str, *channels: str, template: str = "seq", **fields: Any
    ) -> int:
        """Store one event with a job per channel (as the receiver does); return its seq.

        ``fields`` go into the stored body unchecked, as if stored by an older relay."""
        seq = next(self._seq)
        body = canonical_json(
            {
                "flag": "RUN_PROGRESS",
                "agent_id": "agent-1",
                "run_id": run_id,
                "status": "running",
                "seq": seq,
                **fields,
            }
        )
        event = NewEvent(
            uuid.uuid4().hex, f"key-{seq}", body, "RUN_PROGRESS", run_id, "agent-1", "running",
            self.clock.now(),
        )  # fmt: skip
        await self.store.accept(event, [JobSpec(ch, "route", template) for ch in channels])
        self.dispatcher.notify()
        return seq

    async def counts(self) -> dict[tuple[str, str], int]:
        return {(row.channel, row.state): row.count for row in await self.store.status()}

    async def dead(self) -> list[Job]:
        return await self.store.dead_letters()


async def recorded(h: Harness, expected: dict[tuple[str, str], int]) -> None:
    """Wait until the store's job counts are ``expected`` (a send is recorded after it returns)."""

    async def check() -> bool:
        return await h.counts() == expected

    await wait_until(check)


def has_dead(h: Harness, count: int = 1) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await h.dead()) >= count

    return check


async def fill_hanging_channel(h: Harness, name: str, count: int, *, share: int) -> None:
    """Queue ``count`` events (a run each) for a channel whose sends hang, one at a time, so
    the channel is at its ``share`` of the workers before the next claim."""
    channel = h.channels[name]
    for i in range(count):
        await h.accept(f"{name}-{i}", name)

        def in_flight(expected: int = min(i + 1, share)) -> bool:
            return len(channel.calls) == expected

        await wait_until(in_flight)


async def idle(h: Harness, clock: FakeClock) -> float:
    """Wait until nothing is in flight and the claim loop sleeps; returns until when it sleeps."""

    def parked() -> bool:
        return h.dispatcher.in_flight == 0 and clock.parked is not None

    await wait_until(parked)
    assert clock.parked is not None
    return clock.parked


async def run_clock(
    h: Harness, clock: FakeClock, done: Callable[[], bool | Awaitable[bool]], steps: int = 100
) -> None:
    """Move the clock to each moment the dispatcher sleeps until, until ``done`` (checked each
    time the dispatcher is idle)."""
    for _ in range(steps):
        until = await idle(h, clock)
        result = done()
        if result if isinstance(result, bool) else await result:
            return
        clock.advance_to(until)
    raise AssertionError(f"not done after {steps} steps of the clock")


async def put_off(h: Harness) -> int:
    """How many jobs were claimed and then put off (retried or paced) so far."""
    events = await h.store.list_events(limit=100)
    return sum(job.last_error is not None for event in events for job in event.jobs)


class MakeHarness(Protocol):
    def __call__(
        self, *, start: bool = True, clock: Clock = SYSTEM_CLOCK, **delivery: Any
    ) -> Awaitable[Harness]: ...


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[MakeHarness]:
    made: list[Harness] = []

    async def make(*, start: bool = True, clock: Clock = SYSTEM_CLOCK, **delivery: Any) -> Harness:
        harness = Harness(tmp_path, clock, **delivery)
        await harness.store.open()
        made.append(harness)
        if start:
            await harness.dispatcher.start()
        return harness

    yield make
    for harness in made:
        await harness.dispatcher.stop(0)
        await harness.store.close()


async def test_every_job_is_sent_once_and_recorded_as_sent(make_harness: MakeHarness) -> None:
    h = await make_harness()
    a, b = h.channels["a"], h.channels["b"]
    seqs = [await h.accept(f"run-{i % 3}", "a") for i in range(9)]
    both = await h.accept("run-x", "a", "b")
    await wait_until(lambda: len(a.sent) == 10 and len(b.sent) == 1)
    assert sorted(a.sent) == [*seqs, both] and b.sent == [both]
    assert len(a.calls) == 10
    await recorded(h, {("a", "sent"): 10, ("b", "sent"): 1})


async def test_a_runs_messages_keep_acceptance_order_through_retries(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(max_attempts=5)
    a = h.channels["a"]
    a.failures[1] = failing(3, lambda: RetryableError("HTTP 500"))
    a.failures[2] = failing(2, lambda: RetryableError("HTTP 502"))
    for _ in range(4):
        await h.accept("run-1", "a")
    await wait_until(lambda: len(a.sent) == 4)
    assert a.sent == [1, 2, 3, 4]
    # Every call for a message comes after the last call for the one before it.
    assert [call.seq for call in a.calls] == [1, 1, 1, 1, 2, 2, 2, 3, 4]


async def test_a_held_send_blocks_only_its_own_run(make_harness: MakeHarness) -> None:
    h = await make_harness()
    a = h.channels["a"]
    a.holds[1] = asyncio.Event()
    await h.accept("run-1", "a")
    await h.accept("run-1", "a")
    await h.accept("run-2", "a")
    await h.accept("run-2", "a")
    await wait_until(lambda: a.sent == [3, 4])
    assert [call.seq for call in a.calls if call.seq in (1, 2)] == [1]
    a.holds[1].set()
    await wait_until(lambda: a.sent == [3, 4, 1, 2])


async def test_a_dead_letter_keeps_its_reason_and_unblocks_the_next(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    a = h.channels["a"]
    a.failures[1] = failing(1, lambda: PermanentError("Slack error 'invalid_auth' (HTTP 200)"))
    await h.accept("run-1", "a")
    await h.accept("run-1", "a")
    await wait_until(lambda: a.sent == [2])
    assert len(a.calls_for(1)) == 1
    [dead] = await h.dead()
    assert (dead.channel, dead.run_id) == ("a", "run-1")
    assert dead.last_error == "Slack error 'invalid_auth' (HTTP 200)"
    await recorded(h, {("a", "dead"): 1, ("a", "sent"): 1})


async def test_retryable_failures_end_in_a_dead_letter_after_max_attempts(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(max_attempts=3)
    a = h.channels["a"]
    a.failures[1] = always(lambda: RetryableError("HTTP 500"))
    await h.accept("run-1", "a")
    await wait_until(has_dead(h))
    [dead] = await h.dead()
    assert dead.last_error == "gave up after 3 attempts: HTTP 500"
    assert len(a.calls_for(1)) == 3


async def test_rate_limited_answers_do_not_use_up_attempts(make_harness: MakeHarness) -> None:
    h = await make_harness(max_attempts=2)
    a = h.channels["a"]
    a.failures[1] = failing(
        6, lambda: RetryableError("rate limited (HTTP 429)", retry_after=0.01, rate_limited=True)
    )
    await h.accept("run-1", "a")
    await wait_until(lambda: a.sent == [1])
    assert len(a.calls_for(1)) == 7
    assert await h.dead() == []


async def test_retry_after_is_honoured_exactly(make_harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await make_harness(clock=clock)
    a = h.channels["a"]
    a.failures[1] = failing(1, lambda: RetryableError("HTTP 503", retry_after=0.3))
    await h.accept("run-1", "a")
    assert await idle(h, clock) == clock.now() + 0.3
    [first] = a.calls

    clock.advance_to(first.at + 0.299)
    h.dispatcher.notify()  # looks again just before: nothing is due yet
    assert await idle(h, clock) == first.at + 0.3
    assert len(a.calls) == 1

    clock.advance_to(first.at + 0.3)
    await wait_until(lambda: a.sent == [1])
    assert [call.at for call in a.calls] == [first.at, first.at + 0.3]


async def test_max_age_bounds_even_rate_limited_retries(make_harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await make_harness(clock=clock, max_age="250ms", max_attempts=1)
    a = h.channels["a"]
    a.failures[1] = always(
        lambda: RetryableError("rate limited (HTTP 429)", retry_after=0.125, rate_limited=True)
    )
    accepted = clock.now()
    await h.accept("run-1", "a")
    await run_clock(h, clock, has_dead(h))
    [dead] = await h.dead()
    assert dead.last_error == "gave up after 0.25s: rate limited (HTTP 429)"
    # Tries at 0, 0.125 and 0.25 s; the next would be past max_age: dead at once, not later.
    assert [call.at - accepted for call in a.calls] == [0.0, 0.125, 0.25]
    assert clock.now() == accepted + 0.25


async def test_a_message_that_cannot_render_is_dead_lettered_without_a_send(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    await h.accept("run-1", "a", template="broken")
    await h.accept("run-2", "a", template="no-such-template")
    await wait_until(has_dead(h, 2))
    reasons = sorted(job.last_error or "" for job in await h.dead())
    assert all(reason.startswith("template error: ") for reason in reasons)
    assert "unknown template 'no-such-template'" in reasons[1]
    assert h.channels["a"].calls == []


async def test_a_job_for_a_channel_no_longer_configured_is_dead_lettered(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    await h.accept("run-1", "gone")
    await wait_until(has_dead(h))
    [dead] = await h.dead()
    assert dead.last_error == "channel 'gone' is no longer configured"


async def test_a_rate_limit_paces_sends_without_using_attempts(make_harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await make_harness(clock=clock, max_attempts=1)
    a = h.channels["a"]
    h.runtime.rate_limits["a"] = RateLimit(per_second=20, burst=2)
    for i in range(12):
        await h.accept(f"run-{i}", "a")
    await run_clock(h, clock, lambda: len(a.sent) == 12)
    times = [call.at for call in a.calls]
    assert len(times) == 12  # paced jobs wait before the send, not after a failed one
    assert paced_excess(times, per_second=20, burst=2) <= 1e-6  # float rounding only
    assert max(times) - min(times) >= (12 - 2) / 20 - 1e-6
    assert await h.dead() == []


async def test_a_paced_destinations_other_jobs_wait_in_the_store_untouched(
    make_harness: MakeHarness,
) -> None:
    clock = FakeClock()
    h = await make_harness(clock=clock)  # 4 workers, 2 per channel
    a = h.channels["a"]
    h.runtime.rate_limits["a"] = RateLimit(per_second=1, burst=1)
    for i in range(5):
        await h.accept(f"run-{i}", "a")
    start = clock.now()
    assert await idle(h, clock) == start + 1.0  # the next token
    assert len(a.calls) == 1
    assert await put_off(h) == 1  # claimed along with the first, then paced; the rest untouched

    await run_clock(h, clock, lambda: len(a.sent) == 5)
    assert [call.at - start for call in a.calls] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_a_429_holds_its_destinations_other_jobs_in_the_store_untouched(
    make_harness: MakeHarness,
) -> None:
    clock = FakeClock()
    h = await make_harness(clock=clock, workers=2)  # one send per channel at a time
    a = h.channels["a"]
    a.failures[1] = failing(
        1, lambda: RetryableError("rate limited (HTTP 429)", retry_after=5.0, rate_limited=True)
    )
    for i in range(4):
        await h.accept(f"run-{i}", "a")
    start = clock.now()
    while (until := await idle(h, clock)) < start + 5.0:
        clock.advance_to(until)  # the loop's polls find nothing to claim
    assert [call.seq for call in a.calls] == [1]
    assert await put_off(h) == 1  # only the refused one

    await run_clock(h, clock, lambda: len(a.sent) == 4)
    assert {call.at - start for call in a.calls[1:]} == {5.0}


async def test_a_backlog_behind_a_channel_at_its_cap_lets_the_claim_loop_sleep(
    make_harness: MakeHarness,
) -> None:
    clock = FakeClock()
    h = await make_harness(clock=clock, workers=4, lease="60s")
    a = h.channels["a"]
    a.hold_all = asyncio.Event()
    await fill_hanging_channel(h, "a", 4, share=2)
    # Two of a's jobs are due but a has its share in flight: the loop waits for a send to end
    # (or the poll), instead of claiming again and again.
    await wait_until(lambda: clock.parked == clock.now() + POLL_INTERVAL)
    a.hold_all.set()
    await wait_until(lambda: len(a.sent) == 4)


async def test_a_slow_channel_does_not_delay_another(make_harness: MakeHarness) -> None:
    # The clock stands still: b's sends cannot wait for a timer (a poll, a backoff), only for a.
    h = await make_harness(clock=FakeClock(), workers=4, lease="60s")  # a channel: half the workers
    a, b = h.channels["a"], h.channels["b"]
    a.hold_all = asyncio.Event()
    await fill_hanging_channel(h, "a", 6, share=2)
    for i in range(6):
        await h.accept(f"fast-{i}", "b")
    await wait_until(lambda: len(b.sent) == 6)
    assert len(a.calls) == 2
    a.hold_all.set()
    await wait_until(lambda: len(a.sent) == 6)


async def test_a_backlog_for_a_slow_channel_does_not_take_every_worker(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(clock=FakeClock(), start=False, workers=4, lease="60s")
    a, b = h.channels["a"], h.channels["b"]
    a.hold_all = asyncio.Event()
    for i in range(6):
        await h.accept(f"slow-{i}", "a")
    for i in range(3):
        await h.accept(f"fast-{i}", "b")
    await h.dispatcher.start()  # e.g. a restart with a backlog
    try:
        await wait_until(lambda: len(b.sent) == 3)
    finally:
        a.hold_all.set()
    assert len(a.calls) <= 2


async def test_two_slow_channels_do_not_starve_a_third(make_harness: MakeHarness) -> None:
    h = await make_harness(clock=FakeClock(), workers=4, lease="60s")
    a, b, c = (h.channels[name] for name in "abc")
    gate = a.hold_all = b.hold_all = asyncio.Event()
    await fill_hanging_channel(h, "a", 3, share=2)
    await fill_hanging_channel(h, "b", 3, share=2)
    await h.accept("fast", "c")
    try:
        await wait_until(lambda: c.sent == [7])
    finally:
        gate.set()


async def test_stop_lets_an_in_flight_send_finish_and_leaves_the_rest_pending(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    a = h.channels["a"]
    a.holds[1] = asyncio.Event()
    await h.accept("run-1", "a")
    await h.accept("run-1", "a")
    await wait_until(lambda: len(a.calls) == 1)
    stopping = asyncio.create_task(h.dispatcher.stop(grace=5))
    await asyncio.sleep(0.1)
    assert not stopping.done()  # it waits for the send in flight
    await h.accept("run-2", "a")  # accepted while draining: stays pending
    a.holds[1].set()
    await asyncio.wait_for(stopping, timeout=2)
    assert a.sent == [1]
    assert [call.seq for call in a.calls] == [1]
    assert await h.counts() == {("a", "sent"): 1, ("a", "pending"): 2}

    later = h.new_dispatcher()
    await later.start()
    try:
        await wait_until(lambda: sorted(a.sent) == [1, 2, 3])
    finally:
        await later.stop(1)
    assert [seq for seq in a.sent if seq in (1, 2)] == [1, 2]


async def test_a_send_outlasting_the_grace_is_given_back_untouched(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    a = h.channels["a"]
    a.hold_all = asyncio.Event()
    await h.accept("run-1", "a")
    await wait_until(lambda: len(a.calls) == 1)
    await h.dispatcher.stop(grace=0.1)
    assert a.cancelled == [1] and a.sent == []
    assert await h.counts() == {("a", "pending"): 1}
    [job] = await h.store.claim(now=time.time(), lease=5, limit=10)
    assert job.attempts == 0
    await h.store.release(job.id)

    a.hold_all = None
    later = h.new_dispatcher()
    await later.start()
    try:
        await wait_until(lambda: a.sent == [1])
    finally:
        await later.stop(1)


async def test_a_send_without_answer_within_half_the_lease_counts_as_a_failed_attempt(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(lease="200ms", max_attempts=2)
    a = h.channels["a"]
    a.hold_all = asyncio.Event()
    await h.accept("run-1", "a")
    await wait_until(has_dead(h))
    [dead] = await h.dead()
    assert dead.last_error == "gave up after 2 attempts: no answer within 0.1s"
    assert len(a.calls) == 2 and a.cancelled == [1, 1]


async def test_a_job_leased_by_a_crashed_worker_is_sent_once_its_lease_ends(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(start=False)
    a = h.channels["a"]
    await h.accept("run-1", "a")
    await h.accept("run-1", "a")
    leased_at = time.time()
    [orphan] = await h.store.claim(now=leased_at, lease=0.4, limit=10)  # its worker then dies
    await h.dispatcher.start()
    await wait_until(lambda: a.sent == [1, 2])
    assert a.calls_for(1)[0].at >= leased_at + 0.4
    assert len(a.calls) == 2
    assert orphan.attempts == 0


@pytest.mark.parametrize("large", [False, True], ids=["ordinary", "large"])
async def test_an_events_jobs_share_one_parse_and_only_a_large_one_leaves_the_event_loop(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    h = await make_harness()
    parsed: list[Any] = []
    threads: list[threading.Thread] = []
    real_parse, real_render = Event.model_validate, h.runtime.render

    def parse(data: Any, *args: Any, **kwargs: Any) -> Event:
        parsed.append(data)
        threads.append(threading.current_thread())
        return real_parse(data, *args, **kwargs)

    def render(*args: Any, **kwargs: Any) -> Message:
        threads.append(threading.current_thread())
        return real_render(*args, **kwargs)

    monkeypatch.setattr(Event, "model_validate", parse)
    monkeypatch.setattr(h.runtime, "render", render)
    pad = {"pad": "x" * INLINE_BYTES} if large else {}
    seq = await h.accept(f"run-{uuid.uuid4()}", "a", "b", "c", **pad)
    await wait_until(lambda: all(ch.sent == [seq] for ch in h.channels.values()))
    assert len(parsed) == 1
    assert len(threads) == 4
    on_loop = {thread is threading.main_thread() for thread in threads}
    assert on_loop == ({False} if large else {True})


NEGATIVE = "completed: Input should be greater than or equal to 0"


@pytest.mark.parametrize(
    ("counts", "problem"),
    [
        ({"completed": -(10**15), "failed": 10**15 + 1}, NEGATIVE),
        ({"completed": -100_000_000, "failed": 100_000_001}, NEGATIVE),
        ({"failed": 10**29}, "failed: Input should be less than or equal to 1000000"),
    ],
)
async def test_a_stored_event_with_insane_counts_is_dead_lettered_with_the_reason(
    make_harness: MakeHarness, counts: dict[str, int], problem: str
) -> None:
    """Stored before counts were checked: one clear dead letter, no crash, nothing retried."""
    h = await make_harness()
    await h.accept("run-1", "a", "b", node_status_counts=counts)
    after = await h.accept("run-2", "a")
    await wait_until(has_dead(h, 2))
    await wait_until(lambda: h.channels["a"].sent == [after])
    reasons = {job.last_error for job in await h.dead()}
    assert reasons == {f"stored event is not a valid Mosaic event: node_status_counts.{problem}"}
    assert [job.attempts for job in await h.dead()] == [1, 1]  # no retries


async def test_a_stored_body_that_is_not_json_is_dead_lettered(make_harness: MakeHarness) -> None:
    h = await make_harness()
    event = NewEvent(
        uuid.uuid4().hex, "key-x", b"{not json", "RUN_PROGRESS", "run-1", "agent-1", "running",
        time.time(),
    )  # fmt: skip
    await h.store.accept(event, [JobSpec("a", "route", "seq")])
    h.dispatcher.notify()
    await wait_until(has_dead(h))
    [dead] = await h.dead()
    assert dead.last_error == "stored event is not a valid Mosaic event: not JSON"
