"""What the UI's pages and API use of the running relay, kept on the aiohttp app under ``UI``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry

from relay.admin import FailedAuthLimiter
from relay.live import LiveRuntime
from relay.mosaic.reconcile import PassReport
from relay.rejections import RejectionLog
from relay.store.base import Store
from relay.ui.auth import Sessions
from relay.verify import ChannelChecks

__all__ = ["UI", "UiState"]


@dataclass
class UiState:
    store: Store
    live: LiveRuntime
    notify: Callable[[], None]
    """Tell the dispatcher new work may be due (after a replay)."""
    registry: CollectorRegistry
    """The app's metrics (the config page shows when the config was loaded)."""
    rejections: RejectionLog
    limiter: FailedAuthLimiter
    """Wrong admin tokens per client, shared with every other admin door."""
    checks: ChannelChecks | None = None
    """The channels' background checks (None: switched off)."""
    last_reconcile: Callable[[], PassReport | None] = lambda: None
    """The last reconciliation pass with Mosaic's API this replica ran (None: none yet)."""
    refresh_seconds: float = 4.0
    """How often open pages refresh their counts and lists."""
    sessions: Sessions = field(init=False)
    """Dashboard logins, kept in ``store`` (shared by every process on it)."""

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.store)


UI = web.AppKey("relay-ui", UiState)
