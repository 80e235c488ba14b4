"""FakeDiscord driven with plain HTTP requests, as Discord's webhook API is used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord import DEFAULT_TOKEN, DEFAULT_WEBHOOK_ID, FakeDiscord, hazards

NONE: dict[str, list[str]] = {"parse": []}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **params: str
) -> tuple[int, Any, Any]:
    async with http.request(method, url, json=body, params=params) as response:
        data = await response.json() if response.status != 204 else None
        return response.status, data, response.headers


async def test_post_with_wait_answers_the_message_and_records_it(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    embed = {"title": "Run done", "color": 0x2EB67D, "fields": [{"name": "A", "value": "b"}]}
    body = {"content": "hi", "embeds": [embed], "allowed_mentions": NONE}
    status, data, headers = await call(http, "POST", fake_discord.webhook_url(), body, wait="true")

    assert status == 200
    assert data["content"] == "hi" and data["embeds"] == [embed]
    assert data["webhook_id"] == DEFAULT_WEBHOOK_ID
    assert headers["X-RateLimit-Bucket"] and headers["X-RateLimit-Remaining"] == "4"
    [message] = fake_discord.messages()
    assert message.id == data["id"] and message.allowed_mentions == NONE
    [logged] = fake_discord.calls
    assert logged.method == "execute"
    assert DEFAULT_TOKEN not in logged.path and "<redacted>" in logged.path


async def test_post_without_wait_answers_204(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await call(
        http, "POST", fake_discord.webhook_url(), {"content": "x", "allowed_mentions": NONE}
    )
    assert status == 204 and len(fake_discord.messages()) == 1


async def test_patch_edits_a_message_and_keeps_its_history(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    url = fake_discord.webhook_url()
    _, posted, _ = await call(
        http, "POST", url, {"content": "v1", "allowed_mentions": NONE}, wait="true"
    )
    status, data, _ = await call(
        http, "PATCH", f"{url}/messages/{posted['id']}", {"content": "v2", "allowed_mentions": NONE}
    )
    assert status == 200 and data["content"] == "v2" and data["edited_timestamp"]
    [message] = fake_discord.messages()
    assert message.content == "v2" and [v.content for v in message.history] == ["v1"]

    status, data, _ = await call(
        http, "PATCH", f"{url}/messages/424242", {"content": "v3", "allowed_mentions": NONE}
    )
    assert (status, data["code"], data["message"]) == (404, 10008, "Unknown Message")

    renamed = {"content": "v3", "username": "Other", "allowed_mentions": NONE}
    status, data, _ = await call(http, "PATCH", f"{url}/messages/{posted['id']}", renamed)
    assert (status, data["code"]) == (400, 50035) and "username" in data["errors"]


async def test_get_webhook_and_credential_errors(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, data, _ = await call(http, "GET", fake_discord.webhook_url())
    assert status == 200 and data["id"] == DEFAULT_WEBHOOK_ID and data["name"]

    wrong = fake_discord.webhook_url(token="wrong-token")
    status, data, _ = await call(http, "POST", wrong, {"content": "x", "allowed_mentions": NONE})
    assert (status, data["code"]) == (401, 50027)
    unknown = fake_discord.webhook_url("999", token="x")
    status, data, _ = await call(http, "GET", unknown)
    assert (status, data["code"], data["message"]) == (404, 10015, "Unknown Webhook")
    assert fake_discord.messages() == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"content": "x"}, "allowed_mentions"),
        ({"content": "x" * 2001, "allowed_mentions": NONE}, "content"),
        ({"embeds": [{"title": "t"}] * 11, "allowed_mentions": NONE}, "embeds"),
        ({"embeds": [{"title": "t" * 257}], "allowed_mentions": NONE}, "embeds"),
        ({"embeds": [{"description": "d" * 4097}], "allowed_mentions": NONE}, "embeds"),
        (
            {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}], "allowed_mentions": NONE},
            "embeds",
        ),
        (
            {
                "embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}],
                "allowed_mentions": NONE,
            },
            "embeds",
        ),
        (
            {"embeds": [{"fields": [{"name": "n", "value": ""}]}], "allowed_mentions": NONE},
            "embeds",
        ),
        ({"embeds": [{"description": "d" * 4000}] * 2, "allowed_mentions": NONE}, "embeds"),
        ({"embeds": [{"footer": {"text": "f" * 2049}}], "allowed_mentions": NONE}, "embeds"),
        ({"embeds": [{"url": "javascript:alert(1)"}], "allowed_mentions": NONE}, "embeds"),
        ({"content": "x", "nonsense": 1, "allowed_mentions": NONE}, "nonsense"),
    ],
)
async def test_invalid_bodies_are_refused_like_discord(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession, body: dict[str, Any], path: str
) -> None:
    status, data, _ = await call(http, "POST", fake_discord.webhook_url(), body, wait="true")
    assert (status, data["code"], data["message"]) == (400, 50035, "Invalid Form Body")
    assert path in data["errors"]
    assert fake_discord.messages() == []


async def test_empty_message_is_refused(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, data, _ = await call(
        http, "POST", fake_discord.webhook_url(), {"content": "", "allowed_mentions": NONE}
    )
    assert (status, data["code"]) == (400, 50006)


async def test_scripted_429_and_500(fake_discord: FakeDiscord, http: aiohttp.ClientSession) -> None:
    body = {"content": "x", "allowed_mentions": NONE}
    fake_discord.fail_next(status=429, retry_after=0.75)
    fake_discord.fail_next(status=500, method="execute")
    status, data, headers = await call(http, "POST", fake_discord.webhook_url(), body)
    assert status == 429
    assert data == {"message": "You are being rate limited.", "retry_after": 0.75, "global": False}
    assert headers["Retry-After"] == "1" and headers["X-RateLimit-Reset-After"] == "0.750"
    assert headers["X-RateLimit-Remaining"] == "0"
    status, _, _ = await call(http, "POST", fake_discord.webhook_url(), body)
    assert status == 500
    status, _, _ = await call(http, "POST", fake_discord.webhook_url(), body)
    assert status == 204
    assert [c.status for c in fake_discord.calls] == [429, 500, 204]


async def test_an_emptied_bucket_answers_429_until_it_resets(http: aiohttp.ClientSession) -> None:
    now = [100.0]
    body = {"content": "x", "allowed_mentions": NONE}
    async with FakeDiscord(clock=lambda: now[0]) as discord:
        discord.empty_bucket_next(0.5)
        status, _, headers = await call(http, "POST", discord.webhook_url(), body)
        assert status == 204 and headers["X-RateLimit-Remaining"] == "0"
        assert headers["X-RateLimit-Reset-After"] == "0.500"
        status, data, _ = await call(http, "POST", discord.webhook_url(), body)
        assert status == 429 and data["retry_after"] == pytest.approx(0.5)
        now[0] += 0.5
        status, _, _ = await call(http, "POST", discord.webhook_url(), body)
        assert status == 204


def test_hazards_finds_live_markdown_only() -> None:
    assert hazards(r"\*\*bold\*\* \[x\](https://e.example) \<@1\>" + " @\u200beveryone") == []
    assert hazards("see https://www.youtube.com/watch?v=a_b_c") == []
    for live in ("**b**", "[x](https://e.example)", "<@123>", "@everyone", "# h", "||s||"):
        assert hazards(live), live
