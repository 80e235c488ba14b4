"""Rejected webhooks: a WARNING per reason at most once a window, the last few kept for the UI,
and counts by reason and hour for the overview's chart (the last ``KEEP_HOURS``).

A Mosaic configured with the wrong secret gets 401s; without this the relay's log would say
nothing. The header's value is never recorded, only why the request was refused and by whom.
All of it is in this process's memory: an unauthenticated request never writes to the store.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Rejection", "RejectionLog"]

log = logging.getLogger("relay.receiver")

KEEP = 50
WINDOW_SECONDS = 60.0
KEEP_HOURS = 30 * 24


@dataclass(frozen=True, slots=True)
class Rejection:
    at: float
    status: int
    reason: str
    client: str
    flag: str | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RejectionLog:
    """Counts every rejection; logs the first of each reason per window, then how many were held."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, window: float = WINDOW_SECONDS
    ) -> None:
        self._clock = clock
        self._window = window
        self._recent: deque[Rejection] = deque(maxlen=KEEP)
        self._logged_at: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._hours: dict[int, Counter[str]] = {}
        """Rejections per hour (``at // 3600``), by ``status reason``."""

    def record(
        self,
        status: int,
        reason: str,
        client: str | None,
        *,
        flag: str | None = None,
        run_id: str | None = None,
    ) -> None:
        now = self._clock()
        entry = Rejection(now, status, reason, client or "unknown", flag, run_id)
        self._recent.append(entry)
        key = f"{status} {reason}"
        self._count(now, key)
        last = self._logged_at.get(key)
        if last is not None and now - last < self._window:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._logged_at[key] = now
        held = self._held.pop(key, 0)
        log.warning(
            "webhook rejected (%d): %s from %s%s%s",
            status,
            reason,
            entry.client,
            f", {flag} run {run_id}" if flag and run_id else "",
            f" ({held} more like it in the last {self._window:g}s not logged)" if held else "",
            extra={"status": status, "reason": reason, "client": entry.client, "run_id": run_id},
        )

    def recent(self) -> list[Rejection]:
        """Newest first."""
        return list(reversed(self._recent))

    def by_reason(self, since: float) -> list[tuple[str, int]]:
        """Rejections (``status reason``) in the hours from the one holding ``since`` on, the
        most frequent first."""
        first = int(since // 3600)
        total: Counter[str] = Counter()
        for hour, counts in self._hours.items():
            if hour >= first:
                total.update(counts)
        return sorted(total.items(), key=lambda item: (-item[1], item[0]))

    def _count(self, now: float, key: str) -> None:
        hour = int(now // 3600)
        counts = self._hours.get(hour)
        if counts is None:
            counts = self._hours[hour] = Counter()
            for old in [h for h in self._hours if h <= hour - KEEP_HOURS]:
                del self._hours[old]
        counts[key] += 1
