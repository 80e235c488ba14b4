"""FakeSlack driven through the real slack-sdk clients."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.fixtures import clear_proxy_env
from tests.fakes.slack import FakeSlack

REPO_ROOT = Path(__file__).resolve().parents[2]

TOKEN = "xoxb-test-token"
CHANNEL = "#video-alerts"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> AsyncWebClient:
    return AsyncWebClient(TOKEN, base_url=fake_slack.api_url, session=session, retry_handlers=[])


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


async def test_post_message_answers_like_slack_and_records_the_call(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]
    answer = await client.chat_postMessage(channel=CHANNEL, text="Run done", blocks=blocks)

    assert answer["ok"] is True
    assert answer["channel"] == "C0VIDEO"
    assert isinstance(answer["ts"], str)
    assert answer["message"]["text"] == "Run done"
    assert answer["message"]["blocks"] == blocks
    [message] = fake_slack.messages("C0VIDEO")
    assert (message.ts, message.text, message.blocks) == (answer["ts"], "Run done", blocks)
    [call] = fake_slack.calls
    assert call.method == "chat.postMessage"
    assert call.body == {"channel": CHANNEL, "text": "Run done", "blocks": blocks}
    assert call.headers["Authorization"] == "<redacted>"
    assert call.headers["Content-Type"].startswith("application/json")
    assert TOKEN not in repr(call)


async def test_ts_is_unique_and_increasing_even_when_the_clock_stalls(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proxy_env(monkeypatch)
    async with FakeSlack(clock=lambda: 1_700_000_000.0) as slack:
        client = AsyncWebClient(TOKEN, base_url=slack.api_url, session=session, retry_handlers=[])
        stamps = [
            (await client.chat_postMessage(channel=CHANNEL, text=f"m{i}"))["ts"] for i in range(3)
        ]
    assert stamps == ["1700000000.000000", "1700000000.000001", "1700000000.000002"]


async def test_auth_test(client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert answer["ok"] is True
    assert answer["user_id"] == "U0FAKEBOT"


async def test_scopes_are_announced_and_enforced(session: aiohttp.ClientSession) -> None:
    reader = "xoxb-reader"
    async with FakeSlack(tokens=[TOKEN, reader], scopes={reader: {"channels:read"}}) as slack:
        client = AsyncWebClient(TOKEN, base_url=slack.api_url, session=session, retry_handlers=[])
        answer = await client.auth_test()
        assert answer.headers["X-OAuth-Scopes"] == "channels:read,chat:write,groups:read"
        only_reads = AsyncWebClient(
            reader, base_url=slack.api_url, session=session, retry_handlers=[]
        )
        refused = await slack_error(only_reads.chat_postMessage(channel=CHANNEL, text="x"))
        assert refused.response.data == {
            "ok": False,
            "error": "missing_scope",
            "needed": "chat:write",
            "provided": "channels:read",
        }
        assert refused.response.headers["X-OAuth-Scopes"] == "channels:read"
        assert slack.messages(CHANNEL) == []


async def test_conversations_info_takes_an_id(client: AsyncWebClient) -> None:
    answer = await client.conversations_info(channel="C0VIDEO")
    channel = answer["channel"]
    assert (channel["id"], channel["name"], channel["is_member"]) == (
        "C0VIDEO",
        "video-alerts",
        True,
    )
    assert (channel["is_private"], channel["is_archived"]) == (False, False)
    by_name = await slack_error(client.conversations_info(channel=CHANNEL))
    assert by_name.response["error"] == "channel_not_found"


async def test_conversations_list_pages_and_filters(session: aiohttp.ClientSession) -> None:
    channels = {"#a": "C0AAAAAA", "#b": "C0BBBBBB", "#c": "C0CCCCCC"}
    async with FakeSlack(channels=channels, not_member=["#b"], archived=["#c"]) as slack:
        client = AsyncWebClient(TOKEN, base_url=slack.api_url, session=session, retry_handlers=[])
        first = await client.conversations_list(limit=2)
        assert [(c["name"], c["is_member"]) for c in first["channels"]] == [
            ("a", True),
            ("b", False),
        ]
        cursor = first["response_metadata"]["next_cursor"]
        rest = await client.conversations_list(limit=2, cursor=cursor)
        assert [(c["name"], c["is_archived"]) for c in rest["channels"]] == [("c", True)]
        assert rest["response_metadata"]["next_cursor"] == ""
        live = await client.conversations_list(exclude_archived=True)
        assert [c["name"] for c in live["channels"]] == ["a", "b"]
        assert (await client.conversations_list(types="im"))["channels"] == []
        bad = await slack_error(client.conversations_list(cursor="bm90IG91cnM="))
        assert bad.response["error"] == "invalid_cursor"
        [call] = [c for c in slack.calls if c.body.get("types") == "im"]
        assert call.method == "conversations.list" and call.path == "/api/conversations.list"


async def test_posting_outside_the_channel_needs_chat_write_public(
    session: aiohttp.ClientSession,
) -> None:
    public = "xoxb-public"
    scopes = {public: {"chat:write", "chat:write.public"}}
    channels = {"#video-alerts": "C0VIDEO", "#old": "C0ARCHIVED"}
    async with FakeSlack(
        tokens=[TOKEN, public],
        channels=channels,
        not_member=[CHANNEL],
        archived=["#old"],
        scopes=scopes,
    ) as slack:
        member = AsyncWebClient(TOKEN, base_url=slack.api_url, session=session, retry_handlers=[])
        outsider = AsyncWebClient(
            public, base_url=slack.api_url, session=session, retry_handlers=[]
        )
        refused = await slack_error(member.chat_postMessage(channel=CHANNEL, text="x"))
        assert refused.response["error"] == "not_in_channel"
        assert (await outsider.chat_postMessage(channel=CHANNEL, text="x"))["ok"] is True
        archived = await slack_error(outsider.chat_postMessage(channel="#old", text="x"))
        assert archived.response["error"] == "is_archived"
        assert [m.text for m in slack.messages(CHANNEL)] == ["x"]


async def test_form_body_with_json_string_blocks(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [{"type": "divider"}]
    data = {"channel": "C0VIDEO", "text": "form", "blocks": json.dumps(blocks)}
    answer = await client.api_call("chat.postMessage", data=data)
    assert answer["channel"] == "C0VIDEO"
    assert fake_slack.messages(CHANNEL)[0].blocks == blocks


async def test_update_replaces_text_keeps_blocks_and_keeps_history(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "Run"}}]
    posted = await client.chat_postMessage(channel=CHANNEL, text="running", blocks=blocks)
    answer = await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="done")

    assert (answer["ts"], answer["text"]) == (posted["ts"], "done")
    [message] = fake_slack.messages(CHANNEL)
    assert message.text == "done"
    assert message.blocks == blocks
    assert [v.text for v in message.history] == ["running"]
    assert message.edited

    await client.chat_update(channel="C0VIDEO", ts=posted["ts"], text="cleared", blocks=[])
    assert fake_slack.messages(CHANNEL)[0].blocks is None


async def test_update_errors(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="x")
    by_name = await slack_error(client.chat_update(channel=CHANNEL, ts=posted["ts"], text="y"))
    assert by_name.response["error"] == "channel_not_found"
    unknown = await slack_error(
        client.chat_update(channel="C0VIDEO", ts="1700000000.000001", text="y")
    )
    assert unknown.response["error"] == "message_not_found"
    no_ts = await slack_error(
        client.api_call("chat.update", json={"channel": "C0VIDEO", "text": "y"})
    )
    assert no_ts.response["error"] == "message_not_found"


async def test_thread_reply_and_broadcast(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="parent")
    reply = await client.chat_postMessage(
        channel=CHANNEL, text="reply", thread_ts=parent["ts"], reply_broadcast=True
    )
    assert reply["message"]["thread_ts"] == parent["ts"]
    [stored] = fake_slack.replies(CHANNEL, parent["ts"])
    assert (stored.text, stored.reply_broadcast, stored.orphan) == ("reply", True, False)

    orphan = await client.chat_postMessage(
        channel=CHANNEL, text="lost", thread_ts="1600000000.000001"
    )
    assert fake_slack.replies(CHANNEL, "1600000000.000001")[0].orphan
    assert orphan["ok"] is True
    bad_ts = await slack_error(
        client.api_call(
            "chat.postMessage", json={"channel": CHANNEL, "text": "x", "thread_ts": 1.5}
        )
    )
    assert bad_ts.response["error"] == "invalid_thread_ts"


async def test_auth_errors(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    wrong = AsyncWebClient(
        "xoxb-wrong", base_url=fake_slack.api_url, session=session, retry_handlers=[]
    )
    assert (await slack_error(wrong.chat_postMessage(channel=CHANNEL, text="x"))).response[
        "error"
    ] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=fake_slack.api_url, session=session, retry_handlers=[])
    assert (await slack_error(anonymous.auth_test())).response["error"] == "not_authed"
    in_body = await slack_error(
        anonymous.api_call(
            "chat.postMessage", data={"channel": CHANNEL, "text": "x", "token": TOKEN}
        )
    )
    assert in_body.response["error"] == "not_authed"
    assert TOKEN not in repr(fake_slack.calls)
    assert fake_slack.messages(CHANNEL) == []


async def test_channel_errors(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proxy_env(monkeypatch)
    channels = {"#video-alerts": "C0VIDEO", "#private": "C0PRIV"}
    async with FakeSlack(channels=channels, not_member=["#private"]) as slack:
        client = AsyncWebClient(TOKEN, base_url=slack.api_url, session=session, retry_handlers=[])
        missing = await slack_error(client.chat_postMessage(channel="#nope", text="x"))
        assert missing.response["error"] == "channel_not_found"
        outside = await slack_error(client.chat_postMessage(channel="C0PRIV", text="x"))
        assert outside.response["error"] == "not_in_channel"
        assert missing.response.status_code == 200


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "x", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        (
            {
                "text": "x",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}],
            },
            "invalid_blocks",
        ),
        (
            {
                "text": "x",
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "y" * 151}}],
            },
            "invalid_blocks",
        ),
        (
            {"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "y"}}]},
            "invalid_blocks",
        ),
        (
            {"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]},
            "invalid_blocks",
        ),
        (
            {
                "text": "x",
                "blocks": [
                    {"type": "divider", "block_id": "a"},
                    {"type": "divider", "block_id": "a"},
                ],
            },
            "invalid_blocks",
        ),
        (
            {"text": "x", "blocks": [{"type": "image", "image_url": "https://x/y.png"}]},
            "invalid_blocks",
        ),
        ({"text": "x", "blocks": [{"type": "nonsense"}]}, "invalid_blocks"),
        ({"text": "x", "blocks": "not json"}, "invalid_blocks_format"),
        ({}, "no_text"),
        ({"text": ""}, "no_text"),
    ],
)
async def test_content_errors(client: AsyncWebClient, payload: dict[str, Any], error: str) -> None:
    failure = await slack_error(
        client.api_call("chat.postMessage", json={"channel": CHANNEL, **payload})
    )
    assert failure.response["error"] == error


async def test_limits_are_inclusive(client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3000}}] + [
        {"type": "divider"}
    ] * 48
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "h" * 150}})
    answer = await client.chat_postMessage(channel=CHANNEL, text="x" * 40_000, blocks=blocks)
    assert answer["ok"] is True


async def test_invalid_blocks_explains_where(client: AsyncWebClient) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}},
    ]
    failure = await slack_error(client.chat_postMessage(channel=CHANNEL, text="x", blocks=blocks))
    assert failure.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]"
    ]


async def test_unknown_method(client: AsyncWebClient) -> None:
    failure = await slack_error(client.api_call("chat.nonsense", json={}))
    assert (failure.response.status_code, failure.response["error"]) == (404, "unknown_method")


async def test_rate_limit_then_recovery(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    fake_slack.fail_next(1, status=429, retry_after=7)
    limited = await slack_error(client.chat_postMessage(channel=CHANNEL, text="x"))
    assert limited.response.status_code == 429
    assert limited.response["error"] == "ratelimited"
    assert limited.response.headers["Retry-After"] == "7"
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"] is True
    assert [m.text for m in fake_slack.messages(CHANNEL)] == ["x"]
    assert [c.status for c in fake_slack.calls] == [429, 200]


async def test_faults_per_method_and_server_errors(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.fail_next(2, status=503, method="chat.update")
    posted = await client.chat_postMessage(channel=CHANNEL, text="x")
    for _ in range(2):
        failure = await slack_error(
            client.chat_update(channel="C0VIDEO", ts=posted["ts"], text="y")
        )
        assert (failure.response.status_code, failure.response["error"]) == (
            503,
            "service_unavailable",
        )
        assert "Retry-After" not in failure.response.headers
    assert (await client.chat_update(channel="C0VIDEO", ts=posted["ts"], text="y"))["ok"] is True


async def test_error_of_choice(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    fake_slack.error_next("is_archived")
    failure = await slack_error(client.chat_postMessage(channel=CHANNEL, text="x"))
    assert (failure.response.status_code, failure.response["error"]) == (200, "is_archived")


async def test_down_mode_drops_then_refuses_then_recovers(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.auth_test()
    await fake_slack.go_down()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert fake_slack.calls[-1].status is None

    await fake_slack.go_down(refuse=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel=CHANNEL, text="x")

    await fake_slack.go_up()
    assert (await client.chat_postMessage(channel=CHANNEL, text="back"))["ok"] is True
    assert [m.text for m in fake_slack.messages(CHANNEL)] == ["back"]


async def test_webhook_posts(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    hook = AsyncWebhookClient(fake_slack.webhook_url(CHANNEL), session=session)
    answer = await hook.send(text="hello", blocks=[{"type": "divider"}])
    assert (answer.status_code, answer.body) == (200, "ok")
    [message] = fake_slack.messages("C0VIDEO")
    assert (message.text, message.via_webhook) == ("hello", True)
    [call] = fake_slack.calls
    assert call.method == "webhook"
    assert call.path.endswith("/<redacted>")
    assert fake_slack.webhook_url().rsplit("/", 1)[1] not in call.path


async def test_webhook_errors(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    unknown = AsyncWebhookClient(f"{fake_slack.url}/services/T0/B0/nope", session=session)
    assert ((r := await unknown.send(text="x")).status_code, r.body) == (404, "no_service")
    hook = AsyncWebhookClient(fake_slack.webhook_url(), session=session)
    assert ((r := await hook.send_dict({"username": "x"})).status_code, r.body) == (400, "no_text")
    bad_blocks = await hook.send(text="x", blocks=[{"type": "divider"}] * 51)
    assert (bad_blocks.status_code, bad_blocks.body) == (400, "invalid_blocks")
    async with session.post(
        fake_slack.webhook_url(), data=b"{", headers={"Content-Type": "application/json"}
    ) as raw:
        assert (raw.status, await raw.text()) == (400, "invalid_payload")
    fake_slack.fail_next(1, method="webhook")
    limited = await hook.send(text="x")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert (await hook.send(text="x")).status_code == 200


async def test_webhook_message_cannot_be_updated(
    fake_slack: FakeSlack, client: AsyncWebClient, session: aiohttp.ClientSession
) -> None:
    await AsyncWebhookClient(fake_slack.webhook_url(), session=session).send(text="hook")
    ts = fake_slack.messages(CHANNEL)[0].ts
    failure = await slack_error(client.chat_update(channel="C0VIDEO", ts=ts, text="y"))
    assert failure.response["error"] == "cant_update_message"


async def test_wait_for_count_and_predicate(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    async def post_later() -> None:
        for i in range(3):
            await client.chat_postMessage(channel=CHANNEL, text=f"m{i}")

    task = asyncio.create_task(post_later())
    calls = await fake_slack.wait_for(3, method="chat.postMessage", timeout=5)
    assert len(calls) == 3
    await fake_slack.wait_for(lambda: len(fake_slack.messages(CHANNEL)) == 3, timeout=5)
    await task


async def test_wait_for_times_out(fake_slack: FakeSlack) -> None:
    with pytest.raises(TimeoutError, match="condition not met"):
        await fake_slack.wait_for(1, timeout=0.05)


async def test_runs_by_hand(
    monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession
) -> None:
    clear_proxy_env(monkeypatch)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.slack",
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            first = (await proc.stdout.readline()).decode()
            assert first.startswith("fake slack listening on http://127.0.0.1:")
            url = first.split()[-1]
            client = AsyncWebClient(
                TOKEN, base_url=f"{url}/api/", session=session, retry_handlers=[]
            )
            await client.chat_postMessage(channel=CHANNEL, text="by hand")
            while "chat.postMessage" not in (line := (await proc.stdout.readline()).decode()):
                assert line, "the fake exited"
        assert "-> 200" in line and "by hand" in line and TOKEN not in line
    finally:
        proc.terminate()
        await proc.wait()
