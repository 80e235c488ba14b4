"""Stand-ins the press endpoints' tests share."""

from __future__ import annotations

from relay.actions.model import Press
from relay.actions.perform import Actions

__all__ = ["Clock", "RecordingActions"]


class RecordingActions(Actions):
    """Records the presses it is handed (the executor is tested elsewhere)."""

    def __init__(self) -> None:
        self.presses: list[Press] = []

    def accept(self, press: Press) -> None:
        self.presses.append(press)


class Clock:
    """A clock the test moves (``now``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
