"""Local servers for the channel tests: a real aiosmtpd SMTP server and a tiny HTTP endpoint.

The Slack and Telegram fakes (``fake_slack``, ``fake_telegram``) come from tests.fakes.fixtures.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_USER = "relay@example.com"
SMTP_PASSWORD = "smtp-pa55word-xyz"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@dataclass
class SmtpServer:
    """What the SMTP server received, and how it should answer.

    ``data_answer``/``rcpt_answer`` replace the normal 250 (e.g. ``"451 try later"``).
    """

    port: int = 0
    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    data_answer: str | None = None
    rcpt_answer: str | None = None
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_answer is not None:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_answer is not None:
            return self.data_answer
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(parsed)
        self.envelopes.append(envelope)
        self.received.set()
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        ok = (login, password) == (SMTP_USER, SMTP_PASSWORD)
        return AuthResult(success=ok, handled=False)


StartSmtp = Callable[..., Awaitable[SmtpServer]]


@pytest.fixture
async def smtp_server() -> AsyncIterator[StartSmtp]:
    """``await smtp_server(auth=True)`` starts an SMTP server on 127.0.0.1 (no TLS)."""
    servers: list[asyncio.base_events.Server] = []

    async def start(*, auth: bool = False) -> SmtpServer:
        handler = SmtpServer()
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {"hostname": "smtp.test"}
        if auth:
            options |= {
                "authenticator": handler.authenticate,
                "auth_required": False,  # True + plain text only warns; a login still runs
                "auth_require_tls": False,
            }
        server = await loop.create_server(
            lambda: SMTP(handler, loop=loop, **options), "127.0.0.1", 0
        )
        servers.append(server)
        handler.port = server.sockets[0].getsockname()[1]
        return handler

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def smtp_auth_server(smtp_server: StartSmtp) -> SmtpServer:
    """A started SMTP server that takes logins (SMTP_USER / SMTP_PASSWORD)."""
    return await smtp_server(auth=True)


@dataclass
class HttpEndpoint:
    """A local HTTP endpoint recording POSTs and answering ``status`` (+ ``headers``)."""

    url: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status, text="answer", headers=self.headers)


@pytest.fixture
async def http_endpoint() -> AsyncIterator[HttpEndpoint]:
    endpoint = HttpEndpoint()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    endpoint.url = f"http://127.0.0.1:{port}/hook/tok3n-in-path"
    yield endpoint
    await runner.cleanup()
