"""The runtime serving now, and how the last reload went.

One ``LiveRuntime`` per app. Every part that needs the config reads ``current`` at the moment it
needs it, so a reload swaps router, channels and settings for all of them at once. Listeners hear
of each swap (the runtime now serving) and of each reload's result (success or not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from relay.runtime import Runtime

__all__ = ["LiveRuntime", "ReloadListener", "SwapListener"]

SwapListener = Callable[[Runtime], None]
ReloadListener = Callable[[dict[str, Any]], None]


class LiveRuntime:
    def __init__(self, runtime: Runtime, *, clock: Callable[[], float] = time.time) -> None:
        self._current = runtime
        self._swap_listeners: list[SwapListener] = []
        self._reload_listeners: list[ReloadListener] = []
        self.last_reload: dict[str, Any] = {
            "ok": True,
            "at": clock(),
            "sha256": runtime.loaded.sha256,
        }
        """The last reload's result (``Reloader.reload``); at first, the config started with."""

    @property
    def current(self) -> Runtime:
        return self._current

    def swap(self, new: Runtime) -> Runtime:
        """Serve ``new`` from now on; returns the runtime it replaced (for its caller to close)."""
        old, self._current = self._current, new
        for listener in self._swap_listeners:
            listener(new)
        return old

    def reloaded(self, result: dict[str, Any]) -> dict[str, Any]:
        """Keep ``result`` as ``last_reload`` and tell the listeners; returns it."""
        self.last_reload = result
        for listener in self._reload_listeners:
            listener(result)
        return result

    def on_swap(self, listener: SwapListener) -> None:
        self._swap_listeners.append(listener)

    def on_reload(self, listener: ReloadListener) -> None:
        self._reload_listeners.append(listener)
