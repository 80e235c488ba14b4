"""The config page and ``GET /api/config`` show the last channel checks, failures first."""

from __future__ import annotations

import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from relay.app import RELAY, build_app
from relay.config import load_config
from tests.conftest import wait_until
from tests.ui.conftest import Client, Hook, assert_no_secret, bearer, login, ui_config

DOWN_PATH = "/down/s3cret-path-4f"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_failed_checks_on_the_config_page_and_in_the_api(
    write_config: Callable[[str], Path],
    hook: Hook,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    broken = f'  broken: {{type: webhook, url: "http://127.0.0.1:{free_port()}{DOWN_PATH}"}}\n'
    text = ui_config(hook.url).replace("channels:\n", "channels:\n" + broken, 1)
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    checks = client.app[RELAY].checks
    assert checks is not None
    await wait_until(lambda: bool(checks.results))

    answer = await client.get("/api/config", headers=bearer())
    assert answer.status == 200
    found = (await answer.json())["channel_checks"]
    assert found["running"] is False and found["checked_at"] > 0
    verdicts = {r["channel"]: (r["type"], r["ok"]) for r in found["results"]}
    assert verdicts == {
        "broken": ("webhook", False),
        "archive": ("file", True),
        "hook": ("webhook", True),
    }
    [failed] = [r for r in found["results"] if not r["ok"]]
    assert failed["detail"].startswith("cannot connect to 127.0.0.1:")

    await login(client)
    page = await (await client.get("/ui/config")).text()
    assert "<h2>Channel checks</h2>" in page
    assert "2 of 3 channels passed their credentials check" in page
    assert f"<li><b>broken</b> (webhook): <code>{failed['detail']}</code></li>" in page
    for text in (page, await answer.text()):
        assert_no_secret(text)
        assert "s3cret-path" not in text


async def test_switched_off_checks_say_so(
    write_config: Callable[[str], Path],
    hook: Hook,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    app = build_app(load_config(write_config(ui_config(hook.url)), env={}), check_channels=False)
    client = await aiohttp_client(app)
    answer = await client.get("/api/config", headers=bearer())
    assert (await answer.json())["channel_checks"] is None
    await login(client)
    page = await (await client.get("/ui/config")).text()
    assert re.search(r'<h2>Channel checks</h2>\s*<p class="muted">Off.</p>', page)
