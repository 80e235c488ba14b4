"""Telegram's webhook: presses with the secret token reach ``Actions``; nothing else does."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from relay.actions.model import Button
from relay.actions.perform import ACTIONS_KEY
from relay.actions.telegram import (
    MAX_BODY_BYTES,
    SECRET_HEADER,
    TelegramSurface,
    add_telegram_route,
)
from relay.admin import FailedAuthLimiter
from relay.channels.base import Message, MessageRef
from relay.channels.telegram import TelegramChannel, TelegramSettings
from relay.config import RelayConfig
from tests.actions.stubs import Clock, RecordingActions
from tests.fakes.telegram import DEFAULT_CHAT_ID, DEFAULT_TOKEN, FakeTelegram

Client = TestClient[Any, web.Application]
SECRET = "tg_secret-0123456789abcdef"
PATH = "/actions/telegram"
CHAT = str(DEFAULT_CHAT_ID)
VALUE = "ma1:AAAAAAAAAAAAAAAAAAAAAA"
BUTTON = Button("resume", "Resume", VALUE)
OTHER_TOKEN = "654321:OTHER-token"
FAILURES = 3


def config(
    telegram: FakeTelegram, bots: dict[str, str] | None = None, *, actions: bool = True
) -> RelayConfig:
    """A config with one Telegram channel per ``{name: token}`` of ``bots`` (default: ``ops``
    on the fake's token), and ``actions.telegram`` unless ``actions`` is false."""
    tokens = bots or {"ops": DEFAULT_TOKEN}
    data: dict[str, Any] = {
        "server": {"read_timeout": "300ms"},
        "channels": {
            name: {"type": "telegram", "token": token, "chat_id": CHAT, "api_url": telegram.url}
            for name, token in tokens.items()
        },
    }
    if actions:
        data["actions"] = {"telegram": {"secret_token": SECRET, "path": PATH}}
    return RelayConfig.model_validate(data)


@dataclass
class Rig:
    client: Client
    actions: RecordingActions
    telegram: FakeTelegram
    serving: list[RelayConfig]
    """The config serving now (replace ``serving[0]`` to reload)."""
    channels: dict[str, TelegramChannel]
    clock: Clock

    async def post(
        self, update: Any, *, secret: str | None = SECRET, query: str = "", **options: Any
    ) -> aiohttp.ClientResponse:
        headers = {} if secret is None else {SECRET_HEADER: secret}
        data = update if isinstance(update, bytes) else json.dumps(update).encode()
        return await self.client.post(
            PATH + query,
            data=data,
            headers={"Content-Type": "application/json", **headers},
            **options,
        )

    async def sent_with_button(self, **message: Any) -> MessageRef:
        ref = await self.channels["ops"].send(
            Message(text="run failed", buttons=(BUTTON,), **message)
        )
        assert ref is not None
        return ref

    def press(self, ref: MessageRef, **options: Any) -> dict[str, Any]:
        return self.telegram.press(CHAT, int(ref.message_id.removesuffix(":photo")), **options)


@pytest.fixture
async def rig(
    fake_telegram: FakeTelegram, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Rig]:
    fake_telegram.tokens.add(OTHER_TOKEN)
    serving = [config(fake_telegram)]
    clock = Clock(1_000.0)
    limiter = FailedAuthLimiter(failures=FAILURES, window=60, clock=clock)
    actions = RecordingActions()
    channels: dict[str, TelegramChannel] = {}
    async with aiohttp.ClientSession() as session:
        for name, token in (("ops", DEFAULT_TOKEN), ("other", OTHER_TOKEN)):
            settings = config(fake_telegram, {name: token}).channels[name]
            assert isinstance(settings, TelegramSettings)
            channels[name] = TelegramChannel(name, settings, Path("."))
            await channels[name].start(session)
        app = web.Application()
        app[ACTIONS_KEY] = actions
        add_telegram_route(
            app, PATH, config=lambda: serving[0], channel=channels.get, limiter=limiter
        )
        client = await aiohttp_client(app)
        yield Rig(client, actions, fake_telegram, serving, channels, clock)
        for channel in channels.values():
            await channel.close()


async def test_a_press_with_the_secret_reaches_actions_with_who_and_where(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    response = await rig.post(rig.press(ref, user_id=123456789, username="alice"))

    assert response.status == 200 and await response.read() == b""
    assert "Set-Cookie" not in response.headers
    [pressed] = rig.actions.presses
    assert pressed.value == VALUE
    assert (pressed.presser.source, pressed.presser.user_id) == ("telegram", "123456789")
    assert pressed.presser.name == "alice"
    assert pressed.message == MessageRef(CHAT, ref.message_id)
    assert isinstance(pressed.surface, TelegramSurface)
    assert rig.telegram.calls_for("answerCallbackQuery") == []  # the executor answers


async def test_the_presser_is_named_by_first_name_without_a_username(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    await rig.post(rig.press(ref, username=None, first_name="Bob\nSmith"))
    assert rig.actions.presses[0].presser.name == "Bob Smith"


async def test_a_photo_is_named_as_the_channel_names_its_refs(rig: Rig) -> None:
    ref = await rig.sent_with_button(image_url="https://cdn.test/t.jpg")
    assert ref.message_id.endswith(":photo")
    await rig.post(rig.press(ref))
    assert rig.actions.presses[0].message == ref


async def test_the_surface_answers_and_takes_the_buttons_off(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    update = rig.press(ref)
    await rig.post(update)
    surface = rig.actions.presses[0].surface

    await surface.answer("Resumed.")
    await surface.remove_buttons()

    query = rig.telegram.queries[update["callback_query"]["id"]]
    [answer] = query.answers
    assert answer["text"] == "Resumed." and str(answer["show_alert"]).lower() == "false"
    [message] = rig.telegram.messages(CHAT)
    assert message.reply_markup is None and message.text == "run failed"
    [edit] = rig.telegram.calls_for("editMessageReplyMarkup")
    assert edit.body["chat_id"] == CHAT and int(edit.body["message_id"]) == message.message_id
    assert "reply_markup" not in edit.body


async def test_a_failing_answer_is_logged_not_raised(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    ref = await rig.sent_with_button()
    await rig.post(rig.press(ref))
    surface = rig.actions.presses[0].surface
    rig.telegram.fail_next(2, status=400, description=f"Bad Request: echo {DEFAULT_TOKEN}")
    with caplog.at_level(logging.WARNING, "relay.actions.telegram"):
        await surface.answer("Resumed.")
        await surface.remove_buttons()
    warnings = [r.getMessage() for r in caplog.records if r.name == "relay.actions.telegram"]
    assert len(warnings) == 2 and all("echo ***" in w.lower() for w in warnings)
    assert DEFAULT_TOKEN not in caplog.text


async def test_a_surface_whose_channel_is_gone_does_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    surface = TelegramSurface(lambda: None, "1", MessageRef(CHAT, "1"))
    with caplog.at_level(logging.WARNING):
        await surface.answer("x")
        await surface.remove_buttons()
    assert "channel is gone" in caplog.text
    assert rig.telegram.calls == []


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
async def test_a_missing_or_wrong_secret_is_401_with_nothing_done(
    rig: Rig, caplog: pytest.LogCaptureFixture, secret: str | None
) -> None:
    ref = await rig.sent_with_button()
    calls = len(rig.telegram.calls)
    with caplog.at_level(logging.WARNING):
        response = await rig.post(rig.press(ref), secret=secret)

    assert response.status == 401
    assert "X-Telegram-Bot-Api-Secret-Token" in (await response.json())["error"]
    assert rig.actions.presses == [] and len(rig.telegram.calls) == calls
    assert "Set-Cookie" not in response.headers
    assert SECRET not in caplog.text and "refused" in caplog.text


async def test_a_repeated_secret_header_is_refused(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    headers = [(SECRET_HEADER, SECRET), (SECRET_HEADER, SECRET)]
    response = await rig.client.post(
        PATH, data=json.dumps(rig.press(ref)), headers=CIMultiDict(headers)
    )
    assert response.status == 401 and rig.actions.presses == []


async def test_too_many_wrong_secrets_get_429_and_the_right_one_still_works(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    update = rig.press(ref)
    statuses = [(await rig.post(update, secret="wrong")).status for _ in range(FAILURES)]
    limited = await rig.post(update, secret="wrong")

    assert statuses == [401] * FAILURES
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "error" in await limited.json()
    assert (await rig.post(update)).status == 200
    assert len(rig.actions.presses) == 1
    rig.clock.now += 61
    assert (await rig.post(update, secret="wrong")).status == 401


async def test_a_body_over_64_kib_is_413(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    padded = {**rig.press(ref), "pad": "x" * MAX_BODY_BYTES}
    announced = await rig.post(padded)

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(padded).encode()

    streamed = await rig.client.post(
        PATH, data=chunks(), headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    )
    assert announced.status == streamed.status == 413
    assert "error" in await streamed.json()
    assert rig.actions.presses == []


async def test_a_body_arriving_too_slowly_is_408(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    body = json.dumps(rig.press(ref)).encode()
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield body[:10]
        await release.wait()  # never before the answer: the relay's deadline decides
        yield body[10:]

    try:
        response = await rig.client.post(PATH, data=slow(), headers={SECRET_HEADER: SECRET})
        assert response.status == 408
    finally:
        release.set()
    assert rig.actions.presses == []


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1}}},
        {"update_id": 2, "callback_query": {"id": "1", "from": {"id": 1}, "data": "other:1"}},
        {"update_id": 3, "callback_query": {"id": "1", "from": {"id": 1}}},
        {"update_id": 4},
    ],
)
async def test_other_updates_are_200_and_ignored(rig: Rig, update: dict[str, Any]) -> None:
    response = await rig.post(update)
    assert response.status == 200 and rig.actions.presses == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"callback_query": {"id": "1", "data": VALUE}}).encode(),
        json.dumps({"callback_query": {"id": "1", "from": {"id": "7"}, "data": VALUE}}).encode(),
    ],
)
async def test_malformed_updates_are_400(rig: Rig, body: bytes) -> None:
    response = await rig.post(body)
    assert response.status == 400 and "error" in await response.json()
    assert rig.actions.presses == []


async def test_without_actions_telegram_after_a_reload_it_is_404(rig: Rig) -> None:
    ref = await rig.sent_with_button()
    rig.serving[0] = config(rig.telegram, actions=False)
    response = await rig.post(rig.press(ref))
    assert response.status == 404 and "error" in await response.json()

    moved = config(rig.telegram)
    assert moved.actions.telegram is not None
    elsewhere = moved.actions.telegram.model_copy(update={"path": "/elsewhere"})
    rig.serving[0] = moved.model_copy(
        update={"actions": moved.actions.model_copy(update={"telegram": elsewhere})}
    )
    assert (await rig.post(rig.press(ref))).status == 404
    assert rig.actions.presses == []


async def test_the_bot_named_in_the_url_answers(rig: Rig) -> None:
    rig.serving[0] = config(rig.telegram, {"ops": DEFAULT_TOKEN, "other": OTHER_TOKEN})
    ref = await rig.sent_with_button()

    unnamed = await rig.post(rig.press(ref))
    unknown = await rig.post(rig.press(ref), query="?bot=nope")
    assert unnamed.status == unknown.status == 404 and rig.actions.presses == []

    update = rig.press(ref, token=OTHER_TOKEN)
    assert (await rig.post(update, query="?bot=other")).status == 200
    await rig.actions.presses[0].surface.answer("Done")
    assert rig.telegram.queries[update["callback_query"]["id"]].answers[0]["text"] == "Done"


async def test_channels_on_one_bot_need_no_name(rig: Rig) -> None:
    rig.serving[0] = config(rig.telegram, {"ops": DEFAULT_TOKEN, "ops2": DEFAULT_TOKEN})
    ref = await rig.sent_with_button()
    assert (await rig.post(rig.press(ref))).status == 200
    assert len(rig.actions.presses) == 1


async def test_without_the_actions_runtime_a_press_is_503(
    fake_telegram: FakeTelegram, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    app = web.Application()
    serving = config(fake_telegram)
    add_telegram_route(
        app, PATH, config=lambda: serving, channel=lambda _: None, limiter=FailedAuthLimiter()
    )
    client = await aiohttp_client(app)
    update = {"callback_query": {"id": "1", "from": {"id": 7}, "data": VALUE}}
    response = await client.post(PATH, json=update, headers={SECRET_HEADER: SECRET})
    assert response.status == 503
