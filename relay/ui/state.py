"""The UI's shared state, kept on the aiohttp app under ``UI``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from relay.ui.auth import Sessions

if TYPE_CHECKING:
    from relay.app import Relay

__all__ = ["UI", "UiState"]


@dataclass
class UiState:
    relay: Relay
    sessions: Sessions = field(default_factory=Sessions)
    refresh_seconds: float = 4.0
    """How often open pages refresh their counts and lists."""


UI = web.AppKey("relay-ui", UiState)
