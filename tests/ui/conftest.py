"""A relay with the admin token set, a local webhook target whose answer the test chooses, and
helpers to log in and post events."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay.app import build_app
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import SECRET

Client = TestClient[Any, web.Application]

ADMIN_TOKEN = "adm1n-t0ken-for-tests"
HOOK_HEADER_SECRET = "hook-header-s3cret"
HOOK_HMAC_SECRET = "hook-hmac-s3cret"
SECRETS = (ADMIN_TOKEN, SECRET, HOOK_HEADER_SECRET, HOOK_HMAC_SECRET)
"""Values that must never appear in a page or an API answer."""
HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & "q"'

UI_CONFIG = """
server:
  admin_token: "{admin}"
auth:
  secrets: ["{secret}"]
store:
  url: sqlite:///relay.db
  sync: normal
delivery:
  workers: 4
  lease: 5s
  max_attempts: 3
  backoff: {{initial: 10ms, max: 50ms}}
  shutdown_grace: 2s
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  archive:
    type: file
    path: deliveries.jsonl
  hook:
    type: webhook
    url: "{hook_url}"
    headers: {{Authorization: "Bearer {header_secret}"}}
    secret: "{hmac_secret}"
    rate_limit: off
routes:
  - name: all
    to: [archive]
  - name: failures
    match: {{status: failed}}
    to: [hook]
  - name: tests
    match: {{flag: TEST}}
    to: [archive]
"""


@dataclass
class Hook:
    """The webhook channel's target: answers ``status`` and records each body."""

    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=self.status, text="ok" if self.status < 300 else "refused")


@pytest.fixture
async def hook(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Hook:
    target = Hook()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    server = await aiohttp_server(app)
    target.url = str(server.make_url("/hook"))
    return target


def ui_config(hook_url: str, *, admin: str | None = ADMIN_TOKEN) -> str:
    text = UI_CONFIG.format(
        admin=admin or "",
        secret=SECRET,
        hook_url=hook_url,
        header_secret=HOOK_HEADER_SECRET,
        hmac_secret=HOOK_HMAC_SECRET,
    )
    if admin is None:
        text = text.replace('  admin_token: ""\n', "  port: 8080\n")
    return text


@pytest.fixture
def make_app(write_config: Callable[[str], Path], hook: Hook) -> Callable[..., web.Application]:
    def make(*, admin: str | None = ADMIN_TOKEN, **kwargs: Any) -> web.Application:
        return build_app(
            load_config(write_config(ui_config(hook.url, admin=admin)), env={}), **kwargs
        )

    return make


@pytest.fixture
async def client(
    make_app: Callable[..., web.Application], aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    return await aiohttp_client(make_app())


async def post_event(client: Client, body: dict[str, Any]) -> str:
    answer = await client.post(
        "/webhooks/mosaic", data=json.dumps(body), headers={SIGNATURE_HEADER: SECRET}
    )
    assert answer.status in (200, 202), await answer.text()
    event_id: str = (await answer.json())["event_id"]
    return event_id


async def login(client: Client, token: str = ADMIN_TOKEN) -> str:
    """Log in through the form; returns the session's CSRF token (from a page's meta tag)."""
    answer = await client.post(
        "/ui/login", data={"token": token, "next": "/ui/events"}, allow_redirects=False
    )
    assert answer.status == 303, await answer.text()
    page = await client.get("/ui/events")
    assert page.status == 200
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', await page.text())
    assert found
    return found.group(1)


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
