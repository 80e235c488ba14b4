"""The config of digests (``routes[].digest``) and quiet hours (``channels.*.quiet_hours``)."""

from __future__ import annotations

import re
from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, PositiveInt, field_validator, model_validator

from relay.confmodel import Duration, StrictModel
from relay.matchers import MatchSpec

__all__ = ["DAYS", "DigestSettings", "QuietHoursSettings", "zone"]

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Week days as ``days:`` names them, Monday first (``datetime.weekday()`` order)."""
MIN_EVERY = 60.0
_CLOCK_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``ValueError`` naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


class _Zoned(StrictModel):
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value


class DigestSettings(_Zoned):
    """When a digest route sends: a cron ``schedule`` in ``timezone``, or ``every`` duration
    (windows aligned to the Unix epoch, so ``1h`` ends on the hour)."""

    schedule: str | None = None
    every: Duration | None = None
    send_empty: bool = False
    """Send a message for a window that held nothing ("no runs")."""
    max_runs: PositiveInt = 50
    """Runs listed at most; the rest are counted ("and 37 more")."""

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(
                f"not a cron schedule: {value!r} (five fields, e.g. '0 9 * * *' for 09:00 daily)"
            )
        return value

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_EVERY:
            raise ValueError("every must be at least 1m")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> DigestSettings:
        if (self.schedule is None) == (self.every is None):
            raise ValueError("give either schedule (cron) or every (a duration)")
        return self


class QuietHoursSettings(_Zoned):
    """A channel's quiet period each day, ``from`` to ``to`` (local times in ``timezone``; past
    midnight when ``to`` is earlier), on the ``days`` it starts; ``except`` lets matching events
    through."""

    from_: time = Field(alias="from")
    to: time
    days: tuple[Day, ...] = DAYS
    except_: MatchSpec | None = Field(None, alias="except")

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _clock_time(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 22:00 as the sexagesimal number 1320.
            value = f"{value // 60:02d}:{value % 60:02d}" if 0 <= value < 24 * 60 else str(value)
        if isinstance(value, str):
            found = _CLOCK_TIME.fullmatch(value.strip())
            if found is None:
                raise ValueError(f"not a time of day: {value!r} (use HH:MM, e.g. '22:00')")
            return time(int(found.group(1)), int(found.group(2)))
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursSettings:
        if self.from_ == self.to:
            raise ValueError("from and to are the same time: the quiet period would be empty")
        if not self.days:
            raise ValueError("days is empty: name at least one day")
        return self
