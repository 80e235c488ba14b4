"""Agents' names in Mosaic, for messages, routes and the dashboard (``mosaic.agent_names``).

Nothing on the webhook path or in a render calls the API: routers and renderers read
``AgentNames``, an in-memory copy of the store's cache. Reading an agent it does not know, or
knew more than ``max_age`` ago, notes the id and wakes ``NameResolver``, a background task that
asks ``GET /agent/{id}`` for the noted ids one at a time, caches each answer in the store (shared
by every replica) and in memory. Until then, and whenever a lookup fails, a message shows a short
id (``agent 123e4567``); a failed lookup is tried again after ``retry_after``. An agent Mosaic
does not know (404) is cached without a name, and asked again after ``max_age``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from relay.mosaic.client import MosaicAuthError, MosaicClient, MosaicError
from relay.mosaic.models import Agent
from relay.mosaic.settings import MosaicSettings
from relay.store.base import AgentName, Store

__all__ = ["MAX_AGE", "AgentNames", "NameResolver"]

log = logging.getLogger("relay.mosaic.names")

MAX_AGE = 86_400.0
"""A cached name older than a day is asked again (it still shows meanwhile)."""
RETRY_AFTER = 300.0
"""A lookup that failed (5xx, timeout, a refused key) is not tried again before this."""
MAX_PENDING = 1_000
"""Ids waiting for a lookup at most (more are noted again when next seen)."""
RELOAD_EVERY = 600.0
"""How often the cache is read again from the store (names other replicas resolved)."""
MAX_NAME = 200
"""The longest name kept (characters)."""
OFF_RECHECK = 60.0
"""How often a relay with the names off looks at its (reloaded) config again."""

ClientFactory = Callable[[MosaicSettings], MosaicClient]


class AgentNames(Mapping[str, str]):
    """Agent id -> its name in Mosaic, answered from memory. A miss, or a name older than
    ``max_age``, notes the id for ``NameResolver``; the old name still answers."""

    def __init__(self, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.time) -> None:
        self._max_age = max_age
        self._clock = clock
        self._cache: dict[str, AgentName] = {}
        self._pending: dict[str, None] = {}
        self._not_before: dict[str, float] = {}
        self._wake = asyncio.Event()

    def __getitem__(self, agent_id: str) -> str:
        cached = self._cache.get(agent_id)
        if cached is None or self._clock() - cached.fetched_at >= self._max_age:
            self._note(agent_id)
        if cached is None or not cached.name:
            raise KeyError(agent_id)
        return cached.name

    def __iter__(self) -> Iterator[str]:
        return (agent_id for agent_id, cached in self._cache.items() if cached.name)

    def __len__(self) -> int:
        return sum(1 for cached in self._cache.values() if cached.name)

    def cached(self, agent_id: str) -> AgentName | None:
        """What memory holds for ``agent_id`` (None: nothing), without noting it."""
        return self._cache.get(agent_id)

    def is_fresh(self, cached: AgentName) -> bool:
        return self._clock() - cached.fetched_at < self._max_age

    def learn(self, cached: Mapping[str, AgentName]) -> None:
        """Take these names (the store's cache, or an answer), where newer than memory's."""
        for agent_id, name in cached.items():
            known = self._cache.get(agent_id)
            if known is None or name.fetched_at >= known.fetched_at:
                self._cache[agent_id] = name

    @property
    def pending(self) -> list[str]:
        """The ids waiting for a lookup, in the order they were noted."""
        return list(self._pending)

    def take_pending(self) -> list[str]:
        """The ids waiting for a lookup, now no longer waiting."""
        taken, self._pending = list(self._pending), {}
        self._wake.clear()
        return taken

    def failed(self, agent_id: str, retry_after: float) -> None:
        """A lookup of ``agent_id`` failed: not noted again for ``retry_after`` seconds."""
        self._not_before[agent_id] = self._clock() + retry_after

    async def noted(self) -> None:
        """Until an id is noted (at once if one waits)."""
        await self._wake.wait()

    def _note(self, agent_id: str) -> None:
        if agent_id in self._pending or len(self._pending) >= MAX_PENDING:
            return
        not_before = self._not_before.get(agent_id)
        if not_before is not None:
            if self._clock() < not_before:
                return
            del self._not_before[agent_id]
        self._pending[agent_id] = None
        self._wake.set()


class NameResolver:
    """Resolves the ids ``names`` noted, through the API of ``settings()`` (read at each round,
    so a reload takes effect at the next)."""

    def __init__(
        self,
        store: Store,
        names: AgentNames,
        settings: Callable[[], MosaicSettings],
        client_factory: ClientFactory,
        *,
        clock: Callable[[], float] = time.time,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self._store = store
        self.names = names
        self._settings = settings
        self.client_factory = client_factory
        self._clock = clock
        self._retry_after = retry_after
        self._loaded_at: float | None = None
        self.lookups = 0
        """API lookups made (each ``GET /agent/{id}``, its retries apart)."""

    @property
    def enabled(self) -> bool:
        settings = self._settings()
        return settings.api_enabled and settings.agent_names

    async def run_forever(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Resolve noted ids as they come; never raises (each round logs its own errors)."""
        while True:
            if not self.enabled:
                await sleep(OFF_RECHECK)
                continue
            try:
                await self.run_once()
            except Exception:
                log.exception("resolving agent names failed")
                await sleep(self._retry_after)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RELOAD_EVERY):
                    await self.names.noted()

    async def run_once(self) -> int:
        """Read the store's cache when due, then look up every noted id not fresh there;
        returns how many lookups were made."""
        if self._loaded_at is None or self._clock() - self._loaded_at >= RELOAD_EVERY:
            await self.reload()
        wanted = self.names.take_pending()
        if not wanted or not self.enabled:
            return 0
        cached = await self._store.agent_names()  # another replica may have asked already
        self.names.learn(cached)
        wanted = [agent_id for agent_id in wanted if not self._fresh(cached.get(agent_id))]
        if not wanted:
            return 0
        client = self.client_factory(self._settings())
        try:
            return await self._look_up(client, wanted)
        finally:
            await client.close()

    async def reload(self) -> None:
        """Take the store's cache into memory."""
        self.names.learn(await self._store.agent_names())
        self._loaded_at = self._clock()

    def _fresh(self, cached: AgentName | None) -> bool:
        return cached is not None and self.names.is_fresh(cached)

    async def _look_up(self, client: MosaicClient, wanted: list[str]) -> int:
        made = 0
        for position, agent_id in enumerate(wanted):
            made += 1
            self.lookups += 1
            try:
                agent = await client.agent(agent_id)
            except MosaicAuthError as exc:
                log.warning("Mosaic refused the API key; agent names stay unresolved: %s", exc)
                for rest in wanted[position:]:
                    self.names.failed(rest, self._retry_after)
                break
            except MosaicError as exc:
                log.warning("looking up the name of agent %s failed: %s", agent_id, exc)
                self.names.failed(agent_id, self._retry_after)
                continue
            await self._keep(agent_id, AgentName(_name(agent), self._clock()))
        return made

    async def _keep(self, agent_id: str, name: AgentName) -> None:
        self.names.learn({agent_id: name})
        try:
            await self._store.put_agent_name(agent_id, name)
        except Exception:
            log.exception("caching the name of agent %s failed", agent_id)


def _name(agent: Agent | None) -> str | None:
    """The agent's name (cut to ``MAX_NAME``), None when Mosaic has no such agent or name."""
    name = agent.name.strip() if agent is not None and agent.name else ""
    return name[:MAX_NAME] or None
