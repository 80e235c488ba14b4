"""One way into the store for every event: route it, store it with its jobs, wake the dispatcher.

The webhook receiver, the reconciler (runs whose webhook never came) and the stale-run watch all
go through ``Ingest``, so an event the relay builds itself is stored, routed, rendered and
delivered exactly like a webhook.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relay.delivery.parsed import remember
from relay.digest.entries import entry_of
from relay.events import RELAY_KEY, Event
from relay.store.base import AcceptResult, JobSpec, NewEvent, Store

if TYPE_CHECKING:
    from relay.routing import Router

__all__ = ["Ingest", "canonical_json", "dedup_key", "finished_key", "new_event_id"]

FINISHED = "RUN_FINISHED"


def new_event_id() -> str:
    """32 hex digits, time-ordered (milliseconds first) so ids sort by acceptance and index well."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def finished_key(run_id: str, status: str, completed: int, in_progress: int, failed: int) -> str:
    """The dedup key of a run's end: one alert per (run, status, counts), whatever its source."""
    text = f"{FINISHED}\0{run_id}\0{status}\0{completed}/{in_progress}/{failed}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dedup_key(event: Event, canonical: bytes) -> str | None:
    """None for TEST (never deduplicated); a run's end by run, status and counts; else the body."""
    if event.flag == "TEST":
        return None
    if event.flag == FINISHED:
        counts = event.counts
        return finished_key(
            event.run_id, event.status, counts.completed, counts.in_progress, counts.failed
        )
    return hashlib.sha256(canonical).hexdigest()


class Ingest:
    """Route -> ``store.accept`` -> notify. ``router`` is read at each call (reloads swap it)."""

    def __init__(
        self,
        store: Store,
        router: Callable[[], Router],
        notify: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._router = router
        self._notify = notify
        self.clock = clock
        self.on_hold: Callable[[], None] | None = None
        """Called when an event was held (the digest flusher may have a new group to watch)."""

    async def event(
        self, event: Event, canonical: bytes, *, at: float | None = None
    ) -> tuple[AcceptResult, list[JobSpec]]:
        """Store one validated event (``canonical``: its canonical JSON) as received ``at`` (by
        default now); raises what the store raises. Returns the store's answer and the jobs
        made (none for a duplicate)."""
        received_at = self.clock() if at is None else at
        deliveries = self._router().match(event, received_at)
        entry = entry_of(event, received_at) if any(d.hold for d in deliveries) else b""
        jobs = [
            JobSpec(
                channel=d.channel,
                route=d.route.name,
                template=d.template,
                mode=d.route.mode,
                hold=d.hold,
                entry=entry if d.hold else b"",
            )
            for d in deliveries
        ]
        new_event = NewEvent(
            event_id=new_event_id(),
            dedup_key=dedup_key(event, canonical),
            body=canonical,
            flag=event.flag,
            run_id=event.run_id,
            agent_id=event.agent_id,
            status=event.status,
            received_at=received_at,
        )
        result = await self._store.accept(new_event, jobs)
        if result.duplicate:
            return result, []
        if any(job.hold is None for job in jobs):
            remember(canonical, event)  # its deliveries here need not validate it again
            self._notify()
        if self.on_hold is not None and any(job.hold for job in jobs):
            self.on_hold()
        return result, jobs

    async def built(
        self, payload: dict[str, Any], source: str, *, at: float | None = None, **note: Any
    ) -> tuple[AcceptResult, list[JobSpec]]:
        """Store an event the relay built (``source``: reconciled or watch), marked as such."""
        marked = {**payload, RELAY_KEY: {"source": source, **note}}
        return await self.event(Event.model_validate(marked), canonical_json(marked), at=at)
