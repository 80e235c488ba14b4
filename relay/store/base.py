"""The store contract, backend-neutral (SQLite embedded; Redis for several replicas).

``accept`` is the durability point: the event, its dedup key and one delivery job per channel are
written in ONE transaction and are durable when it returns. Jobs move
pending -> inflight (leased) -> sent | pending (retry) | dead. Per (run_id, channel), only the
oldest unfinished job may be claimed, so a run's messages reach a channel in acceptance order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "DELIVERY_STATES",
    "AcceptResult",
    "ActionRecord",
    "AgentName",
    "AgentRuns",
    "Attempt",
    "ChannelLatency",
    "ChannelStatus",
    "Counts",
    "EventFilter",
    "EventRecord",
    "HeldEntry",
    "HeldGroup",
    "Job",
    "JobRecord",
    "JobSpec",
    "JobState",
    "LiveCard",
    "NewEvent",
    "PeriodStats",
    "QuietRun",
    "RunDetail",
    "RunFilter",
    "RunPage",
    "RunRecord",
    "Series",
    "SharedRateLimits",
    "Store",
    "StoreError",
    "StoreInspector",
    "StoreStats",
    "delivery_state",
]

JobState = str
"""One of ``pending``, ``inflight``, ``sent``, ``dead``."""


class StoreError(Exception):
    """The store cannot do what was asked (unreachable, missing, corrupt)."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One delivery to create with an event: which channel, by which route, how."""

    channel: str
    route: str
    template: str | None = None
    mode: str = "post"
    hold: str | None = None
    """Not a job: hold the event in this group (a digest route's window, a channel's quiet
    hours) until the group is flushed as one message (``Store.take_held``)."""
    entry: bytes = b""
    """With ``hold``: what the held event will show in that message (JSON, ``relay.digest``)."""


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One press of a chat action's button as the audit keeps it (``relay.actions``)."""

    at: float
    action: str
    run_id: str
    source: str
    """``slack`` or ``telegram``."""
    user_id: str
    user_name: str | None
    result: str
    """``done``, ``failed``, ``refused``, ``duplicate`` or ``expired``."""
    detail: str = ""
    route: str = ""
    channel: str = ""


@dataclass(frozen=True, slots=True)
class HeldGroup:
    """Events held for one later message: a digest route's window on a channel, or a channel's
    quiet hours. ``oldest``: when the oldest held event not yet taken was accepted."""

    group: str
    channel: str
    route: str
    template: str | None
    count: int
    oldest: float


@dataclass(frozen=True, slots=True)
class HeldEntry:
    """One held event as ``JobSpec.entry`` stored it, and when it was accepted."""

    received_at: float
    entry: bytes


@dataclass(frozen=True, slots=True)
class NewEvent:
    """What the receiver hands the store for one webhook."""

    event_id: str
    dedup_key: str | None
    """None for events never deduplicated (TEST)."""
    body: bytes
    """The canonical JSON of the payload."""
    flag: str
    run_id: str
    agent_id: str
    status: str
    received_at: float


@dataclass(frozen=True, slots=True)
class AcceptResult:
    event_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Job:
    """A delivery job as claimed (or listed), with its event's payload."""

    id: str
    event_id: str
    run_id: str
    channel: str
    route: str
    template: str | None
    mode: str
    state: JobState
    attempts: int
    """Tries that ended in a counted retry, a send or a dead letter (429 waits do not count):
    every view (CLI, API, dashboard) shows this number."""
    created_at: float
    """When the event was accepted."""
    next_attempt_at: float
    last_error: str | None
    body: bytes
    """The event's canonical JSON."""
    run_started_at: float | None
    """When the relay accepted the run's ``RUN_STARTED`` (for elapsed time); ``None`` when it
    never saw it, so no message shows a wrong "0s"."""
    age_from: float = -1.0
    """When ``max_age`` starts counting: acceptance or the last replay (default: ``created_at``)."""

    def __post_init__(self) -> None:
        if self.age_from < 0:
            object.__setattr__(self, "age_from", self.created_at)


@dataclass(frozen=True, slots=True)
class AgentName:
    """An agent's name as Mosaic's API gave it, and when it asked (``name`` None: Mosaic has no
    such agent, or it has no name)."""

    name: str | None
    fetched_at: float


@dataclass(frozen=True, slots=True)
class QuietRun:
    """A run with no news for a while: its last stored event, and when it was accepted."""

    run_id: str
    agent_id: str
    last_event_at: float
    last_body: bytes
    """The canonical JSON of its last stored event."""


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    channel: str
    state: JobState
    count: int
    oldest_created_at: float | None


class Store(Protocol):
    async def open(self) -> None:
        """Connect and create the schema if missing."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the store answers."""
        ...

    async def accept(self, event: NewEvent, jobs: Sequence[JobSpec]) -> AcceptResult:
        """Store the event and its jobs atomically and durably, unless ``dedup_key`` is known
        (then nothing is written and the original's ``event_id`` is returned, ``duplicate=True``)."""
        ...

    async def claim(
        self, *, now: float, lease: float, limit: int, exclude_channels: Collection[str] = ()
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs (pending, or inflight with an expired lease), each the
        oldest unfinished job of its (run_id, channel), none of ``exclude_channels`` (channels
        already at their share of the workers)."""
        ...

    async def mark_sent(self, job_id: str, *, now: float, rendered: str | None = None) -> None:
        """Sent; ``rendered`` is the message text as sent (kept by stores that log attempts)."""
        ...

    async def mark_retry(
        self,
        job_id: str,
        *,
        next_attempt_at: float,
        error: str,
        now: float,
        count_attempt: bool = True,
    ) -> None:
        """Back to pending, due at ``next_attempt_at``; ``attempts`` grows if ``count_attempt``.
        ``now`` is when the try ended (the attempt log's time, in stores that keep one)."""
        ...

    async def mark_dead(self, job_id: str, *, error: str, now: float) -> None: ...

    async def release(self, job_id: str) -> None:
        """Give a leased job back untouched (shutdown before it was sent)."""
        ...

    async def next_due_at(self) -> float | None:
        """The earliest ``next_attempt_at`` among pending jobs (for the dispatcher's sleep)."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[Job]: ...

    async def replay(self, job_id: str | None, *, now: float) -> int:
        """Dead job(s) back to pending with attempts and age reset; ``None`` = all. Returns how many."""
        ...

    async def status(self) -> list[ChannelStatus]: ...

    async def prune(self, *, older_than: float) -> int:
        """Delete sent jobs, and events (with their dedup keys) whose jobs are all sent, accepted
        before ``older_than``. Dead letters stay until replayed, held events until taken; events
        taken and never dropped go a retention after their take. Returns events deleted."""
        ...

    async def get_ref(self, run_id: str, channel: str) -> tuple[str, str] | None:
        """The (channel_id, message_id) of a run's card/thread root on a channel, if any."""
        ...

    async def put_ref(
        self, run_id: str, channel: str, channel_id: str, message_id: str
    ) -> None: ...

    async def get_card_state(self, run_id: str, channel: str) -> str | None:
        """A live card's bookkeeping (opaque JSON text owned by ``relay.cards``)."""
        ...

    async def put_card_state(self, run_id: str, channel: str, state: str) -> None: ...

    async def has_newer(self, job: Job) -> bool:
        """Whether a later unfinished job of the same (run_id, channel) is queued."""
        ...

    # --- reconciliation and the stale-run watch ---

    async def known_dedup_keys(self, keys: Collection[str]) -> set[str]:
        """Those of ``keys`` an accepted event holds (read only: what ``accept`` would refuse)."""
        ...

    async def quiet_runs(self, *, before: float, limit: int = 1000) -> list[QuietRun]:
        """Runs not finished (no ``RUN_FINISHED``, no terminal status stored) whose last stored
        event was accepted before ``before``; the quietest first, at most ``limit``."""
        ...

    async def held_groups(self) -> list[HeldGroup]:
        """Every group with held events not yet taken."""
        ...

    async def take_held(self, group: str, *, before: float, key: str) -> list[HeldEntry]:
        """Take the events of ``group`` accepted before ``before`` for the message ``key``, in
        acceptance order, atomically. Idempotent: once events were taken for ``key``, the same
        ones are returned again and no others are taken (so a flush that crashed before its
        message was stored takes exactly the same events again)."""
        ...

    async def taken_keys(self) -> list[str]:
        """The keys events were taken for and not dropped yet (a flush that did not finish)."""
        ...

    async def drop_held(self, key: str) -> None:
        """Forget the events taken for ``key`` (its message is stored)."""
        ...

    async def claim_once(self, key: str, *, ttl: float) -> bool:
        """True for the first caller that claims ``key`` among every process sharing the store,
        False for every later one until ``ttl`` seconds have passed (a button pressed twice)."""
        ...

    async def record_action(self, record: ActionRecord) -> None:
        """Keep a chat action's audit row (kept for the store's retention)."""
        ...

    async def list_actions(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[ActionRecord]:
        """The newest audit rows first, all runs' or one run's."""
        ...

    async def take_lease(self, name: str, *, ttl: float) -> bool:
        """Whether this process may do the periodic job ``name`` now: True for at most one
        holder per ``ttl`` seconds among every process sharing the store (SQLite: always)."""
        ...

    # --- agents' names in Mosaic (a cache of its API's answers) ---

    async def agent_names(self) -> dict[str, AgentName]:
        """Every cached agent name, by agent id."""
        ...

    async def put_agent_name(self, agent_id: str, name: AgentName) -> None:
        """Cache (or replace) the name of ``agent_id``."""
        ...

    # --- dashboard logins, shared by every process on the store ---

    async def put_session(self, key: str, data: str, *, expires_at: float) -> None:
        """Keep (or replace) the session ``key`` (the SHA-256 hex of its id, never the id) with
        ``data`` (small JSON text owned by ``relay.ui.auth``) until ``expires_at``."""
        ...

    async def get_session(self, key: str, *, now: float) -> str | None:
        """The data of session ``key``; None when absent or expired at ``now``."""
        ...

    async def delete_session(self, key: str) -> None:
        """Forget session ``key`` (logout); nothing when absent."""
        ...


# --- inspection (the web UI); a separate protocol: not every backend has it ---------------------

DELIVERY_STATES = ("sent", "pending", "retrying", "dead")
"""What an operator sees per channel; ``retrying`` = unfinished after a failure or a wait."""


def delivery_state(state: JobState, attempts: int, last_error: str | None) -> str:
    if state in ("sent", "dead"):
        return state
    return "retrying" if attempts > 0 or last_error is not None else "pending"


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per time bucket (an hour or a UTC day), stacked by key."""

    starts: tuple[float, ...]
    """Each bucket's start (UTC seconds), oldest first."""
    stacks: tuple[tuple[str, tuple[int, ...]], ...]
    """(key, one count per bucket), in stacking order."""


@dataclass(frozen=True, slots=True)
class AgentRuns:
    """Runs of one agent that finished (``RUN_FINISHED``) in a period, by outcome."""

    agent_id: str
    finished: int
    failed: int
    partial: int
    """``partial_complete``."""

    @property
    def failure_rate(self) -> float:
        return (self.failed + self.partial) / self.finished if self.finished else 0.0


@dataclass(frozen=True, slots=True)
class ChannelLatency:
    """Accept -> sent on one channel in a period; p50/p95 are histogram estimates (±10%)."""

    channel: str
    sent: int
    p50: float
    p95: float


@dataclass(frozen=True, slots=True)
class PeriodStats:
    """One period: the last 24 hours by hour, or the last 30 days by UTC day."""

    events: Series
    """Events by flag: ``RUN_STARTED``, ``RUN_PROGRESS``, ``RUN_FINISHED``, ``other``."""
    deliveries: Series
    """Attempts that ended in the bucket: ``sent``, ``retry`` (counted), ``dead``."""
    agents: tuple[AgentRuns, ...]
    latency: tuple[ChannelLatency, ...]


@dataclass(frozen=True, slots=True)
class StoreStats:
    now: float
    hours: PeriodStats
    days: PeriodStats
    dead_letters: tuple[tuple[str, int], ...]
    """Dead letters waiting now, per channel."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One entry of a job's attempt log."""

    at: float
    outcome: str
    """``sent``, ``retry`` (counted), ``wait`` (not counted: 429, pacing, card interval),
    ``dead`` or ``replayed``."""
    error: str | None = None
    rendered: str | None = None
    """The message text as sent (``sent`` entries of plain posts)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    channel: str
    route: str
    template: str | None
    mode: str
    state: JobState
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None
    finished_at: float | None
    log: tuple[Attempt, ...] = ()
    """Oldest first; empty in event lists."""

    @property
    def delivery(self) -> str:
        return delivery_state(self.state, self.attempts, self.last_error)


@dataclass(frozen=True, slots=True)
class EventRecord:
    event_id: str
    cursor: int
    """Acceptance order; pass it as ``before`` to list older events."""
    flag: str
    status: str
    agent_id: str
    run_id: str
    received_at: float
    trigger: str
    """``youtube``, ``schedule``… or ``none``."""
    title: str | None
    """The triggering video's title, if any."""
    jobs: tuple[JobRecord, ...]
    body: bytes | None = None
    """The canonical JSON payload (``get_event`` only)."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Exact matches; None = any. ``delivery`` keeps events with a job in that state."""

    flag: str | None = None
    status: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    delivery: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    received: int
    """Events stored (within the retention)."""
    sent: int
    pending: int
    retrying: int
    dead: int


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Exact matches; None = any. ``status``: the final status; ``delivery``: the health."""

    agent_id: str | None = None
    status: str | None = None
    trigger: str | None = None
    delivery: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as its events (TEST and DIGEST left out) tell it."""

    run_id: str
    agent_id: str
    trigger: str
    """Of its newest event naming one: ``youtube``, ``schedule``… or ``none``."""
    title: str | None
    """The triggering video's title, if any (hostile text)."""
    started_at: float
    """When the relay accepted its first event."""
    start_seen_at: float | None
    """When the relay accepted its ``RUN_STARTED`` (None: never seen)."""
    last_event_at: float
    status: str
    """Its newest event's status, or the newest end's once it ended."""
    ended: bool
    ended_at: float | None
    """When the relay accepted its first end (``RUN_FINISHED`` or a terminal status)."""
    outputs: int
    """Outputs of its newest event that has any."""
    events: int
    health: str
    """Over all its jobs: ``dead``, else ``retrying``, else ``pending``, else ``sent``; ``none``
    when nothing was routed."""
    cursor: str
    """Pass it as ``before`` to list older runs."""

    def duration(self, now: float) -> float:
        """From its first event to its end, or to ``now`` while it runs."""
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.started_at)


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunRecord]
    older: str | None
    """The cursor that continues the listing (None: nothing older). With filters on computed
    values it may come with fewer than ``limit`` runs: the search stopped after a bound."""


@dataclass(frozen=True, slots=True)
class LiveCard:
    """A run's card (or thread root) on one channel as it stands now."""

    channel: str
    channel_id: str | None
    message_id: str | None
    state: str | None
    """The card's bookkeeping (opaque JSON text owned by ``relay.cards``)."""
    text: str | None
    """The newest sent text kept in its jobs' attempt logs, if any."""
    sent_at: float | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    record: RunRecord
    events: tuple[EventRecord, ...]
    """In acceptance order, with payloads, jobs and attempt logs (the first ``MAX_TIMELINE``)."""
    cards: tuple[LiveCard, ...]
    events_left_out: int = 0


@runtime_checkable
class StoreInspector(Protocol):
    """Read-only views of events, jobs and their attempt logs."""

    async def stats(self, now: float) -> StoreStats:
        """Aggregates for the overview: per hour over the 24 hours up to ``now``, per UTC day
        over the 30 days up to ``now``, and the dead letters per channel."""
        ...

    async def list_events(
        self, *, limit: int = 50, before: int | None = None, where: EventFilter | None = None
    ) -> list[EventRecord]:
        """Newest first, each with its jobs (without their logs)."""
        ...

    async def get_event(self, event_id: str) -> EventRecord | None:
        """The event with its payload, and its jobs with their attempt logs."""
        ...

    async def counts(self) -> Counts: ...

    async def list_runs(
        self, *, limit: int = 50, before: str | None = None, where: RunFilter | None = None
    ) -> RunPage:
        """Runs newest first (by when the relay accepted their first event), without the
        relay's own pseudo-runs (TEST and DIGEST events)."""
        ...

    async def get_run(self, run_id: str) -> RunDetail | None:
        """The run's record, its events in order (with jobs and attempt logs) and its cards."""
        ...


@runtime_checkable
class SharedRateLimits(Protocol):
    """A store that keeps rate-limit buckets for every replica sharing it (Redis)."""

    async def acquire_rate(self, key: str, per_second: float, burst: int, now: float) -> float:
        """Take a token now and return 0, or return the seconds until one is available."""
        ...
