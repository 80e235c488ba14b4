"""Turns each held group's due window into one stored ``DIGEST`` event with one delivery job.

Exactly once per window: the events are taken under the window's key (``Store.take_held``,
idempotent), the digest is stored with that key as its dedup key, then the key is dropped. A
flush cut short (crash, SIGKILL) leaves its key taken, and the next round finishes it with the
same events, whichever replica runs it. A window ends at its fire time (digest) or when the
quiet period ends; it is flushed ``SETTLE`` seconds later, so an event accepted just before the
end is in it. One that still comes later (its store write was slow) gets a late message of its
own rather than being lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from relay.delivery.clock import SYSTEM_CLOCK, Clock
from relay.digest.entries import DIGEST_FLAG, Digest, Entry
from relay.digest.groups import QUIET_ROUTE, digest_group, flush_key
from relay.digest.windows import Schedule
from relay.ingest import new_event_id
from relay.metrics import Metrics
from relay.routing import Router
from relay.runtime import Runtime
from relay.store.base import HeldGroup, JobSpec, NewEvent, Store

__all__ = ["LATE_AFTER", "POLL_INTERVAL", "SETTLE", "Flusher"]

log = logging.getLogger("relay.digest")

SETTLE = 2.0
"""Seconds after a window's end before it is flushed (events accepted just before it land)."""
LATE_AFTER = 60.0
"""A window flushed this long after its end is marked late (the relay was down at the time)."""
POLL_INTERVAL = 60.0
"""Seconds between rounds at most (another replica's held events, a config reload)."""
RETRY_AFTER = 5.0
MAX_ROUNDS = 100
"""Passes one ``run_once`` makes at most (each flushes a window of every group due)."""


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a group's message goes, as the config says now."""

    kind: str
    route: str
    channel: str
    template: str | None
    timezone: str
    start: float | None
    end: float


def digest_dedup_key(key: str) -> str:
    return hashlib.sha256(f"{DIGEST_FLAG}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


class Flusher:
    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        notify: Callable[[], None],
        *,
        clock: Clock = SYSTEM_CLOCK,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._runtime = runtime
        self._notify = notify
        self._clock = clock
        self._wake = asyncio.Event()
        self._started = clock.now()
        self._sent_empty: set[str] = set()
        self._homeless: set[str] = set()
        """Groups whose channel is gone, warned about once."""
        self.flushed = 0
        """Windows this process stored a message for."""

    def wake(self) -> None:
        """Something changed (an event was held, the config was reloaded): look again now."""
        self._wake.set()

    async def run_forever(self) -> None:
        self._started = self._clock.now()
        while True:
            self._wake.clear()
            now = self._clock.now()
            try:
                due = await self.run_once(now)
            except Exception:
                log.exception("flushing digests failed; trying again")
                due = now + RETRY_AFTER
            await self._clock.wait(self._wake, min(due, now + POLL_INTERVAL))

    async def run_once(self, now: float) -> float:
        """Flush every window due at ``now``; returns when the next one falls due."""
        for _ in range(MAX_ROUNDS):
            due = await self._round(now)
            if due > now:
                return due
        return now + RETRY_AFTER  # more windows than one pass takes: go on soon

    async def _round(self, now: float) -> float:
        """One pass over the held groups; ``now`` when a group may have another window due."""
        runtime = self._runtime()
        router = runtime.router
        for key in await self._store.taken_keys():
            group, _, window_end = key.partition("/")[0].rpartition("@")
            await self._finish(key, group, float(window_end), runtime, now)
        next_due = float("inf")
        groups = await self._store.held_groups()
        for held in groups:
            end = self._window_end(held, router)
            if end is None:  # the config no longer holds these: they go out now
                end = now
            elif end + SETTLE > now:
                next_due = min(next_due, end + SETTLE)
                continue
            key = flush_key(held.group, end)
            if await self._store.known_dedup_keys([digest_dedup_key(key)]):
                key += f"/{held.oldest!r}"  # a straggler of a window already sent
            if await self._finish(key, held.group, end, runtime, now):
                next_due = now  # later windows of the group may be due as well
        held_now = {held.group for held in groups}
        for group, schedule in self._empty_groups(router):
            end = schedule.last_fire(now)
            key = flush_key(group, end)
            if end >= self._started and group not in held_now and key not in self._sent_empty:
                self._sent_empty.add(key)
                await self._finish(key, group, end, runtime, now, empty=True)
            next_due = min(next_due, schedule.next_fire(now) + SETTLE)
        return next_due

    def _window_end(self, held: HeldGroup, router: Router) -> float | None:
        """When the window holding ``held``'s oldest event ends; None when the config no longer
        holds such events (the route or the quiet hours are gone)."""
        kind, route_name, channel = _parse(held.group)
        if kind == "quiet":
            rule = router.quiet.get(channel)
            return rule.hours.period_end(held.oldest) if rule is not None else None
        route = router.route_named(route_name)
        if route is None or route.digest is None:
            return None
        return route.digest.next_fire(held.oldest)

    def _empty_groups(self, router: Router) -> list[tuple[str, Schedule]]:
        """The groups of digest routes that send a message for an empty window too."""
        return [
            (digest_group(route.name, channel), route.digest)
            for route in router.routes
            if route.digest is not None and route.digest.settings.send_empty
            for channel in route.channels
        ]

    async def _finish(
        self,
        key: str,
        group: str,
        end: float,
        runtime: Runtime,
        now: float,
        *,
        empty: bool = False,
    ) -> bool:
        """Take the window's events, store its message, drop the key. False when there was
        nothing to send."""
        entries = await self._store.take_held(group, before=end, key=key)
        if not entries and not empty:
            await self._store.drop_held(key)
            return False
        target = self._target(group, end, runtime)
        if target is None:
            if group not in self._homeless:  # once per group: it is looked at every round
                self._homeless.add(group)
                log.warning(
                    "%d held events of %s have nowhere to go: the channel is no longer "
                    "configured (they wait; configure it again to send them)",
                    len(entries), group,
                )  # fmt: skip
            return False
        self._homeless.discard(group)
        digest = Digest(
            kind="quiet" if target.kind == "quiet" else "digest",
            route=target.route,
            channel=target.channel,
            start=target.start,
            end=end,
            late=now - end > LATE_AFTER,
            timezone=target.timezone,
            entries=[Entry.model_validate_json(held.entry) for held in entries],
        )
        result = await self._store.accept(
            NewEvent(
                event_id=new_event_id(),
                dedup_key=digest_dedup_key(key),
                body=digest.body(),
                flag=DIGEST_FLAG,
                run_id=group,
                agent_id="",
                status="",
                received_at=now,
            ),
            [JobSpec(target.channel, target.route, target.template, mode="digest")],
        )
        await self._store.drop_held(key)
        if not result.duplicate:
            self.flushed += 1
            if self._metrics is not None:
                self._metrics.digests.labels(digest.kind, "yes" if digest.late else "no").inc()
            self._notify()
            log.info(
                "%s of %d events for %s stored%s",
                "quiet-hours message" if target.kind == "quiet" else "digest",
                len(entries),
                target.channel,
                " (late)" if digest.late else "",
            )
        return True

    def _target(self, group: str, end: float, runtime: Runtime) -> _Target | None:
        kind, route_name, channel = _parse(group)
        if channel not in runtime.channels:
            return None
        router = runtime.router
        if kind == "quiet":
            rule = router.quiet.get(channel)
            zone = rule.hours.settings.timezone if rule is not None else "UTC"
            return _Target(kind, QUIET_ROUTE, channel, None, zone, None, end)
        route = router.route_named(route_name)
        if route is None or route.digest is None:
            return _Target(kind, route_name, channel, None, "UTC", None, end)
        schedule = route.digest
        start = schedule.last_fire(end - 1)
        return _Target(
            kind, route.name, channel, route.template, schedule.settings.timezone, start, end
        )


def _parse(group: str) -> tuple[str, str, str]:
    """``(kind, route, channel)`` of a group name (route empty for quiet hours)."""
    parts = json.loads(group)
    if parts[0] == "quiet":
        return "quiet", "", parts[1]
    return "digest", parts[1], parts[2]
