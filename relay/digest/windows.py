"""When digest windows end and quiet periods hold, in a time zone, across DST changes.

A digest window ends at each fire time of its schedule; an event belongs to the window that ends
at the first fire time after it was accepted. On the day clocks go back, a cron time inside the
repeated hour would fire twice: the second is not a fire time (one digest that day).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from relay.digest.settings import DAYS, DigestSettings, QuietHoursSettings, zone

__all__ = ["QuietHours", "Schedule"]


class Schedule:
    """A digest's fire times (``DigestSettings``)."""

    def __init__(self, settings: DigestSettings) -> None:
        self.settings = settings
        self._zone: ZoneInfo = zone(settings.timezone)

    def next_fire(self, at: float) -> float:
        """The first fire time after ``at``."""
        every = self.settings.every
        if every is not None:
            return (math.floor(at / every) + 1) * every
        assert self.settings.schedule is not None
        cron = croniter(self.settings.schedule, datetime.fromtimestamp(at, self._zone))
        fire: datetime = cron.get_next(datetime)
        before: datetime = croniter(self.settings.schedule, fire).get_prev(datetime)
        while _repeated(before, fire):
            before, fire = fire, cron.get_next(datetime)
        return fire.timestamp()

    def last_fire(self, at: float) -> float:
        """The last fire time at or before ``at``."""
        every = self.settings.every
        if every is not None:
            return math.floor(at / every) * every
        assert self.settings.schedule is not None
        # croniter looks strictly before its start: start a second after ``at``'s second.
        start = datetime.fromtimestamp(math.floor(at) + 1, self._zone)
        cron = croniter(self.settings.schedule, start)
        fire: datetime = cron.get_prev(datetime)
        before: datetime = cron.get_prev(datetime)
        return (before if _repeated(before, fire) else fire).timestamp()

    def describe(self, fire: float) -> str:
        """A fire time as the config's clock shows it, e.g. ``09:00`` or ``Mon 09:00``."""
        local = datetime.fromtimestamp(fire, self._zone)
        return local.strftime("%a %d %b %H:%M %Z")


def _repeated(before: datetime, fire: datetime) -> bool:
    """Whether ``fire`` repeats ``before``'s wall-clock time (the hour clocks go back)."""
    # Aware datetimes of one zone compare by wall clock: compare the instants.
    return before.replace(tzinfo=None) == fire.replace(tzinfo=None) and (
        before.timestamp() != fire.timestamp()
    )


class QuietHours:
    """A channel's quiet periods (``QuietHoursSettings``)."""

    def __init__(self, settings: QuietHoursSettings) -> None:
        self.settings = settings
        self._zone: ZoneInfo = zone(settings.timezone)
        self._days = frozenset(DAYS.index(day) for day in settings.days)

    def period_end(self, at: float) -> float | None:
        """When the quiet period holding ``at`` ends; None when ``at`` is in none."""
        today = datetime.fromtimestamp(at, self._zone).date()
        for start_day in (today - timedelta(days=1), today):
            if start_day.weekday() not in self._days:
                continue
            start, end = self._period(start_day)
            if start <= at < end:
                return end
        return None

    def _period(self, start_day: date) -> tuple[float, float]:
        """The quiet period that starts on ``start_day``, as timestamps. A local time the clocks
        skip (spring forward) is read with the offset before the change, so it is an hour later."""
        settings = self.settings
        end_day = start_day + timedelta(days=1) if settings.to <= settings.from_ else start_day
        start = datetime.combine(start_day, settings.from_, self._zone)
        end = datetime.combine(end_day, settings.to, self._zone)
        return start.timestamp(), end.timestamp()
