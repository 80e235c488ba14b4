"""The live runtime: what serves now, swapped whole, and how the last reload went."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.config import load_config
from relay.live import LiveRuntime
from relay.runtime import Runtime
from tests.conftest import BASE_CONFIG


def built(write_config: Callable[[str], Path], text: str = BASE_CONFIG) -> Runtime:
    return Runtime.build(load_config(write_config(text), env={}))


def test_at_first_the_config_started_with_is_the_last_reload(
    write_config: Callable[[str], Path],
) -> None:
    runtime = built(write_config)
    live = LiveRuntime(runtime, clock=lambda: 12.5)
    assert live.current is runtime
    assert live.last_reload == {"ok": True, "at": 12.5, "sha256": runtime.loaded.sha256}


def test_a_swap_serves_the_new_runtime_and_tells_each_listener(
    write_config: Callable[[str], Path],
) -> None:
    first = built(write_config)
    second = built(write_config, BASE_CONFIG + "server: {read_timeout: 3s}\n")
    live = LiveRuntime(first)
    heard: list[tuple[str, Runtime]] = []
    live.on_swap(lambda runtime: heard.append(("a", runtime)))
    live.on_swap(lambda runtime: heard.append(("b", runtime)))
    assert live.swap(second) is first
    assert live.current is second
    assert heard == [("a", second), ("b", second)]


def test_each_reload_result_is_kept_and_told_without_a_swap(
    write_config: Callable[[str], Path],
) -> None:
    runtime = built(write_config)
    live = LiveRuntime(runtime)
    swaps: list[Runtime] = []
    results: list[dict[str, Any]] = []
    live.on_swap(swaps.append)
    live.on_reload(results.append)
    failed = {"ok": False, "at": 1.0, "trigger": "test", "errors": ["broken"]}
    assert live.reloaded(failed) is failed
    assert live.last_reload is failed and results == [failed]
    assert live.current is runtime and swaps == []
