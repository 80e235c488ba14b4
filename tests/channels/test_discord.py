"""The Discord channel against the strict Discord fake: posts, embeds, escaping, limits, rate
limits, live-card edits, verify, and what its errors and settings show."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from relay.channels import REGISTRY
from relay.channels.base import Limits, Message, PermanentError, RetryableError, VerifyError
from relay.channels.discord import DiscordChannel, DiscordSettings
from relay.events import Event
from relay.render import Renderer
from tests.conftest import sample
from tests.fakes.discord import DEFAULT_TOKEN, DEFAULT_WEBHOOK_ID, FakeDiscord, hazards

HOSTILE_TITLE = "@everyone **bold** [click](https://evil.example) <@123> ||x|| `c` <@&9> @here"
NONE: dict[str, list[str]] = {"parse": []}


def channel_for(url: str, **extra: Any) -> DiscordChannel:
    settings = DiscordSettings.model_validate({"type": "discord", "webhook_url": url, **extra})
    return DiscordChannel("team-discord", settings, Path("."))


@pytest.fixture
async def discord(fake_discord: FakeDiscord, session: aiohttp.ClientSession) -> DiscordChannel:
    channel = channel_for(fake_discord.webhook_url())
    await channel.start(session)
    return channel


def render(payload: dict[str, Any], limits: Limits = DiscordChannel.limits) -> Message:
    renderer = Renderer({}, {}, run_url="https://mosaic.example/runs/{run_id}")
    return renderer.render(
        "discord",
        None,
        Event.model_validate(payload),
        event_id="evt-1",
        route="videos",
        channel="team-discord",
        limits=limits,
        run_started_at=1_000.0,
        now=1_065.0,
    )


def hostile_youtube() -> dict[str, Any]:
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_title"] = HOSTILE_TITLE
    payload["status_message"] = "# Heading\n> quote\n- list <t:1:R> :emoji: <:x:1>"
    return payload


def event_text(message: Any) -> list[str]:
    """Every piece of the message that carries event text in Discord markdown (the
    description without its own bold labels such as ``**Note:**``)."""
    [embed] = message.embeds
    description = re.sub(r"(?m)^\*\*[A-Za-z ]+:\*\* ", "", embed.get("description", ""))
    pieces = [message.content, embed["title"], description]
    return pieces + [f["value"] for f in embed["fields"] if f["name"] in ("Status", "Trigger")]


async def test_a_youtube_event_arrives_as_an_inert_embed(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    ref = await discord.send(render(hostile_youtube()))

    [message] = fake_discord.messages()
    assert ref is not None and (ref.channel_id, ref.message_id) == (DEFAULT_WEBHOOK_ID, message.id)
    assert message.allowed_mentions == NONE
    [embed] = message.embeds
    assert embed["color"] == 0x2EB67D
    assert embed["url"].startswith("https://mosaic.example/runs/")
    assert embed["thumbnail"]["url"].startswith("https://")
    assert embed["author"]["name"]
    names = [f["name"] for f in embed["fields"]]
    assert {"Status", "Trigger", "YouTube", "Outputs", "Elapsed"} <= set(names)
    for piece in event_text(message):
        assert hazards(piece) == [], piece
    assert "\\*\\*bold\\*\\*" in embed["title"] and "\\[click\\]" in embed["title"]
    assert "@\u200beveryone" in embed["title"] and "\\<@123\\>" in embed["title"]
    assert "\\[click\\](https://evil.example)" in embed["title"]  # shown as typed, no link
    youtube = next(f["value"] for f in embed["fields"] if f["name"] == "YouTube")
    assert youtube == "[Watch](https://www.youtube.com/watch?v=dQw4w9WgXcQ)"


async def test_every_request_carries_allowed_mentions_none(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    ref = await discord.send(Message(text="@everyone hi"))
    assert ref is not None
    await discord.edit(ref, Message(text="@here edited"))
    bodies = [c.body for c in fake_discord.calls]
    assert len(bodies) == 2 and all(b["allowed_mentions"] == NONE for b in bodies)


async def test_a_huge_event_is_cut_to_discord_limits_and_accepted(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    payload = hostile_youtube()
    payload["triggered_by"]["video_title"] = "**T** " * 2000
    payload["status_message"] = "[x](https://e.example) " * 1000
    payload["errors"] = [{"message": "e" * 5000} for _ in range(50)]
    payload["outputs"] = [
        {"video_url": f"https://cdn.example/{i}/{'a' * 900}.mp4"} for i in range(40)
    ]
    await discord.send(render(payload))  # the strict fake refuses anything over a limit

    [message] = fake_discord.messages()
    [embed] = message.embeds
    assert len(embed["title"]) <= 256 and embed["title"].endswith("…")
    assert len(embed["description"]) <= 4096
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    total = len(embed["title"]) + len(embed["description"]) + len(embed["author"]["name"])
    total += len(embed["footer"]["text"]) + sum(
        len(f["name"] + f["value"]) for f in embed["fields"]
    )
    assert total <= 6000
    for piece in event_text(message):
        assert hazards(piece) == [], piece


async def test_a_text_only_message_is_sent_as_content(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    await discord.send(Message(text="plain words"))
    [message] = fake_discord.messages()
    assert (message.content, message.embeds) == ("plain words", [])


async def test_a_live_card_is_posted_once_then_edited_with_patch(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    started = render(sample("run_started_youtube"))
    ref = await discord.send(started)
    assert ref is not None
    await discord.edit(ref, render(sample("run_progress")))
    await discord.edit(ref, render(sample("run_finished_completed_youtube")))

    assert [c.method for c in fake_discord.calls] == ["execute", "edit", "edit"]
    assert all(f"/messages/{ref.message_id}" in c.path for c in fake_discord.calls[1:])
    [card] = fake_discord.messages()
    assert len(card.history) == 2 and "Finished" in card.content


async def test_editing_a_deleted_message_is_permanent(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    from relay.channels.base import MessageRef

    with pytest.raises(PermanentError) as failed:
        await discord.edit(MessageRef(DEFAULT_WEBHOOK_ID, "77"), Message(text="x"))
    assert "10008" in failed.value.reason and "Unknown Message" in failed.value.reason


async def test_a_429_is_retryable_after_discords_fractional_retry_after(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    fake_discord.fail_next(status=429, retry_after=1.25)
    with pytest.raises(RetryableError) as limited:
        await discord.send(Message(text="x"))
    assert limited.value.rate_limited and limited.value.retry_after == 1.25
    fake_discord.fail_next(status=429, retry_after=0.5, is_global=True)
    with pytest.raises(RetryableError) as limited:
        await discord.send(Message(text="x"))
    assert limited.value.retry_after == 0.5 and "global" in limited.value.reason


async def test_an_emptied_bucket_makes_the_next_send_wait_unsent(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    fake_discord.empty_bucket_next(30.0)
    await discord.send(Message(text="first"))
    assert 29.0 < discord.resting_for() <= 30.0
    with pytest.raises(RetryableError) as resting:
        await discord.send(Message(text="second"))
    assert resting.value.rate_limited
    assert resting.value.retry_after is not None and 29.0 < resting.value.retry_after <= 30.0
    assert len(fake_discord.calls) == 1, "the second send never reached Discord"


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, RetryableError), (502, RetryableError), (403, PermanentError)],
)
async def test_http_failures_are_classified(
    fake_discord: FakeDiscord, discord: DiscordChannel, status: int, error: type[Exception]
) -> None:
    fake_discord.fail_next(status=status)
    with pytest.raises(error) as failed:
        await discord.send(Message(text="x"))
    assert not getattr(failed.value, "rate_limited", False)


async def test_a_refused_body_is_permanent_and_names_discords_reason(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    with pytest.raises(PermanentError) as refused:
        await discord.send(Message(text="x" * 2001))
    reason = refused.value.reason
    assert "50035" in reason and "Invalid Form Body" in reason and "content" in reason


async def test_wrong_token_and_unknown_webhook_are_permanent_and_show_no_secret(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = fake_discord.webhook_url(token="not-the-Token-5f4e3d")
    unknown = fake_discord.webhook_url("42", token="unknown-Token-9a8b7c")
    reasons = []
    for url, code in ((wrong, "50027"), (unknown, "10015")):
        channel = channel_for(url)
        await channel.start(session)
        with pytest.raises(PermanentError) as refused:
            await channel.send(Message(text="x"))
        assert code in refused.value.reason
        with pytest.raises(VerifyError) as unverified:
            await channel.verify()
        reasons += [refused.value.reason, unverified.value.reason, repr(channel), channel.rate_key]
    for text in [*reasons, caplog.text]:
        for secret in (wrong, unknown, "not-the-Token-5f4e3d", "unknown-Token-9a8b7c"):
            assert secret not in text


async def test_verify_gets_the_webhook_without_posting(
    fake_discord: FakeDiscord, discord: DiscordChannel
) -> None:
    found = await discord.verify()
    assert found == "webhook 'Video alerts' in channel 9876543210987654321"
    assert [c.method for c in fake_discord.calls] == ["get_webhook"]
    assert fake_discord.messages() == []


async def test_username_avatar_and_thread_are_sent(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    channel = channel_for(
        fake_discord.webhook_url(),
        username="Mosaic",
        avatar_url="https://cdn.example/a.png",
        thread_id=123456789,
    )
    await channel.start(session)
    await channel.send(Message(text="x"))
    [message] = fake_discord.messages()
    assert (message.username, message.thread_id) == ("Mosaic", "123456789")
    assert fake_discord.calls[0].body["avatar_url"] == "https://cdn.example/a.png"


def test_non_embed_blocks_are_not_sent_as_embeds() -> None:
    """The ``relay test`` marker block is Slack's shape; the marker is in the content."""
    channel = channel_for("https://discord.com/api/webhooks/1/tok")
    note = {"type": "context", "elements": [{"type": "mrkdwn", "text": "[relay test]"}]}
    payload = channel._payload(Message(text="[relay test] x", blocks=[note, {"type": "rich"}]))
    assert payload["embeds"] == [{"type": "rich"}] and payload["content"] == "[relay test] x"


@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/webhooks/123/abc-DEF",
        "https://discordapp.com/api/webhooks/123/abc",
        "https://discord.com/api/v10/webhooks/123/abc/",
        "http://127.0.0.1:8080/api/webhooks/1/t",
    ],
)
def test_webhook_urls_accepted(url: str) -> None:
    settings = DiscordSettings.model_validate({"type": "discord", "webhook_url": url})
    assert url.rstrip("/") == settings.webhook_url.get_secret_value()
    assert "abc" not in repr(settings) and "abc" not in repr(channel_for(url))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://discord.com/api/webhooks/1/secret-tok",
        "https://discord.com/api/channels/1/secret-tok",
        "https://discord.com/api/webhooks/1/secret-tok?wait=true",
        "discord.com/api/webhooks/1/secret-tok",
    ],
)
def test_bad_webhook_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DiscordSettings.model_validate({"type": "discord", "webhook_url": url})
    shown = str(refused.value.errors(include_url=False, include_input=False))  # as config shows
    assert "Discord webhook URL" in shown and "secret-tok" not in shown


def test_registered_with_a_per_webhook_rate_limit() -> None:
    kind = REGISTRY["discord"]
    assert kind.settings is DiscordSettings
    first = channel_for("https://discord.com/api/webhooks/1/aaaa")
    second = channel_for("https://discord.com/api/webhooks/2/bbbb")
    assert first.rate_key != second.rate_key
    assert DiscordChannel.default_rate_limit is not None
    assert DiscordChannel.default_rate_limit.burst == 5
    assert DiscordChannel.default_rate_limit.per_second * 60 <= 30
    secret = channel_for("http://127.0.0.1/api/webhooks/1/" + DEFAULT_TOKEN)
    assert DEFAULT_TOKEN not in secret.rate_key and "/webhooks/" not in secret.rate_key
