"""Webhook channel against a local aiohttp endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from relay.channels.base import DeliveryError, Message, PermanentError, RetryableError
from relay.channels.webhook import WebhookChannel, WebhookSettings
from tests.channels.conftest import HttpEndpoint

HMAC_SECRET = "hmac-shared-s3cret"


def make_channel(url: str, **overrides: Any) -> WebhookChannel:
    data: dict[str, Any] = {"type": "webhook", "url": url, "timeout": 5}
    data.update(overrides)
    return WebhookChannel("in-house", WebhookSettings.model_validate(data), Path("."))


MESSAGE = Message(
    text='New video: "Cats" <3',
    subject="Run finished",
    event_id="ev-1",
    run_id="run-1",
    agent_id="agent-1",
    flag="RUN_FINISHED",
    status="completed",
    route="announce",
)


async def started(channel: WebhookChannel, session: aiohttp.ClientSession) -> WebhookChannel:
    await channel.start(session)
    return channel


async def test_default_body_headers_and_signature(
    http_endpoint: HttpEndpoint, session: aiohttp.ClientSession
) -> None:
    channel = await started(
        make_channel(http_endpoint.url, headers={"X-Team": "video"}, secret=HMAC_SECRET), session
    )
    assert await channel.send(MESSAGE) is None

    [(headers, body)] = http_endpoint.requests
    assert json.loads(body) == {
        "text": 'New video: "Cats" <3',
        "subject": "Run finished",
        "event_id": "ev-1",
        "run_id": "run-1",
        "agent_id": "agent-1",
        "flag": "RUN_FINISHED",
        "status": "completed",
        "route": "announce",
    }
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Team"] == "video"
    assert headers["X-Relay-Event-Id"] == "ev-1"
    expected = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Relay-Signature"] == f"sha256={expected}"


async def test_rendered_body_is_sent_verbatim_and_unsigned_without_secret(
    http_endpoint: HttpEndpoint, session: aiohttp.ClientSession
) -> None:
    channel = await started(make_channel(http_endpoint.url), session)
    rendered = '{"content": "Fertig ✅", "n": 1}'
    await channel.send(Message(text="ignored", body=rendered))
    [(headers, body)] = http_endpoint.requests
    assert body == rendered.encode()
    assert "X-Relay-Signature" not in headers


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after", "rate_limited"),
    [
        (200, {}, None, None, False),
        (204, {}, None, None, False),
        (429, {"Retry-After": "2"}, RetryableError, 2.0, True),
        (429, {}, RetryableError, None, True),
        (500, {}, RetryableError, None, False),
        (503, {"Retry-After": "30"}, RetryableError, 30.0, False),
        (408, {}, RetryableError, None, False),
        (301, {"Location": "http://127.0.0.1:1/elsewhere"}, PermanentError, None, False),
        (400, {}, PermanentError, None, False),
        (401, {}, PermanentError, None, False),
        (403, {}, PermanentError, None, False),
        (404, {}, PermanentError, None, False),
        (410, {}, PermanentError, None, False),
    ],
)
async def test_status_table(
    http_endpoint: HttpEndpoint,
    session: aiohttp.ClientSession,
    status: int,
    headers: dict[str, str],
    kind: type[DeliveryError] | None,
    retry_after: float | None,
    rate_limited: bool,
) -> None:
    http_endpoint.status, http_endpoint.headers = status, headers
    channel = await started(make_channel(http_endpoint.url), session)
    if kind is None:
        assert await channel.send(MESSAGE) is None
        return
    with pytest.raises(kind) as caught:
        await channel.send(MESSAGE)
    assert f"HTTP {status}" in caught.value.reason
    assert "tok3n-in-path" not in str(caught.value)
    if isinstance(caught.value, RetryableError):
        assert caught.value.retry_after == retry_after
        assert caught.value.rate_limited is rate_limited
    assert len(http_endpoint.requests) == 1  # no redirect followed, no silent retry


async def test_unreachable_is_retryable_and_hides_the_url(session: aiohttp.ClientSession) -> None:
    channel = await started(make_channel("http://127.0.0.1:1/hook/tok3n-in-path"), session)
    with pytest.raises(RetryableError) as caught:
        await channel.send(MESSAGE)
    assert "tok3n-in-path" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"X-Bad": "a\r\nInjected: 1"}},
        {"secret": ""},
        {"unknown": 1},
    ],
)
def test_settings_errors(overrides: dict[str, Any]) -> None:
    data = {"type": "webhook", "url": "https://hooks.example.com/x"} | overrides
    with pytest.raises(ValidationError):
        WebhookSettings.model_validate(data)


def test_url_and_header_values_are_hidden() -> None:
    channel = make_channel(
        "https://hooks.example.com/hook/tok3n-in-path",
        headers={"Authorization": "Bearer header-s3cret"},
        secret=HMAC_SECRET,
    )
    for text in (repr(channel.settings), str(channel.settings), repr(channel), channel.rate_key):
        for secret in ("tok3n-in-path", "header-s3cret", HMAC_SECRET):
            assert secret not in text
    assert "hooks.example.com" in repr(channel)
