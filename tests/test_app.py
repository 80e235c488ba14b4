"""The composition root: one shutdown path, used by the app's on_shutdown and by ``relay serve``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, build_app, shut_down
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, sample

Client = TestClient[Any, web.Application]


async def test_shutting_down_drains_while_still_answering_and_runs_once(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    app = build_app(load_config(write_config(BASE_CONFIG), env={}))
    client = await aiohttp_client(app)
    assert shut_down in app.on_shutdown
    await shut_down(app)
    ready = await client.get("/readyz")
    assert ready.status == 503 and "shutting down" in (await ready.json())["reasons"]
    webhook = await client.post(
        "/webhooks/mosaic", json=sample("run_progress"), headers={SIGNATURE_HEADER: SECRET}
    )
    assert webhook.status == 503
    first = app[RELAY].stopping
    assert first is not None and first.done()
    await shut_down(app)  # again, as the app's cleanup does after `relay serve` called it
    assert app[RELAY].stopping is first
