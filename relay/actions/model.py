"""What the parts of chat actions hand each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from relay.channels.base import Button, MessageRef
from relay.store.base import ActionRecord

__all__ = [
    "ACTIONS",
    "BUTTON_PREFIX",
    "Action",
    "ActionRecord",
    "Button",
    "Grant",
    "Press",
    "PressSurface",
    "Presser",
    "Result",
    "Source",
]

Action = Literal["resume", "cancel", "rerun"]
ACTIONS: tuple[Action, ...] = ("resume", "cancel", "rerun")
Source = Literal["slack", "telegram"]
Result = Literal["done", "failed", "refused", "duplicate", "expired"]
"""What came of a press: the Mosaic call succeeded or failed; the presser may not do it; the
button was pressed before (another press did it); the button is unknown or expired."""
BUTTON_PREFIX = "ma1:"
"""``Button.value`` is this and the grant's id: 26 bytes, within Telegram's 64 for
``callback_data``."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a button allows, stored under its id until ``expires_at``."""

    action: Action
    run_id: str
    agent_id: str
    route: str
    channel: str
    """The relay channel the message went to (its thread gets the outcome)."""
    event_id: str
    video_urls: tuple[str, ...] = ()
    """Re-run: the run's inputs."""
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Presser:
    source: Source
    user_id: str
    """Slack's user id (``U024BE7LH``) or Telegram's numeric user id as text."""
    name: str | None = None
    """As the chat shows them (``alice``), when the press says; for messages only."""


class PressSurface(Protocol):
    """Where a press came from: to answer the presser, and to take the buttons off."""

    async def answer(self, text: str) -> None:
        """A private answer to the presser only (Slack: ephemeral via ``response_url``;
        Telegram: ``answerCallbackQuery``). Called once per press."""
        ...

    async def remove_buttons(self) -> None:
        """Take the buttons off the pressed message (its action was done)."""
        ...


@dataclass(frozen=True, slots=True)
class Press:
    """One authenticated press, as an inbound endpoint hands it to ``Actions.accept``."""

    value: str
    """The button's value as pressed (``ma1:…``); anything else is an unknown button."""
    presser: Presser
    message: MessageRef | None
    """The pressed message on its platform (Slack channel id + ts; Telegram chat id + message
    id): the outcome is told in its thread."""
    surface: PressSurface
