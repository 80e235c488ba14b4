"""Routes: which channels an event goes to, and how.

Routes are walked in order; every matching route delivers, ``stop: true`` ends the walk, and a
channel gets an event at most once (the first matching route wins). ``TEST`` events only reach
routes whose ``match.flag`` names ``TEST``. Routes are indexed by one key they require, so the
cost of matching stays nearly flat in the number of routes.

``match.agent`` takes an agent's id, a name from ``agents:`` (compiled to its ids), or, with
Mosaic's API names on, the agent's name in Mosaic: the event's ``agent_name`` key is its name in
``agents:``, else in ``api_names`` (an in-memory mapping the name resolver fills; no I/O).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from relay.config import RelayConfig, RouteSettings
from relay.confmodel import route_label
from relay.digest.groups import digest_group, quiet_group
from relay.digest.windows import QuietHours, Schedule
from relay.events import Event
from relay.matchers import MATCH_KEYS, Matcher, agent_ids

__all__ = ["Delivery", "Matcher", "Route", "Router"]

_INDEX_ORDER = MATCH_KEYS
"""Most selective first: a route is indexed by the first of these it constrains."""


@dataclass(frozen=True, slots=True)
class Route:
    index: int
    name: str
    match: Matcher
    exclude: Matcher
    channels: tuple[str, ...]
    template: str | None
    stop: bool
    mode: str
    thread: bool
    broadcast_failures: bool
    card_interval: float
    digest: Schedule | None = None
    """``mode: digest``: when its windows end."""
    actions: tuple[str, ...] = ()
    """Buttons its messages offer (``relay.actions``)."""

    @property
    def accepts_test(self) -> bool:
        return self.match.flag is not None and "TEST" in self.match.flag

    def matches(self, keys: Mapping[str, str | None]) -> bool:
        if keys["flag"] == "TEST" and not self.accepts_test:
            return False
        return self.match.matches(keys) and not self.exclude.matches_any_key(keys)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (route, channel) pair an event goes to, with the effective template."""

    route: Route
    channel: str
    template: str | None
    hold: str | None = None
    """The held group it waits in (a digest window, the channel's quiet hours); None: sent now."""


@dataclass(frozen=True, slots=True)
class QuietRule:
    """A channel's quiet hours and the events they let through."""

    hours: QuietHours
    passes: Matcher


_NO_NAMES: Mapping[str, str] = MappingProxyType({})


def event_keys(
    event: Event,
    agents: Mapping[str, str] = _NO_NAMES,
    api_names: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """The values routes match on; ``agent_name`` is the agent's name in ``agents`` (relay.yaml),
    else in ``api_names`` (Mosaic's), else None (``match.agent`` takes the id or that name)."""
    agent_name = agents.get(event.agent_id)
    if agent_name is None and api_names is not None:
        agent_name = api_names.get(event.agent_id)
    trigger = event.trigger_type
    youtube_channel = None
    if event.triggered_by is not None and trigger == "youtube":
        youtube_channel = event.triggered_by.channel_id
    return {
        "flag": event.flag,
        "status": event.status,
        "agent": event.agent_id,
        "trigger": trigger,
        "youtube_channel": youtube_channel,
        "source": event.source,
        "agent_name": agent_name,
    }


class Router:
    def __init__(
        self,
        routes: Sequence[Route],
        channel_templates: Mapping[str, str | None],
        agents: Mapping[str, str] = _NO_NAMES,
        api_names: Mapping[str, str] | None = None,
        quiet: Mapping[str, QuietRule] = MappingProxyType({}),
    ) -> None:
        self.routes = tuple(routes)
        self.quiet = dict(quiet)
        self._agents = agents
        self._api_names = api_names
        self._channel_templates = dict(channel_templates)
        self._always: list[int] = []
        self._index: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for route in self.routes:
            key = next((k for k in _INDEX_ORDER if getattr(route.match, k) is not None), None)
            if key is None:
                self._always.append(route.index)
                continue
            for value in getattr(route.match, key):
                self._index[key][value].append(route.index)
        self._by_name = {route.name: route for route in self.routes}
        # Frozen copies: lookups must not create entries.
        self._frozen = {key: dict(table) for key, table in self._index.items()}

    @classmethod
    def from_config(cls, config: RelayConfig, api_names: Mapping[str, str] | None = None) -> Router:
        """``api_names``: agent id -> its name in Mosaic, read at match time."""
        ids = agent_ids(config.agents)
        destinations = {
            name: [destination for destination, _ in channel.destinations(name)]
            for name, channel in config.channels.items()
        }
        routes = [
            _compile_route(index, settings, ids, destinations)
            for index, settings in enumerate(config.routes)
        ]
        templates = {
            destination: settings.template
            for name, channel in config.channels.items()
            for destination, settings in channel.destinations(name)
        }
        quiet = {
            destination: QuietRule(QuietHours(hours), Matcher.compile(hours.except_, ids))
            for name, channel in config.channels.items()
            if (hours := channel.quiet_hours) is not None
            for destination, _ in channel.destinations(name)
        }
        return cls(routes, templates, config.agents, api_names, quiet)

    def route_named(self, name: str) -> Route | None:
        return self._by_name.get(name)

    def candidates(self, keys: Mapping[str, str | None]) -> Iterable[int]:
        lists = [self._always]
        for key, table in self._frozen.items():
            values = [keys.get(key)]
            if key == "agent":
                values.append(keys.get("agent_name"))
            for value in dict.fromkeys(values):
                if value is not None and value in table:
                    lists.append(table[value])
        if len(lists) == 1:
            return lists[0]
        return _unique(heapq.merge(*lists))

    def match(self, event: Event, at: float | None = None) -> list[Delivery]:
        """Where ``event`` goes; with ``at`` (when it was accepted), which deliveries are held:
        a digest route's, and those reaching a channel in its quiet hours (unless ``except``)."""
        keys = event_keys(event, self._agents, self._api_names)
        deliveries: list[Delivery] = []
        taken: set[str] = set()
        for index in self.candidates(keys):
            route = self.routes[index]
            if not route.matches(keys):
                continue
            for channel in route.channels:
                if channel in taken:
                    continue
                taken.add(channel)
                template = route.template or self._channel_templates.get(channel)
                hold = None if at is None else self._hold(route, channel, keys, at)
                deliveries.append(Delivery(route, channel, template, hold))
            if route.stop:
                break
        return deliveries

    def _hold(
        self, route: Route, channel: str, keys: Mapping[str, str | None], at: float
    ) -> str | None:
        if route.digest is not None:
            return digest_group(route.name, channel)
        rule = self.quiet.get(channel)
        if rule is None or keys["flag"] == "TEST" or rule.hours.period_end(at) is None:
            return None
        if not rule.passes.is_empty and rule.passes.matches(keys):
            return None
        return quiet_group(channel)


def _unique(indexes: Iterable[int]) -> Iterable[int]:
    """Sorted indexes without repeats (a route listed under an agent's id and its name)."""
    last = -1
    for index in indexes:
        if index != last:
            yield index
        last = index


def _compile_route(
    index: int,
    settings: RouteSettings,
    agent_ids: Mapping[str, list[str]],
    destinations: Mapping[str, Sequence[str]],
) -> Route:
    """``destinations``: each channel's destination names (an Apprise channel has one per URL);
    ``to:`` names a channel, the route delivers to each of its destinations."""
    return Route(
        index=index,
        name=route_label(settings.name, index),
        match=Matcher.compile(settings.match, agent_ids),
        exclude=Matcher.compile(settings.not_, agent_ids),
        channels=tuple(
            dict.fromkeys(d for name in settings.to for d in destinations.get(name, (name,)))
        ),
        template=settings.template,
        stop=settings.stop,
        mode=settings.mode,
        thread=settings.thread,
        broadcast_failures=settings.broadcast_failures,
        card_interval=settings.card_interval,
        digest=None if settings.digest is None else Schedule(settings.digest),
        actions=settings.actions,
    )
