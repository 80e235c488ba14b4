"""Route ``match:`` / ``not:`` blocks: the values each key knows, their checks, the compiled form.

A typo in a match value would silently drop alerts, so every value is checked at load: flags,
statuses and trigger types against the values Mosaic sends, agents against ``agents:`` (or a
UUID; with Mosaic's API names on, any name, resolved at run time), YouTube channels against the
channel id's shape, sources against ``relay.events.EVENT_SOURCES``. ``{unknown: VALUE}`` takes a value as
written, for one Mosaic adds before the relay knows it. To teach the relay a value, extend
``KNOWN_VALUES`` (flags live in ``relay.events.KNOWN_FLAGS``) and ``FLAG_CARRIES``; a new key goes
in ``MATCH_KEYS``, ``MatchSpec``, ``Matcher`` and ``relay.routing.event_keys``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from relay.confmodel import StrictModel, suggest
from relay.events import EVENT_SOURCES, KNOWN_FLAGS, TERMINAL_STATUSES

__all__ = [
    "FLAG_CARRIES",
    "KNOWN_VALUES",
    "MATCH_KEYS",
    "MatchSpec",
    "Matcher",
    "agent_ids",
    "api_names_on",
    "is_agent_id",
    "match_value_problems",
]

MATCH_KEYS = ("agent", "youtube_channel", "status", "flag", "trigger", "source")
"""Every match key, most selective first (a route is indexed by the first one it constrains)."""

RUN_STATUSES = ("running", "completed", "partial_complete", "failed", "cancelled")
TRIGGER_TYPES = ("youtube", "schedule", "manual", "none")

KNOWN_VALUES: dict[str, tuple[str, ...]] = {
    "flag": KNOWN_FLAGS,
    "status": RUN_STATUSES,
    "trigger": TRIGGER_TYPES,
    "source": EVENT_SOURCES,
}
"""The match keys whose values Mosaic (or, for ``source``, the relay) defines, with every value."""

FLAG_CARRIES: dict[str, dict[str, frozenset[str]]] = {
    "RUN_STARTED": {"status": frozenset({"running"})},
    "RUN_FINISHED": {"status": TERMINAL_STATUSES},
    "RUN_STALE": {"status": frozenset({"running"}), "source": frozenset({"watch"})},
    "TEST": {
        "status": frozenset({"running"}),
        "trigger": frozenset({"none"}),
        "source": frozenset({"webhook"}),
    },
}
"""The values an event of a flag can carry, where known; a key not listed: any value."""

UNKNOWN_KEY = "unknown"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_YOUTUBE_CHANNEL = re.compile(r"UC[A-Za-z0-9_-]{22}")

Path = tuple[str | int, ...]


# --- the config model --------------------------------------------------------------------------


def _unwrap(item: object) -> object:
    if not isinstance(item, dict):
        return item
    value = item.get(UNKNOWN_KEY)
    if set(item) == {UNKNOWN_KEY} and isinstance(value, str) and value:
        return value
    raise ValueError(
        f"a match value is a string, or {{{UNKNOWN_KEY}: VALUE}} for a value the relay "
        "does not know yet"
    )


def _match_values(value: object) -> object:
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(_unwrap(item) for item in items)


def _values_schema(item: dict[str, Any]) -> WithJsonSchema:
    unknown = {
        "type": "object",
        "properties": {UNKNOWN_KEY: {"type": "string", "minLength": 1}},
        "required": [UNKNOWN_KEY],
        "additionalProperties": False,
        "description": "a value the relay does not know yet, matched as written",
    }
    one = {"anyOf": [item, unknown]}
    return WithJsonSchema(
        {"anyOf": [*one["anyOf"], {"type": "array", "items": one, "minItems": 1}]}
    )


_MATCH_VALUES = BeforeValidator(_match_values)
_NOT_EMPTY = Field(min_length=1)

FlagValues = Annotated[
    tuple[str, ...], _MATCH_VALUES, _NOT_EMPTY, _values_schema({"enum": list(KNOWN_FLAGS)})
]
StatusValues = Annotated[
    tuple[str, ...], _MATCH_VALUES, _NOT_EMPTY, _values_schema({"enum": list(RUN_STATUSES)})
]
TriggerValues = Annotated[
    tuple[str, ...], _MATCH_VALUES, _NOT_EMPTY, _values_schema({"enum": list(TRIGGER_TYPES)})
]
SourceValues = Annotated[
    tuple[str, ...], _MATCH_VALUES, _NOT_EMPTY, _values_schema({"enum": list(EVENT_SOURCES)})
]
AgentValues = Annotated[
    tuple[str, ...],
    _MATCH_VALUES,
    _NOT_EMPTY,
    _values_schema(
        {
            "type": "string",
            "minLength": 1,
            "description": (
                "an agent id (UUID), a name from agents, or (with mosaic.agent_names and "
                "mosaic.api_key) its name in Mosaic"
            ),
        }
    ),
]
YoutubeChannelValues = Annotated[
    tuple[str, ...],
    _MATCH_VALUES,
    _NOT_EMPTY,
    _values_schema({"type": "string", "pattern": f"^{_YOUTUBE_CHANNEL.pattern}$"}),
]


class MatchSpec(StrictModel):
    """A route's match (or not) block: one value or a list (any of) per key, keys AND
    together. Each value must be one the relay knows; write {unknown: VALUE} for one it does not
    know yet (e.g. a flag Mosaic added since)."""

    flag: FlagValues | None = None
    status: StatusValues | None = None
    agent: AgentValues | None = None
    trigger: TriggerValues | None = None
    youtube_channel: YoutubeChannelValues | None = None
    source: SourceValues | None = None
    """webhook (sent by Mosaic), reconciled (found through Mosaic's API: its webhook never
    arrived) or watch (the relay's own RUN_STALE)."""


# --- value checks ------------------------------------------------------------------------------


def match_value_problems(
    data: Mapping[str, Any], unset: Mapping[Path, str]
) -> list[tuple[Path, str]]:
    """``(path, message)`` for every match value the relay would never see, on the raw config
    (``unset``: the paths whose whole value was an unset ``${VAR}``)."""
    agents = data.get("agents")
    known_agents = (
        [str(name) for pair in agents.items() for name in pair] if isinstance(agents, dict) else []
    )
    any_name = api_names_on(data.get("mosaic"))
    problems: list[tuple[Path, str]] = []
    for where, spec in _match_blocks(data):
        for key, value in spec.items():
            path: Path = (*where, key)
            if value is None and path in unset:
                problems.append((path, _unset_message(key, unset[path])))
                continue
            listed = isinstance(value, list)
            for position, item in enumerate(value if listed else [value]):
                message = _value_problem(key, item, known_agents, any_name)
                if message:
                    problems.append(((*path, position) if listed else path, message))
    return problems


def _match_blocks(data: Mapping[str, Any]) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """Every match block of a raw config with its path: routes' ``match`` and ``not``, and
    channels' ``quiet_hours.except``."""
    routes = data.get("routes")
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        for block in ("match", "not"):
            spec = route.get(block) if isinstance(route, dict) else None
            if isinstance(spec, dict):
                yield ("routes", index, block), spec
    channels = data.get("channels")
    for name, channel in channels.items() if isinstance(channels, dict) else ():
        quiet = channel.get("quiet_hours") if isinstance(channel, dict) else None
        spec = quiet.get("except") if isinstance(quiet, dict) else None
        if isinstance(spec, dict):
            yield ("channels", name, "quiet_hours", "except"), spec


def _unset_message(key: str, variable: str) -> str:
    return f"environment variable {variable} is not set (without it this would match any {key})"


def api_names_on(mosaic: object) -> bool:
    """Whether a raw ``mosaic:`` section resolves agent names through Mosaic's API (an API key
    set and ``agent_names`` not false)."""
    if not isinstance(mosaic, Mapping):
        return False
    key = mosaic.get("api_key")
    return (
        isinstance(key, str) and bool(key.strip()) and mosaic.get("agent_names", True) is not False
    )


def is_agent_id(value: str) -> bool:
    """Whether ``value`` has the shape of an agent id as webhooks carry it (a lowercase UUID)."""
    return _UUID.fullmatch(value) is not None


def _value_problem(key: str, item: object, known_agents: list[str], any_name: bool) -> str | None:
    if not isinstance(item, str):
        return None  # {unknown: VALUE}, or a shape the model reports
    if key in KNOWN_VALUES:
        return _known_value_problem(key, item)
    if key == "agent":
        if any_name and item not in known_agents and not _UUID.fullmatch(item.lower()):
            return None  # a name in Mosaic, resolved at run time (routelint warns)
        return _agent_problem(item, known_agents)
    if key == "youtube_channel":
        return _youtube_channel_problem(item)
    return None


def _known_value_problem(key: str, item: str) -> str | None:
    known = KNOWN_VALUES[key]
    if item in known:
        return None
    hint = suggest(item, list(known)) or (
        f" (one of: {', '.join(known)}; or {{{UNKNOWN_KEY}: {item}}} for a {key} "
        "the relay does not know yet)"
    )
    return f"unknown {key} '{item}'{hint}"


def _agent_problem(item: str, known_agents: list[str]) -> str | None:
    if item in known_agents or _UUID.fullmatch(item):
        return None
    if _UUID.fullmatch(item.lower()):
        return f"agent ids are lowercase in webhooks (did you mean '{item.lower()}'?)"
    hint = suggest(item, known_agents) or " (an agent is an id (a UUID) or a name from agents:)"
    return f"unknown agent '{item}'{hint}"


def _youtube_channel_problem(item: str) -> str | None:
    if _YOUTUBE_CHANNEL.fullmatch(item):
        return None
    shape = "'UC' and 22 letters, digits, '-' or '_'"
    if item.startswith("@"):
        return (
            f"'{item}' is a handle, but webhooks carry the channel id ({shape}; "
            "YouTube: Settings > Advanced settings)"
        )
    return f"not a YouTube channel id: '{item}' (expected {shape})"


# --- the compiled form -------------------------------------------------------------------------


def agent_ids(agents: Mapping[str, str]) -> dict[str, list[str]]:
    """Display name -> the agent ids that carry it."""
    ids: dict[str, list[str]] = defaultdict(list)
    for agent_id, display_name in agents.items():
        ids[display_name].append(agent_id)
    return ids


@dataclass(frozen=True, slots=True)
class Matcher:
    """A compiled ``match:`` / ``not:`` block; each key is a frozenset, None = any."""

    flag: frozenset[str] | None = None
    status: frozenset[str] | None = None
    agent: frozenset[str] | None = None
    trigger: frozenset[str] | None = None
    youtube_channel: frozenset[str] | None = None
    source: frozenset[str] | None = None

    @classmethod
    def compile(cls, spec: MatchSpec | None, agent_ids: Mapping[str, list[str]]) -> Matcher:
        if spec is None:
            return cls()

        def values(items: tuple[str, ...] | None) -> frozenset[str] | None:
            return None if items is None else frozenset(items)

        agents = None
        if spec.agent is not None:
            resolved: set[str] = set()
            for item in spec.agent:
                resolved.update(agent_ids.get(item, [item]))
            agents = frozenset(resolved)
        return cls(
            flag=values(spec.flag),
            status=values(spec.status),
            agent=agents,
            trigger=values(spec.trigger),
            youtube_channel=values(spec.youtube_channel),
            source=values(spec.source),
        )

    def allowed(self, key: str) -> frozenset[str] | None:
        """The values ``key`` may have, or None for any."""
        found: frozenset[str] | None = getattr(self, key)
        return found

    @property
    def is_empty(self) -> bool:
        return all(self.allowed(key) is None for key in MATCH_KEYS)

    def matches(self, keys: Mapping[str, str | None]) -> bool:
        """All constrained keys match (AND); within a key, any listed value (OR). An agent
        matches by its id, or by its name in Mosaic (``keys["agent_name"]``, when known)."""
        for key in MATCH_KEYS:
            allowed: frozenset[str] | None = getattr(self, key)
            if allowed is None or keys[key] in allowed:
                continue
            if key != "agent" or keys.get("agent_name") not in allowed:
                return False
        return True

    def matches_any_key(self, keys: Mapping[str, str | None]) -> bool:
        """For ``not:``: excluded when all its keys match (an empty ``not`` excludes nothing)."""
        return not self.is_empty and self.matches(keys)
