"""An Apprise channel with two URLs through the real relay: each URL is a delivery of its own.

The good ``json://`` target gets each event exactly once, hostile text intact as text; the
failing one (HTTP 500) is retried and dead-lettered on its own, without resending to the good
one; no part of either URL shows in logs, dead-letter reasons, the API or the dashboard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, build_app
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import sample, wait_until

Client = TestClient[Any, web.Application]

WEBHOOK_SECRET = "wh-s3cret-apprise-1"
ADMIN_TOKEN = "adm1n-apprise-t0ken"
GOOD_PATH = "/good/g00d-path-tok3n"
BAD_PATH = "/bad/bad-path-tok3n"
PASSWORD = "SECRETPASS-e2e-5k"
HOSTILE = "<b>x</b> *y* @everyone [a](http://e.example) <!channel> &lt;"


class Targets:
    """Both Apprise targets on one local server: the bad path answers 500."""

    def __init__(self) -> None:
        self.port = 0
        self.bodies: dict[str, list[dict[str, Any]]] = {GOOD_PATH: [], BAD_PATH: []}

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.setdefault(request.path, []).append(json.loads(await request.read()))
        return web.Response(status=500 if request.path == BAD_PATH else 200, text="answer")

    def url(self, path: str) -> str:
        return f"json://relay:{PASSWORD}@127.0.0.1:{self.port}{path}"


@pytest.fixture
async def targets() -> AsyncIterator[Targets]:
    found = Targets()
    app = web.Application()
    app.router.add_post("/{tail:.*}", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.port = runner.addresses[0][1]
    yield found
    await runner.cleanup()


def config(targets: Targets) -> dict[str, Any]:
    return {
        "server": {"admin_token": ADMIN_TOKEN},
        "auth": {"secrets": [WEBHOOK_SECRET]},
        "store": {"url": "sqlite:///relay.db", "sync": "normal"},
        "delivery": {
            "workers": 4,
            "lease": "5s",
            "max_attempts": 3,
            "backoff": {"initial": "10ms", "max": "20ms"},
            "shutdown_grace": "1s",
        },
        "channels": {
            "team": {"type": "apprise", "urls": [targets.url(GOOD_PATH), targets.url(BAD_PATH)]}
        },
        "routes": [{"name": "everything", "to": ["team"]}],
    }


async def test_each_url_delivers_once_and_fails_on_its_own(
    tmp_path: Path,
    targets: Targets,
    aiohttp_client: Callable[..., Awaitable[Client]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "relay.yaml"
    path.write_text(json.dumps(config(targets)))
    client = await aiohttp_client(build_app(load_config(path, env={}), check_channels=False))
    store = client.app[RELAY].store

    event = sample("run_finished_failed") | {"status_message": HOSTILE}
    answer = await client.post(
        "/webhooks/mosaic", data=json.dumps(event), headers={SIGNATURE_HEADER: WEBHOOK_SECRET}
    )
    assert answer.status == 202
    again = await client.post(
        "/webhooks/mosaic", data=json.dumps(event), headers={SIGNATURE_HEADER: WEBHOOK_SECRET}
    )
    assert again.status == 200  # a duplicate: nothing more is sent

    async def states() -> dict[tuple[str, str], int]:
        return {(row.channel, row.state): row.count for row in await store.status()}

    async def settled() -> bool:
        return await states() == {("team#1", "sent"): 1, ("team#2", "dead"): 1}

    await wait_until(settled, timeout=20)
    good, bad = targets.bodies[GOOD_PATH], targets.bodies[BAD_PATH]
    assert len(good) == 1, "the good URL got the event exactly once"
    assert len(bad) == 3, "the bad URL was tried max_attempts times, on its own"
    assert HOSTILE in good[0]["message"]
    assert good[0]["title"].startswith("❌ Failed") and good[0]["type"] == "failure"
    assert not good[0]["message"].startswith(good[0]["title"])  # said once, as the title

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    dead = await (await client.get("/api/dead-letters", headers=headers)).text()
    assert "team#2" in dead and "apprise json:// target failed" in dead
    shown = [dead, caplog.text]
    shown.append(await (await client.get("/api/config", headers=headers)).text())
    await client.post("/ui/login", data={"token": ADMIN_TOKEN}, allow_redirects=False)
    for page in ("/ui/config", "/ui/dead-letters", "/ui/events"):
        answer = await client.get(page)
        assert answer.status == 200
        shown.append(await answer.text())
    assert "team#2" in shown[-2]
    for secret in (PASSWORD, GOOD_PATH, BAD_PATH, targets.url(GOOD_PATH), targets.url(BAD_PATH)):
        for text in shown:
            assert secret not in text
