"""Mosaic webhooks through the relay to the Discord fake: every sample posts an embed, a hostile
YouTube title arrives inert, a 429's fractional ``retry_after`` is waited out by the dispatcher
(without using up an attempt), and a ``mode: card`` route posts one message and edits it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay.app import RELAY, build_app
from relay.config import load_config
from tests.conftest import sample, sample_names, wait_until
from tests.fakes.discord import FakeDiscord, hazards

Client = TestClient[Any, web.Application]
RUN = "5e1f0000-aaaa-4bbb-8ccc-0000000000d1"
HOSTILE_TITLE = "@everyone **bold** [click](https://evil.example) <@123>"


def config_text(discord: FakeDiscord, *, mode: str = "post") -> str:
    return f"""
auth: {{allow_unsigned: true}}
store: {{url: "sqlite:///relay.db", sync: normal}}
delivery: {{workers: 2, max_attempts: 1, backoff: {{initial: 10ms, max: 50ms}}, shutdown_grace: 1s}}
channels:
  team-discord:
    type: discord
    webhook_url: {discord.webhook_url()}
    rate_limit: off
routes:
  - name: everything
    to: [team-discord]
    mode: {mode}
    card_interval: 0s
"""


@pytest.fixture
async def start_relay(
    tmp_path: Path, fake_discord: FakeDiscord
) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    clients: list[Client] = []

    async def start(mode: str = "post") -> Client:
        path = tmp_path / "relay.yaml"
        path.write_text(config_text(fake_discord, mode=mode))
        client: Client = TestClient(TestServer(build_app(load_config(path, env={}))))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def post(client: Client, body: dict[str, Any]) -> None:
    answer = await client.post("/webhooks/mosaic", data=json.dumps(body))
    assert answer.status in (200, 202), await answer.text()


async def settled(client: Client) -> dict[str, int]:
    store = client.app[RELAY].store

    async def idle() -> bool:
        return all(row.state in ("sent", "dead") for row in await store.status())

    await wait_until(idle, timeout=15)
    return {row.state: row.count for row in await store.status()}


async def test_every_sample_reaches_discord_as_an_embed(
    start_relay: Callable[..., Awaitable[Client]], fake_discord: FakeDiscord
) -> None:
    client = await start_relay()
    names = [name for name in sample_names() if name != "test"]
    for name in names:
        await post(client, sample(name))
    await settled(client)

    messages = fake_discord.messages()
    assert len(messages) == len(names)
    assert all(m.embeds and m.allowed_mentions == {"parse": []} for m in messages)
    sends = [c for c in fake_discord.calls if c.method != "get_webhook"]  # the start-up check
    assert sends and all(call.body["allowed_mentions"] == {"parse": []} for call in sends)
    youtube = [m for m in messages if "Never Gonna Give You Up" in m.embeds[0]["title"]]
    assert youtube and any(
        f["value"] == "[Watch](https://www.youtube.com/watch?v=dQw4w9WgXcQ)"
        for f in youtube[0].embeds[0]["fields"]
    )


async def test_a_hostile_youtube_title_arrives_inert(
    start_relay: Callable[..., Awaitable[Client]], fake_discord: FakeDiscord
) -> None:
    client = await start_relay()
    body = sample("run_finished_completed_youtube")
    body["triggered_by"]["video_title"] = HOSTILE_TITLE
    await post(client, body)
    await settled(client)

    [message] = fake_discord.messages()
    title = message.embeds[0]["title"]
    assert hazards(title) == [] and hazards(message.content) == []
    assert "@\u200beveryone \\*\\*bold\\*\\* \\[click\\](https://evil.example) \\<@123\\>" in title


async def test_a_429_retry_after_is_waited_out_and_uses_no_attempt(
    start_relay: Callable[..., Awaitable[Client]], fake_discord: FakeDiscord
) -> None:
    fake_discord.fail_next(status=429, retry_after=0.4, method="execute")
    client = await start_relay()
    await post(client, sample("run_finished_failed"))
    states = await settled(client)

    assert states == {"sent": 1}, "max_attempts is 1: a counted 429 would have dead-lettered"
    limited, sent = fake_discord.calls_for("execute")
    assert (limited.status, sent.status) == (429, 200)
    assert sent.received_at - limited.received_at >= 0.4
    assert len(fake_discord.messages()) == 1


async def test_a_card_route_posts_once_and_edits_with_patch(
    start_relay: Callable[..., Awaitable[Client]], fake_discord: FakeDiscord
) -> None:
    client = await start_relay(mode="card")
    started = sample("run_started_youtube") | {"run_id": RUN}
    progress = sample("run_progress") | {"run_id": RUN, "agent_id": started["agent_id"]}
    finished = sample("run_finished_completed_youtube") | {
        "run_id": RUN,
        "agent_id": started["agent_id"],
    }
    for body in (started, progress, finished):
        await post(client, body)
        await settled(client)

    sends = [c for c in fake_discord.calls if c.method != "get_webhook"]  # the start-up check
    assert [c.method for c in sends] == ["execute", "edit", "edit"]
    [card] = fake_discord.messages()
    assert all(f"/messages/{card.id}" in c.path for c in sends[1:])
    assert len(card.history) == 2
    assert card.content.startswith("✅ Finished")
    assert [v.content.split(":")[0] for v in card.history] == ["🚀 Started", "⏳ Running"]


async def test_an_emptied_bucket_holds_the_next_send_until_it_resets(
    start_relay: Callable[..., Awaitable[Client]], fake_discord: FakeDiscord
) -> None:
    client = await start_relay()
    fake_discord.empty_bucket_next(0.4)
    await post(client, sample("run_finished_failed"))
    await settled(client)
    await post(client, sample("run_cancelled_manual"))
    states = await settled(client)

    assert states == {"sent": 2}
    first, second = fake_discord.calls_for("execute")
    assert (first.status, second.status) == (200, 200), "no request earned a 429"
    assert second.received_at - first.received_at >= 0.4
