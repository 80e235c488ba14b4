"""A relay wired to local fakes of every channel type, for the end-to-end security tests.

Slack (Web API and incoming webhook) and Telegram go to the fakes in tests/fakes, email to an
in-process aiosmtpd server that takes logins, the webhook channel to a local HTTP endpoint. With
``failing=True`` a twin of each channel is misconfigured (revoked token, wrong password, wrong
webhook path, a port nobody listens on, a template that cannot render), so deliveries also fail
and dead-letter. Every HTTP answer of the relay is recorded.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.smtp import SMTP

from relay.app import RELAY, build_app
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.channels.conftest import SMTP_PASSWORD, SMTP_USER, HttpEndpoint, SmtpServer
from tests.conftest import wait_until
from tests.fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram
from tests.fakes.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN

__all__ = ["PATH", "Rig", "running_rig"]

Client = TestClient[Any, web.Application]
PATH = "/webhooks/mosaic"
WEBHOOK_SECRETS = ("wh-s3cret-one-7f3a", "wh-s3cret-two-91bc")
ADMIN_TOKEN = "adm1n-t0ken-5e6f"
HOOK_HMAC = "hmac-s3cret-0d1e"
HOOK_HEADER = "Bearer hdr-s3cret-2b3c"
REVOKED_SLACK = "xoxb-revoked-8a7b6c"
REVOKED_TELEGRAM = "654321:REVOKED-tok3n"
WRONG_SMTP_PASSWORD = "wrong-smtp-pa55-4d"
DOWN_PATH = "/down/s3cret-path-6e5f"


@dataclass
class Rig:
    client: Client
    slack: FakeSlack
    telegram: FakeTelegram
    smtp: SmtpServer
    endpoint: HttpEndpoint
    folder: Path
    config: Path
    secrets: list[str]
    """Every configured secret, token, password and secret URL part."""
    answers: list[str] = field(default_factory=list)
    """Every answer the relay gave: status line, headers and body."""

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        async with self.client.request(method, path, **kwargs) as answer:
            body = await answer.read()
            headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
            self.answers.append(f"{answer.status} {answer.reason}\n{headers}\n\n{body.decode()}")
            return answer.status, body

    async def post(
        self, payload: dict[str, Any] | bytes, signature: str | None = WEBHOOK_SECRETS[0]
    ) -> int:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {SIGNATURE_HEADER: signature} if signature is not None else {}
        status, _ = await self.request("POST", PATH, data=data, headers=headers)
        return status

    async def states(self) -> dict[tuple[str, str], int]:
        rows = await self.client.app[RELAY].store.status()
        return {(row.channel, row.state): row.count for row in rows}

    async def settle(self, timeout: float = 20.0) -> dict[tuple[str, str], int]:
        """Wait until every job is sent or dead-lettered; the counts per (channel, state)."""

        async def done() -> bool:
            return all(state in ("sent", "dead") for _, state in await self.states())

        await wait_until(done, timeout=timeout)
        return await self.states()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(
    slack: FakeSlack, telegram: FakeTelegram, smtp: SmtpServer, hook_url: str, *, failing: bool
) -> dict[str, Any]:
    email = {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": "none",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "from": "Mosaic Relay <relay@example.com>",
        "to": ["leads@example.com"],
        "rate_limit": "off",
    }
    slack_api = {"type": "slack", "channel": "#video-alerts", "api_url": slack.api_url}
    telegram_api = {"type": "telegram", "chat_id": DEFAULT_CHAT_ID, "api_url": telegram.url}
    hook = {"type": "webhook", "headers": {"Authorization": HOOK_HEADER}, "secret": HOOK_HMAC}
    channels: dict[str, Any] = {
        "slack-api": {**slack_api, "token": SLACK_TOKEN, "rate_limit": "off"},
        "slack-hook": {"type": "slack", "webhook_url": slack.webhook_url(), "rate_limit": "off"},
        "telegram": {**telegram_api, "token": TELEGRAM_TOKEN, "rate_limit": "off"},
        "email": email,
        "hook": {**hook, "url": hook_url},
        "archive": {"type": "file", "path": "deliveries.jsonl"},
    }
    if failing:
        wrong_hook = slack.webhook_url().rsplit("/", 1)[0] + "/wrongsecretpath9c8d"
        channels |= {
            "slack-revoked": {**slack_api, "token": REVOKED_SLACK, "rate_limit": "off"},
            "slack-hook-wrong": {"type": "slack", "webhook_url": wrong_hook, "rate_limit": "off"},
            "telegram-revoked": {**telegram_api, "token": REVOKED_TELEGRAM, "rate_limit": "off"},
            "email-wrong-password": {**email, "password": WRONG_SMTP_PASSWORD},
            "hook-down": {**hook, "url": f"http://127.0.0.1:{_free_port()}{DOWN_PATH}"},
            "broken-template": {"type": "file", "path": "broken.jsonl", "template": "broken"},
        }
    return {
        "server": {"admin_token": ADMIN_TOKEN, "read_timeout": "5s"},
        "auth": {"secrets": list(WEBHOOK_SECRETS)},
        "store": {"url": "sqlite:///relay.db", "sync": "normal"},
        "delivery": {
            "workers": 8,
            "lease": "5s",
            "max_attempts": 2,
            "backoff": {"initial": "10ms", "max": "20ms"},
            "shutdown_grace": "1s",
        },
        "channels": channels,
        "routes": [
            {"name": "everything", "to": sorted(channels)},
            {"name": "tests", "match": {"flag": "TEST"}, "to": ["archive"]},
        ],
        "templates": {"broken": {"text": "{{ trigger.no_such_field.deeper }}"}},
    }


@asynccontextmanager
async def running_rig(
    folder: Path,
    slack: FakeSlack,
    telegram: FakeTelegram,
    aiohttp_client: Callable[..., Awaitable[Client]],
    *,
    failing: bool = False,
) -> AsyncIterator[Rig]:
    smtp = SmtpServer()
    loop = asyncio.get_running_loop()
    smtp_server = await loop.create_server(
        lambda: SMTP(
            smtp,
            loop=loop,
            hostname="smtp.test",
            authenticator=smtp.authenticate,
            auth_required=False,
            auth_require_tls=False,
        ),
        "127.0.0.1",
        0,
    )
    smtp.port = smtp_server.sockets[0].getsockname()[1]
    endpoint = HttpEndpoint()
    hook_app = web.Application()
    hook_app.router.add_route("*", "/{tail:.*}", endpoint.handle)
    hook_runner = web.AppRunner(hook_app, access_log=None)
    await hook_runner.setup()
    await web.TCPSite(hook_runner, "127.0.0.1", 0).start()
    endpoint.url = f"http://127.0.0.1:{hook_runner.addresses[0][1]}/hook/tok3n-in-path"
    try:
        config = folder / "relay.yaml"
        config.write_text(json.dumps(_config(slack, telegram, smtp, endpoint.url, failing=failing)))
        client = await aiohttp_client(build_app(load_config(config, env={})))
        hook_path = slack.webhook_url().split("/services/", 1)[1]
        secrets = [
            *WEBHOOK_SECRETS,
            ADMIN_TOKEN,
            SLACK_TOKEN,
            slack.webhook_url(),
            hook_path,
            hook_path.rsplit("/", 1)[1],
            TELEGRAM_TOKEN,
            SMTP_PASSWORD,
            endpoint.url,
            "tok3n-in-path",
            HOOK_HMAC,
            HOOK_HEADER,
            HOOK_HEADER.split(" ", 1)[1],
        ]
        if failing:
            secrets += [
                REVOKED_SLACK,
                "wrongsecretpath9c8d",
                REVOKED_TELEGRAM,
                WRONG_SMTP_PASSWORD,
                DOWN_PATH,
            ]
        yield Rig(client, slack, telegram, smtp, endpoint, folder, config, secrets)
    finally:
        await hook_runner.cleanup()
        smtp_server.close()
        await smtp_server.wait_closed()
