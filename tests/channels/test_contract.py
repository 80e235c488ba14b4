"""One contract every channel keeps, run over each channel type (every type in the registry has
a case here, or ``test_every_channel_type_has_a_contract_case`` fails).

send succeeds with the expected ref type; a rate limit is retryable with the server's Retry-After;
a server failure is retryable; a refusal is permanent; and no secret shows in settings, channel
reprs, rate keys, raised errors or logs. A fault the transport cannot meet (a console has no
server, a file no refusal) is left out of its case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

from relay.channels import REGISTRY, Channel
from relay.channels.base import DeliveryError, Message, MessageRef, PermanentError, RetryableError
from tests.channels.conftest import SMTP_PASSWORD, SMTP_USER, HttpEndpoint, SmtpServer
from tests.fakes.discord import DEFAULT_TOKEN as DISCORD_TOKEN
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram
from tests.fakes.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

MESSAGE = Message(text="Run failed", subject="Run failed", run_id="run-1", event_id="ev-1")
HMAC_SECRET = "contract-hmac-s3cret"
HEADER_SECRET = "Bearer contract-header-s3cret"


@dataclass
class Harness:
    """A channel type wired to a local server, with the faults that server can inject."""

    settings: dict[str, Any]
    bad_settings: dict[str, Any] | None
    """Settings the server refuses (wrong token, password, webhook path)."""
    secrets: list[str]
    ref_type: type
    rate_limit: Callable[[], None] | None
    """Queue one 429 with ``Retry-After: 2``; None where the protocol has no such answer."""
    server_error: Callable[[], None] | None
    refusal: Callable[[], None] | None
    extra: dict[str, Any] = field(default_factory=dict)


def slack_token(request: pytest.FixtureRequest) -> Harness:
    slack: FakeSlack = request.getfixturevalue("fake_slack")
    base = {"type": "slack", "channel": "#video-alerts", "api_url": slack.api_url}
    return Harness(
        settings=base | {"token": SLACK_TOKEN},
        bad_settings=base | {"token": "xoxb-revoked-token-123"},
        secrets=[SLACK_TOKEN, "xoxb-revoked-token-123"],
        ref_type=MessageRef,
        rate_limit=lambda: slack.fail_next(status=429, retry_after=2),
        server_error=lambda: slack.fail_next(status=503),
        refusal=lambda: slack.error_next("account_inactive"),
    )


def slack_webhook(request: pytest.FixtureRequest) -> Harness:
    slack: FakeSlack = request.getfixturevalue("fake_slack")
    url = slack.webhook_url()
    wrong = f"{slack.url}/services/T0FAKE/B0000009/wrongsecretpath"
    return Harness(
        settings={"type": "slack", "webhook_url": url},
        bad_settings={"type": "slack", "webhook_url": wrong},
        secrets=[url, url.rsplit("/", 1)[1], wrong, "wrongsecretpath"],
        ref_type=type(None),
        rate_limit=lambda: slack.fail_next(status=429, retry_after=2, method="webhook"),
        server_error=lambda: slack.fail_next(status=500, method="webhook"),
        refusal=lambda: slack.fail_next(status=403, method="webhook"),
    )


def telegram(request: pytest.FixtureRequest) -> Harness:
    tg: FakeTelegram = request.getfixturevalue("fake_telegram")
    base = {"type": "telegram", "chat_id": DEFAULT_CHAT_ID, "api_url": tg.url}
    return Harness(
        settings=base | {"token": TELEGRAM_TOKEN},
        bad_settings=base | {"token": "654321:REVOKED-token"},
        secrets=[TELEGRAM_TOKEN, "654321:REVOKED-token"],
        ref_type=MessageRef,
        rate_limit=lambda: tg.fail_next(status=429, retry_after=2),
        server_error=lambda: tg.fail_next(status=500),
        refusal=lambda: tg.fail_next(status=403, description="Forbidden: bot was blocked"),
    )


def email(request: pytest.FixtureRequest) -> Harness:
    server: SmtpServer = request.getfixturevalue("smtp_auth_server")
    base = {
        "type": "email",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": SMTP_USER,
        "from": "Relay <relay@example.com>",
        "to": ["leads@example.com"],
    }

    def answer_data(text: str) -> None:
        server.data_answer = text

    return Harness(
        settings=base | {"password": SMTP_PASSWORD},
        bad_settings=base | {"password": "wrong-smtp-pa55"},
        secrets=[SMTP_PASSWORD, "wrong-smtp-pa55"],
        ref_type=MessageRef,
        rate_limit=None,
        server_error=lambda: answer_data("451 Local error in processing"),
        refusal=lambda: answer_data("550 Rejected"),
        extra={"reset": lambda: answer_data(None)},  # type: ignore[arg-type]
    )


def webhook(request: pytest.FixtureRequest) -> Harness:
    endpoint: HttpEndpoint = request.getfixturevalue("http_endpoint")
    base = {"type": "webhook", "url": endpoint.url, "secret": HMAC_SECRET}

    def answer(status: int, headers: dict[str, str] | None = None) -> None:
        endpoint.status, endpoint.headers = status, headers or {}

    return Harness(
        settings=base | {"headers": {"Authorization": HEADER_SECRET}},
        bad_settings=base | {"url": endpoint.url.replace("tok3n-in-path", "wrong-path-token")},
        secrets=[HMAC_SECRET, endpoint.url, "tok3n-in-path", "wrong-path-token", HEADER_SECRET],
        ref_type=type(None),
        rate_limit=lambda: answer(429, {"Retry-After": "2"}),
        server_error=lambda: answer(502),
        refusal=lambda: answer(403),
        extra={"reset": lambda: answer(200), "bad": lambda: answer(401)},
    )


def apprise(request: pytest.FixtureRequest) -> Harness:
    """Apprise only says sent or not: a 429 or a refusal is one more retryable failure."""
    endpoint: HttpEndpoint = request.getfixturevalue("http_endpoint")
    url = endpoint.url.replace("http://", "json://", 1)

    def answer(status: int) -> None:
        endpoint.status = status

    return Harness(
        settings={"type": "apprise", "urls": [url]},
        bad_settings=None,
        secrets=[url, endpoint.url, "tok3n-in-path"],
        ref_type=type(None),
        rate_limit=None,
        server_error=lambda: answer(502),
        refusal=None,
        extra={"reset": lambda: answer(200)},
    )


def discord(request: pytest.FixtureRequest) -> Harness:
    fake: FakeDiscord = request.getfixturevalue("fake_discord")
    wrong = fake.webhook_url(token="revoked-Discord-token-77")
    return Harness(
        settings={"type": "discord", "webhook_url": fake.webhook_url()},
        bad_settings={"type": "discord", "webhook_url": wrong},
        secrets=[fake.webhook_url(), DISCORD_TOKEN, wrong, "revoked-Discord-token-77"],
        ref_type=MessageRef,
        rate_limit=lambda: fake.fail_next(status=429, retry_after=2),
        server_error=lambda: fake.fail_next(status=502),
        refusal=lambda: fake.fail_next(status=403),
    )


def console(request: pytest.FixtureRequest) -> Harness:
    return Harness(
        settings={"type": "console"},
        bad_settings=None,
        secrets=[],
        ref_type=type(None),
        rate_limit=None,
        server_error=None,
        refusal=None,
    )


def file(request: pytest.FixtureRequest) -> Harness:
    path: Path = request.getfixturevalue("tmp_path") / "out" / "deliveries.jsonl"

    def unwritable() -> None:  # a folder where the file should be: every append fails
        path.unlink(missing_ok=True)
        path.mkdir(parents=True)

    return Harness(
        settings={"type": "file", "path": str(path)},
        bad_settings=None,
        secrets=[],
        ref_type=type(None),
        rate_limit=None,
        server_error=unwritable,
        refusal=None,
        extra={"reset": lambda: path.rmdir() if path.is_dir() else None},
    )


class Case(NamedTuple):
    channel_type: str
    harness: Callable[[pytest.FixtureRequest], Harness]


CASES: dict[str, Case] = {
    "console": Case("console", console),
    "file": Case("file", file),
    "slack-token": Case("slack", slack_token),
    "slack-webhook": Case("slack", slack_webhook),
    "telegram": Case("telegram", telegram),
    "email": Case("email", email),
    "webhook": Case("webhook", webhook),
    "discord": Case("discord", discord),
    "apprise": Case("apprise", apprise),
}


def test_every_channel_type_has_a_contract_case() -> None:
    missing = set(REGISTRY) - {case.channel_type for case in CASES.values()}
    assert not missing, f"add a contract case for the channel types {sorted(missing)}"


def build(settings: dict[str, Any]) -> Channel:
    kind = REGISTRY[settings["type"]]
    return kind.factory("contract", kind.settings.model_validate(settings), Path("."))


@pytest.fixture(params=list(CASES))
def harness(request: pytest.FixtureRequest) -> Harness:
    """Only the chosen channel type's server is started (fixtures requested on demand)."""
    case = CASES[request.param]
    harness = case.harness(request)
    assert harness.settings["type"] == case.channel_type
    return harness


async def test_channel_contract(
    harness: Harness, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reset = harness.extra.get("reset", lambda: None)
    channel = build(harness.settings)
    assert isinstance(channel, Channel)
    await channel.start(session)
    errors: list[DeliveryError] = []

    ref = await channel.send(MESSAGE)
    assert isinstance(ref, harness.ref_type)

    if harness.rate_limit is not None:
        harness.rate_limit()
        with pytest.raises(RetryableError) as limited:
            await channel.send(MESSAGE)
        assert limited.value.rate_limited and limited.value.retry_after == 2
        errors.append(limited.value)
        reset()

    if harness.server_error is not None:
        harness.server_error()
        with pytest.raises(RetryableError) as failing:
            await channel.send(MESSAGE)
        assert not failing.value.rate_limited
        errors.append(failing.value)
        reset()

    if harness.refusal is not None:
        harness.refusal()
        with pytest.raises(PermanentError) as refused:
            await channel.send(MESSAGE)
        errors.append(refused.value)
        reset()

    channels = [channel]
    if harness.bad_settings is not None:
        harness.extra.get("bad", lambda: None)()
        bad = build(harness.bad_settings)
        channels.append(bad)
        await bad.start(session)
        with pytest.raises(PermanentError) as rejected:
            await bad.send(MESSAGE)
        errors.append(rejected.value)
        reset()

    assert isinstance(await channel.send(MESSAGE), harness.ref_type)  # healthy again
    for each in channels:
        await each.close()

    settings = REGISTRY[harness.settings["type"]].settings.model_validate(harness.settings)
    exposed = [repr(settings), str(settings), settings.model_dump_json(), caplog.text]
    for each in channels:
        exposed += [repr(each), str(each), each.rate_key]
    for error in errors:
        exposed += [str(error), repr(error), error.reason]
        assert error.__cause__ is None, "a chained cause could print a secret in tracebacks"
    for secret in harness.secrets:
        for text in exposed:
            assert secret.lower() not in text.lower(), f"{secret!r} leaked into {text[:200]!r}"
