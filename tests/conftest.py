"""Shared fixtures: configs written to tmp_path, a relay app on a real port, the API fakes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

pytest_plugins = ["tests.fakes.fixtures"]

SAMPLES = Path(__file__).resolve().parent.parent / "relay" / "samples"
SECRET = "s3cret-for-tests"

BASE_CONFIG = f"""
auth:
  secrets: ["{SECRET}"]
store:
  url: sqlite:///relay.db
  sync: normal
delivery:
  workers: 4
  lease: 5s
  backoff: {{initial: 10ms, max: 50ms}}
  shutdown_grace: 2s
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  archive:
    type: file
    path: deliveries.jsonl
routes:
  - name: all
    to: [archive]
  - name: tests
    match: {{flag: TEST}}
    to: [archive]
"""


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLES.glob("*.json"))


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Wait for a condition with a deadline (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str = BASE_CONFIG) -> Path:
        path = tmp_path / "relay.yaml"
        path.write_text(text)
        return path

    return write


class Sink:
    """Records each delivered (run, seq) in arrival order."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.arrivals.append((body["run"], body["seq"]))
        return web.Response(text="ok")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, str]]:
    recorder = Sink()
    app = web.Application()
    app.router.add_post("/hook", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield recorder, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    await runner.cleanup()
