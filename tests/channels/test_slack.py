"""Slack channel against the strict fake Slack (Web API and incoming webhooks)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from relay.channels.base import DeliveryError, Message, MessageRef, PermanentError, RetryableError
from relay.channels.slack import SlackChannel, SlackSettings, classify_slack_failure
from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Run failed"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*3* of 5 nodes &lt;!channel&gt;"}},
]


def token_settings(slack: FakeSlack, **overrides: Any) -> SlackSettings:
    data: dict[str, Any] = {
        "type": "slack",
        "token": DEFAULT_TOKEN,
        "channel": "#video-alerts",
        "api_url": slack.api_url,
        "timeout": 5,
    }
    data.update(overrides)
    return SlackSettings.model_validate(data)


async def token_channel(
    slack: FakeSlack, session: aiohttp.ClientSession, **overrides: Any
) -> SlackChannel:
    channel = SlackChannel("team-slack", token_settings(slack, **overrides), Path("."))
    await channel.start(session)
    return channel


async def hook_channel(slack: FakeSlack, session: aiohttp.ClientSession) -> SlackChannel:
    settings = SlackSettings.model_validate({"type": "slack", "webhook_url": slack.webhook_url()})
    channel = SlackChannel("hook-slack", settings, Path("."))
    await channel.start(session)
    return channel


async def test_post_sends_text_and_blocks_without_mention_parsing(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    ref = await channel.send(Message(text="Run failed &lt;!channel&gt;", blocks=BLOCKS))

    [posted] = fake_slack.messages("#video-alerts")
    assert ref == MessageRef(channel_id="C0VIDEO", message_id=posted.ts)
    assert posted.text == "Run failed &lt;!channel&gt;"
    assert posted.blocks == BLOCKS
    [call] = fake_slack.calls_for("chat.postMessage")
    assert call.body["unfurl_links"] is False
    assert "parse" not in call.body and "link_names" not in call.body


async def test_edit_updates_the_posted_message(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    ref = await channel.send(Message(text="1 of 5 nodes"))
    assert ref is not None
    await channel.edit(ref, Message(text="2 of 5 nodes", blocks=BLOCKS))

    [posted] = fake_slack.messages("C0VIDEO")
    assert posted.text == "2 of 5 nodes" and posted.blocks == BLOCKS
    assert [v.text for v in posted.history] == ["1 of 5 nodes"]


@pytest.mark.parametrize("broadcast", [False, True])
async def test_reply_goes_into_the_thread(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, broadcast: bool
) -> None:
    channel = await token_channel(fake_slack, session)
    parent = await channel.send(Message(text="card"))
    assert parent is not None
    child = await channel.reply(parent, Message(text="node 3 failed"), broadcast=broadcast)

    [reply] = fake_slack.replies("C0VIDEO", parent.message_id)
    assert child == MessageRef("C0VIDEO", reply.ts)
    assert not reply.orphan and reply.reply_broadcast is broadcast


async def test_webhook_mode_posts_only(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await hook_channel(fake_slack, session)
    assert not channel.can_edit
    assert await channel.send(Message(text="hello", blocks=BLOCKS)) is None
    [posted] = fake_slack.messages("C0VIDEO")
    assert posted.via_webhook and posted.text == "hello" and posted.blocks == BLOCKS

    with pytest.raises(PermanentError, match="token"):
        await channel.edit(MessageRef("C0VIDEO", posted.ts), Message(text="x"))
    assert await channel.reply(MessageRef("C0VIDEO", posted.ts), Message(text="r")) is None
    assert [m.thread_ts for m in fake_slack.messages("C0VIDEO")] == [None, None]


@pytest.mark.parametrize(
    ("setup", "expected", "code"),
    [
        ({"token": "xoxb-wrong"}, PermanentError, "invalid_auth"),
        ({"channel": "#nowhere"}, PermanentError, "channel_not_found"),
        ({"error": "is_archived"}, PermanentError, "is_archived"),
        ({"error": "msg_too_long"}, PermanentError, "msg_too_long"),
        ({"error": "brand_new_error"}, PermanentError, "brand_new_error"),
        ({"error": "internal_error"}, RetryableError, "internal_error"),
        ({"status": 500}, RetryableError, "HTTP 500"),
        ({"status": 503}, RetryableError, "HTTP 503"),
        ({"status": 404}, PermanentError, "HTTP 404"),
    ],
)
async def test_web_api_failures(
    fake_slack: FakeSlack,
    session: aiohttp.ClientSession,
    setup: dict[str, Any],
    expected: type[DeliveryError],
    code: str,
) -> None:
    if "error" in setup:
        fake_slack.error_next(setup.pop("error"))
    if "status" in setup:
        fake_slack.fail_next(status=setup.pop("status"))
    channel = await token_channel(fake_slack, session, **setup)
    with pytest.raises(expected) as caught:
        await channel.send(Message(text="x"))
    assert code in caught.value.reason
    if isinstance(caught.value, RetryableError):
        assert not caught.value.rate_limited


async def test_not_in_channel_is_permanent(session: aiohttp.ClientSession) -> None:
    async with FakeSlack(not_member=["#video-alerts"]) as slack:
        channel = await token_channel(slack, session)
        with pytest.raises(PermanentError, match="not_in_channel"):
            await channel.send(Message(text="x"))


@pytest.mark.parametrize("mode", ["token", "webhook"])
async def test_rate_limit_honours_retry_after(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, mode: str
) -> None:
    channel = await (
        token_channel(fake_slack, session) if mode == "token" else hook_channel(fake_slack, session)
    )
    fake_slack.fail_next(status=429, retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await channel.send(Message(text="x"))
    assert caught.value.rate_limited and caught.value.retry_after == 7.0
    await channel.send(Message(text="x"))
    assert len(fake_slack.messages("C0VIDEO")) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, RetryableError), (503, RetryableError), (400, PermanentError), (403, PermanentError)],
)
async def test_webhook_failures(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, status: int, expected: type
) -> None:
    channel = await hook_channel(fake_slack, session)
    fake_slack.fail_next(status=status, method="webhook")
    with pytest.raises(expected, match=f"HTTP {status}"):
        await channel.send(Message(text="x"))


async def test_unknown_webhook_is_permanent(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    settings = SlackSettings.model_validate(
        {"type": "slack", "webhook_url": f"{fake_slack.url}/services/T0/B0/revoked-secret-path"}
    )
    channel = SlackChannel("hook", settings, Path("."))
    await channel.start(session)
    with pytest.raises(PermanentError) as caught:
        await channel.send(Message(text="x"))
    assert "no_service" in caught.value.reason
    assert "revoked-secret-path" not in str(caught.value)


@pytest.mark.parametrize("refuse", [True, False])
async def test_outage_is_retryable(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, refuse: bool
) -> None:
    channel = await token_channel(fake_slack, session)
    await fake_slack.go_down(refuse=refuse)
    with pytest.raises(RetryableError) as caught:
        await channel.send(Message(text="x"))
    assert not caught.value.rate_limited
    await fake_slack.go_up()
    assert await channel.send(Message(text="x")) is not None


async def test_slow_answer_times_out_as_retryable(session: aiohttp.ClientSession) -> None:
    async def never(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", never)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        api_url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/"
        settings = SlackSettings.model_validate(
            {"type": "slack", "token": DEFAULT_TOKEN, "channel": "C1", "api_url": api_url,
             "timeout": "50ms"}
        )  # fmt: skip
        channel = SlackChannel("slow", settings, Path("."))
        await channel.start(session)
        with pytest.raises(RetryableError, match="timed out"):
            await channel.send(Message(text="x"))
    finally:
        await runner.cleanup()


async def test_env_proxy_is_used_unless_no_proxy_matches(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = await token_channel(fake_slack, session)
    with pytest.raises(RetryableError):
        await proxied.send(Message(text="x"))

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = await token_channel(fake_slack, session)
    assert await direct.send(Message(text="x")) is not None


def test_rate_key_is_per_token_and_channel_without_the_token() -> None:
    def key(token: str, channel: str) -> str:
        data = {"type": "slack", "token": token, "channel": channel}
        return SlackChannel("s", SlackSettings.model_validate(data), Path(".")).rate_key

    a = key("xoxb-aaaa1111", "#x")
    assert len({a, key("xoxb-aaaa1111", "#y"), key("xoxb-bbbb2222", "#x")}) == 3
    assert a == key("xoxb-aaaa1111", "#x")
    assert "xoxb" not in a and "aaaa1111" not in a


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "exactly one"),
        ({"token": "xoxb-1", "webhook_url": "https://hooks.slack.com/services/x"}, "exactly one"),
        ({"token": "xoxb-1"}, "'channel' is required"),
        ({"token": "   ", "channel": "#x"}, "empty"),
        ({"webhook_url": "https://hooks.slack.com/services/x", "channel": "#x"}, "cannot"),
        ({"webhook_url": "hooks.slack.com/services/x"}, "http"),
        ({"token": "xoxb-1", "channel": "#x", "api_url": "slack.com"}, "http"),
        ({"token": "xoxb-1", "channel": "#x", "parse": "full"}, "parse"),
    ],
)
def test_settings_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        SlackSettings.model_validate({"type": "slack"} | data)


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "expected", "rate_limited", "wait"),
    [
        (429, "ratelimited", "3", RetryableError, True, 3.0),
        (200, "ratelimited", None, RetryableError, True, None),
        (429, "", None, RetryableError, True, None),
        (500, "", None, RetryableError, False, None),
        (502, "<html>bad gateway</html>", None, RetryableError, False, None),
        (200, "service_unavailable", None, RetryableError, False, None),
        (200, "fatal_error", None, RetryableError, False, None),
        (200, "invalid_auth", None, PermanentError, False, None),
        (200, "not_authed", None, PermanentError, False, None),
        (200, "account_inactive", None, PermanentError, False, None),
        (200, "token_revoked", None, PermanentError, False, None),
        (200, "channel_not_found", None, PermanentError, False, None),
        (200, "not_in_channel", None, PermanentError, False, None),
        (200, "is_archived", None, PermanentError, False, None),
        (200, "msg_too_long", None, PermanentError, False, None),
        (200, "invalid_blocks", None, PermanentError, False, None),
        (200, "something_new", None, PermanentError, False, None),
        (400, "", None, PermanentError, False, None),
        (404, "no_service", None, PermanentError, False, None),
        (410, "channel_is_archived", None, PermanentError, False, None),
    ],
)
def test_classification_table(
    status: int,
    code: str,
    retry_after: str | None,
    expected: type,
    rate_limited: bool,
    wait: float | None,
) -> None:
    decided = classify_slack_failure(status, code, retry_after)
    assert type(decided) is expected
    if isinstance(decided, RetryableError):
        assert decided.rate_limited is rate_limited and decided.retry_after == wait
    if code and "<" not in code:
        assert code in decided.reason
    assert "<html>" not in decided.reason


async def test_blocks_are_sent_as_json(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    await channel.send(Message(text='a "quote"', blocks=BLOCKS))
    [call] = fake_slack.calls_for("chat.postMessage")
    blocks = call.body["blocks"]
    assert (json.loads(blocks) if isinstance(blocks, str) else blocks) == BLOCKS
    assert call.body["text"] == 'a "quote"'
