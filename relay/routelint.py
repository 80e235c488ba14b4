"""Warnings about routes that load but do nothing: a config that passes can still lose alerts.

A route that can never match (its flag never carries its status, or its ``not:`` excludes all it
matches), a route an earlier ``stop: true`` route always takes first, a channel no route uses, and
an agent named by its name in Mosaic (known only at run time, through Mosaic's API).
These are warnings, not errors: ``relay check`` prints them and succeeds, ``serve`` logs them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.confmodel import route_label
from relay.matchers import FLAG_CARRIES, MATCH_KEYS, Matcher, MatchSpec, agent_ids, is_agent_id

__all__ = ["RouteSpec", "route_warnings"]

Path = tuple[str | int, ...]
_CARRIED = ("status", "trigger", "source")
"""The keys ``FLAG_CARRIES`` may restrict."""


@dataclass(frozen=True)
class _Route:
    index: int
    label: str
    match: Matcher
    exclude: Matcher
    stop: bool

    @property
    def accepts_test(self) -> bool:
        return self.match.flag is not None and "TEST" in self.match.flag


class RouteSpec(Protocol):
    """What the checks read of a route (a ``relay.config.RouteSettings``)."""

    @property
    def name(self) -> str | None: ...

    @property
    def match(self) -> MatchSpec | None: ...

    @property
    def not_(self) -> MatchSpec | None: ...

    @property
    def stop(self) -> bool: ...

    @property
    def to(self) -> Sequence[str]: ...


def route_warnings(
    routes: Sequence[RouteSpec],
    agents: Mapping[str, str],
    channels: Iterable[str],
    *,
    api_names: bool = False,
) -> list[tuple[Path, str]]:
    """``(path, message)`` for each of a config's ``routes`` that cannot deliver, each of its
    ``channels`` no route uses, and (``api_names``: Mosaic's API names agents) each agent a route
    names that only Mosaic's API can resolve."""
    ids = agent_ids(agents)
    compiled = [
        _Route(
            index,
            route_label(route.name, index, quoted=True),
            Matcher.compile(route.match, ids),
            Matcher.compile(route.not_, ids),
            route.stop,
        )
        for index, route in enumerate(routes)
    ]
    found: list[tuple[Path, str]] = []
    dead: set[int] = set()
    for route in compiled:
        problems = _never_matches(route)
        if problems:
            dead.add(route.index)
        found += problems
    found += _shadowed([route for route in compiled if route.index not in dead])
    if api_names:
        found += _names_from_api(routes, agents)
    used = {channel for route in routes for channel in route.to}
    found += [
        (("channels", name), f"channel '{name}' is not used by any route")
        for name in channels
        if name not in used
    ]
    return found


def _names_from_api(
    routes: Sequence[RouteSpec], agents: Mapping[str, str]
) -> list[tuple[Path, str]]:
    """The agents routes name that are neither an id nor in ``agents:``."""
    known = {*agents, *agents.values()}
    found: list[tuple[Path, str]] = []
    for index, route in enumerate(routes):
        for block, spec in (("match", route.match), ("not", route.not_)):
            values = spec.agent if spec is not None and spec.agent is not None else ()
            for position, value in enumerate(values):
                if value in known or is_agent_id(value):
                    continue
                path: Path = ("routes", index, block, "agent")
                message = (
                    f"agent '{value}' is not in agents: and not an id: it is resolved through "
                    "Mosaic's API at run time (until its name is known, it matches nothing)"
                )
                found.append(((*path, position) if len(values) > 1 else path, message))
    return found


# --- routes that can never match ---------------------------------------------------------------


def _never_matches(route: _Route) -> list[tuple[Path, str]]:
    base: Path = ("routes", route.index)
    match = route.match
    youtube = match.youtube_channel is not None
    if youtube and match.trigger is not None and "youtube" not in match.trigger:
        return [
            (
                (*base, "match", "youtube_channel"),
                "can never match: events have a youtube_channel only when their trigger is youtube",
            )
        ]
    dead = {flag: why for flag in match.flag or () if (why := _why_flag_cannot_match(match, flag))}
    if dead and match.flag is not None and len(dead) == len(match.flag):
        reasons = "; ".join(dead.values())
        return [((*base, "match"), f"can never match: {reasons}")]
    found = [
        ((*base, "match", "flag"), f"flag {flag} can never match here: {why}")
        for flag, why in dead.items()
    ]
    if _excludes_everything(route):
        found.append(
            ((*base, "not"), "can never match: 'not' excludes every event the match includes")
        )
    return found


def _why_flag_cannot_match(match: Matcher, flag: str) -> str | None:
    carries = FLAG_CARRIES.get(flag, {})
    for key in _CARRIED:
        wanted, possible = match.allowed(key), carries.get(key)
        if wanted is not None and possible is not None and not wanted & possible:
            return f"{flag} events carry {key} {_listed(possible)}"
    triggers = carries.get("trigger")
    if match.youtube_channel is not None and triggers is not None and "youtube" not in triggers:
        return f"{flag} events have no youtube_channel"
    return None


def _possible(match: Matcher, key: str) -> frozenset[str] | None:
    """The values ``key`` can have on an event that ``match`` takes (None: any)."""
    wanted = match.allowed(key)
    if key not in _CARRIED or match.flag is None:
        return wanted
    carried = [FLAG_CARRIES.get(flag, {}).get(key) for flag in match.flag]
    if any(values is None for values in carried):
        return wanted
    union = frozenset().union(*(values for values in carried if values is not None))
    return union if wanted is None else union & wanted


def _excludes_everything(route: _Route) -> bool:
    exclude = route.exclude
    if exclude.is_empty:
        return False
    for key in MATCH_KEYS:
        excluded = exclude.allowed(key)
        if excluded is None:
            continue
        possible = _possible(route.match, key)
        if possible is None or not possible <= excluded:
            return False
    return True


# --- routes an earlier stop: true route always takes -------------------------------------------


def _shadowed(live: list[_Route]) -> list[tuple[Path, str]]:
    """A stop route is indexed by the first key it constrains, like the router, so each route
    is compared only with stop routes that could contain it."""
    always: list[_Route] = []
    index: dict[str, dict[str, list[_Route]]] = defaultdict(lambda: defaultdict(list))
    found: list[tuple[Path, str]] = []
    for route in live:
        earlier = [stop for stop in _candidates(route, always, index) if _takes_all(stop, route)]
        if earlier:
            first = min(earlier, key=lambda stop: stop.index)
            found.append(
                (
                    ("routes", route.index),
                    f"never reached: every event it matches goes to the earlier route "
                    f"{first.label}, which has stop: true",
                )
            )
        if route.stop:
            key = next((k for k in MATCH_KEYS if route.match.allowed(k) is not None), None)
            if key is None:
                always.append(route)
                continue
            for value in route.match.allowed(key) or ():
                index[key][value].append(route)
    return found


def _candidates(
    route: _Route, always: list[_Route], index: Mapping[str, Mapping[str, list[_Route]]]
) -> Iterable[_Route]:
    yield from always
    for key, table in index.items():
        possible = _possible(route.match, key)
        if possible:
            yield from table.get(next(iter(possible)), ())


def _takes_all(stop: _Route, route: _Route) -> bool:
    """Every event ``route`` matches is matched, and not excluded, by ``stop``."""
    if route.accepts_test and not stop.accepts_test:
        return False
    for key in MATCH_KEYS:
        wanted = stop.match.allowed(key)
        possible = _possible(route.match, key)
        if wanted is not None and (possible is None or not possible <= wanted):
            return False
    return stop.exclude.is_empty or any(
        (excluded := stop.exclude.allowed(key)) is not None
        and (possible := _possible(route.match, key)) is not None
        and not possible & excluded
        for key in MATCH_KEYS
    )


def _listed(values: Iterable[str]) -> str:
    items = sorted(values)
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)
