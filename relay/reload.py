"""Hot reload: on a config file change, SIGHUP or ``POST /-/reload``.

The new file is validated fully, then the whole ``Runtime`` is swapped at once: events accepted
after the swap route by the new rules; queued jobs deliver with the channel settings current at
send time. A broken edit keeps the old config serving and is reported (log, /readyz, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from relay.config import ConfigError, ConfigIssue, LoadedConfig, RelayConfig, load_config
from relay.confmodel import route_label
from relay.live import LiveRuntime
from relay.runtime import Runtime

__all__ = ["Reloader", "public_place", "public_view", "restart_only_changes"]

log = logging.getLogger("relay.reload")

ENVIRONMENT_IS_FIXED = (
    "a reload sees the environment the relay started with: restart it to use a newly set "
    "variable, or read the secret from a file with ${file:/path}, which every reload re-reads"
)

WATCH_INTERVAL_S = 0.25
"""How often the config file's identity is checked."""
WATCH_SETTLE_S = 0.05
"""After a change, how long the file must stay the same before it is read."""


def restart_only_changes(old: LoadedConfig, new: LoadedConfig) -> list[str]:
    """Settings a reload cannot apply to a running process."""
    notes = []
    a, b = old.config.server, new.config.server
    for key in ("host", "port", "path", "workers"):
        if getattr(a, key) != getattr(b, key):
            notes.append(f"server.{key}")
    if (
        old.config.store.url != new.config.store.url
        or old.config.store.sync != new.config.store.sync
    ):
        notes.append("store")
    return notes


def public_view(last_reload: dict[str, Any]) -> dict[str, Any]:
    """``last_reload`` for unauthenticated eyes (``/readyz``): each error as its place only.
    An error's message may quote what the file says (a value in the wrong field, a header
    name, template text); the log, ``POST /-/reload`` and ``relay check`` show it whole."""
    view = {key: value for key, value in last_reload.items() if key != "error_places"}
    if "errors" in view:
        view["errors"] = last_reload.get("error_places", [])
    return view


def public_place(issue: ConfigIssue, source: str) -> str:
    """``relay.yaml:14: channels.*.headers``: file, line and key path, where a name the file
    chose (a channel, template or header name, an unknown key) shows as ``*``."""
    place = f"{source}:{issue.line}" if issue.line else source
    path = ""
    for part in re.findall(r"\[\d+\]|[^.\[\]]+", issue.where):
        if part.startswith("["):
            path += part
        else:
            path += ("." if path else "") + (part if part in _schema_keys() else "*")
    return f"{place}: {path}" if path else place


@functools.cache
def _schema_keys() -> frozenset[str]:
    """Every key the config's schema declares (at any depth)."""
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                keys.update(node["properties"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(RelayConfig.model_json_schema(by_alias=True))
    return frozenset(keys)


class Reloader:
    def __init__(
        self,
        live: LiveRuntime,
        path: Path,
        *,
        start: Callable[[Runtime], Awaitable[None]],
        on_loaded: Callable[[LoadedConfig], None] = lambda _: None,
        build: Callable[[LoadedConfig], Runtime] = Runtime.build,
    ) -> None:
        """Reload ``path`` into ``live``. ``start`` starts a new runtime's channels before it is
        swapped in; ``on_loaded`` sees each valid config before it is built (to log warnings).
        Whoever needs to know listens on ``live`` (swaps, and every reload's result). ``build``
        makes the runtime of a loaded config."""
        self._live = live
        self._path = path
        # What the process bound and opened at start: restart-only changes are relative to it.
        self._serving = live.current.loaded
        self._start = start
        self._on_loaded = on_loaded
        self._build = build
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()

    async def reload(self, trigger: str) -> dict[str, Any]:
        """Load, validate and swap; the result is also kept as ``live.last_reload``."""
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(load_config, self._path)
                self._on_loaded(loaded)
                runtime = self._build(loaded)
            except ConfigError as exc:
                errors = [issue.format(exc.source) for issue in exc.issues]
                places = [public_place(issue, exc.source) for issue in exc.issues]
                if any("is not set" in issue.message for issue in exc.issues):
                    errors.append(ENVIRONMENT_IS_FIXED)
                    places.append(ENVIRONMENT_IS_FIXED)
                return self._failed(trigger, errors, places)
            except Exception as exc:
                log.exception("config reload (%s): building the new config failed", trigger)
                return self._failed(trigger, [f"cannot apply the new config: {type(exc).__name__}"])
            old = self._live.current
            # The same file can mean new values: a rotated ${file:...} secret.
            unchanged = loaded.sha256 == old.loaded.sha256 and loaded.config == old.loaded.config
            if not unchanged:
                try:
                    await self._start(runtime)
                except Exception as exc:
                    log.exception("config reload (%s): starting the new channels failed", trigger)
                    await runtime.close()
                    return self._failed(
                        trigger, [f"cannot start the new channels: {type(exc).__name__}"]
                    )
                self._live.swap(runtime)
                self._retire(old, loaded.config.delivery.shutdown_grace)
            notes = restart_only_changes(self._serving, loaded)
            if notes:
                log.warning("config reloaded, but %s changes need a restart", ", ".join(notes))
            log.info(
                "config %s (%s): %d channels, %d routes",
                "unchanged" if unchanged else "reloaded",
                trigger,
                len(loaded.config.channels),
                len(loaded.config.routes),
            )
            return self._live.reloaded(
                {
                    "ok": True,
                    "at": time.time(),
                    "trigger": trigger,
                    "sha256": loaded.sha256,
                    "changed": not unchanged,
                    "needs_restart": notes,
                    "channels": sorted(loaded.config.channels),
                    "routes": [route_label(r.name, i) for i, r in enumerate(loaded.config.routes)],
                }
            )

    def _failed(
        self, trigger: str, errors: list[str], places: list[str] | None = None
    ) -> dict[str, Any]:
        """Keep the running config; report why in the log and ``last_reload`` (and so, through
        its listeners, the metrics).
        ``places`` says where each error is without quoting the file (see ``public_view``);
        default: the errors themselves, when they quote nothing of it."""
        for line in errors:
            log.error("config reload (%s) failed, keeping the running config: %s", trigger, line)
        return self._live.reloaded(
            {
                "ok": False,
                "at": time.time(),
                "trigger": trigger,
                "errors": errors,
                "error_places": errors if places is None else places,
                "sha256": self._live.current.loaded.sha256,
            }
        )

    def _retire(self, old: Runtime, grace: float) -> None:
        """Close the old channels once sends that still use them had time to finish."""

        async def close_later() -> None:
            try:
                await asyncio.sleep(grace)
            finally:
                await old.close()

        task = asyncio.create_task(close_later(), name="relay-retire-runtime")
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def start_watching(self) -> None:
        seen = _identity(self._path)  # now: a change from here on is seen
        self._watch_task = asyncio.create_task(self._watch(seen), name="relay-config-watch")

    async def _watch(self, seen: tuple[int, ...] | None) -> None:
        """Reload when the file's identity changes (inode, size, mtime), polled with ``stat``.

        Polling one file costs nothing measurable; watching its folder did: the folder usually
        holds the store too, and every write to it woke the watcher (≈ 5 % of the relay's CPU
        at load). ``stat`` follows symlinks, so a Kubernetes ConfigMap swap is seen."""
        try:
            while not await self._stopped_within(WATCH_INTERVAL_S):
                now = _identity(self._path)
                if now == seen:
                    continue
                # Let a writer finish: reload once the file has stayed the same for a moment.
                while not await self._stopped_within(WATCH_SETTLE_S):
                    settled = _identity(self._path)
                    if settled == now:
                        break
                    now = settled
                seen = now
                try:
                    await self.reload("file change")
                except Exception:
                    log.exception("config reload after a file change failed")
        except Exception:
            log.exception("watching %s stopped", self._path.name)

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def stop(self) -> None:
        self._stop.set()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for task in list(self._retired):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _identity(path: Path) -> tuple[int, ...] | None:
    """What changes when the file (or the file a symlink points to) is replaced or edited."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
