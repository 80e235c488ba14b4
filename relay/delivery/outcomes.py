"""What one delivery try came to: values the attempt returns and the recorder writes down."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Dead", "Later", "Outcome", "Retry", "Sent", "Wait"]


@dataclass(frozen=True, slots=True)
class Sent:
    """The job is done: sent, or rightly skipped (a card's ``note`` says which)."""

    note: str = "sent"
    rendered: str | None = None
    """The message text as sent (plain posts), kept in the attempt log."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed try: try again at ``at``; ``counted`` tries use up ``max_attempts``."""

    at: float
    counted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Dead:
    """Give up: dead-letter the job with ``reason``."""

    reason: str


class Wait(Enum):
    """Why a job was put off without a try (the job's ``last_error`` then says so)."""

    PACED = "paced by rate limit"
    CARD_INTERVAL = "waiting for the card's interval"


@dataclass(frozen=True, slots=True)
class Later:
    """Nothing was sent: try at ``at``, without using up an attempt."""

    at: float
    why: Wait


Outcome = Sent | Retry | Dead | Later
