"""Building blocks shared by the config models: strict base model, durations, rate limits."""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PositiveFloat,
    PositiveInt,
    WithJsonSchema,
)

__all__ = [
    "Duration",
    "RateLimit",
    "RateLimitSetting",
    "Security",
    "StrictModel",
    "off",
    "parse_duration",
    "route_label",
    "suggest",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from an integer/float or a string such as ``500ms``, ``1s``, ``5m``, ``24h``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found:
            return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    raise ValueError(
        f"not a duration: {value!r} (use seconds or e.g. '500ms', '1s', '5m', '24h', '7d')"
    )


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ]
        }
    ),
]
"""Seconds; the YAML may say a number or a string like ``5m`` (and so does the JSON Schema)."""


class StrictModel(BaseModel):
    """Config models reject unknown keys: a typo must not silently drop alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(StrictModel):
    per_second: PositiveFloat = 1.0
    burst: PositiveInt = 1


def off(value: object) -> object:
    """YAML 1.1 reads a bare ``off`` as False: for settings that may say ``off``."""
    return "off" if value is False else value


RateLimitSetting = Annotated[RateLimit | Literal["off"] | None, BeforeValidator(off)]
"""A channel's ``rate_limit``: a ``RateLimit``, ``off``, or None for the channel type's default."""

Security = Literal["starttls", "tls", "none"]


def suggest(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to a misspelt one, else ''."""
    by_case = {item.lower(): item for item in known}
    close = [by_case[name.lower()]] if name.lower() in by_case else []
    close = close or difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def route_label(name: str | None, index: int, *, quoted: bool = False) -> str:
    """How messages name the route at ``routes[index]``: its ``name``, else ``routes[index]``;
    ``quoted`` puts a name in quotes (within a sentence)."""
    if not name:
        return f"routes[{index}]"
    return f"'{name}'" if quoted else name
